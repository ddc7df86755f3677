/* 3.12 API: fuse_session_loop_mt() takes a struct fuse_loop_config *.  With
 * an older FUSE_USE_VERSION it maps to a function taking the v1 struct,
 * which misreads ours: its idle-thread limit came out so low that a thread
 * was created and ended for every request. */
#define FUSE_USE_VERSION 312
#include "fusedisk.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <libnbd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloccache.h"
#include "clock.h"
#include "ext4meta.h"
#include "fetchahead.h"
#include "log.h"
#include "textfile.h"

#define DISK_INO 2
#define DISK_NAME "disk"

/* One NBD connection of the home, with its own reconnect. */
struct conn {
    pthread_rwlock_t lock; /* readers use ex.h; the writer swaps it */
    pthread_mutex_t reconnect_mu;
    struct nbd_export ex;
    unsigned index;
    double dead_since;   /* under disk.stats_mu; 0 = connected */
    double last_attempt; /* of a reconnect after the dead timeout; under reconnect_mu */
    unsigned seed;       /* of the reconnects' jitter, under reconnect_mu */
};

struct disk {
    const struct fusedisk_params *p;
    struct conn conn[HP_NBD_MAX_CONNECTIONS];
    unsigned want;     /* connections to have, conn[0] included */
    atomic_uint nconn; /* conn[0..nconn) are open (or reconnecting) */
    atomic_uint next;  /* round-robin over them */
    uint64_t size;
    bool read_only;
    atomic_bool dirty;       /* a write was sent since the last flush was */
    struct fetchahead ahead; /* the mount's reads, until the first write */
    double started;
    pthread_t ahead_thread; /* fetches the mount's reads (ahead_thread) */
    bool have_ahead;        /* not joined yet */
    atomic_uint ready_wait; /* "ok", the head: what the verdict waits for (ready_part) */
    /* counters, under stats_mu */
    pthread_mutex_t stats_mu;
    uint64_t bytes_read, bytes_written, reconnects, io_errors;
    char last_error[256];
    struct fuse_session *se;
    int stopping;            /* under stats_mu */
    pthread_cond_t stats_cv; /* wakes the stats and opener threads to stop */
    /* A spare's (fusedisk_spare_mount): its FUSE loop runs in a thread of
     * its own from the mount on; the export comes later (disk_attach).
     * Until then the dir is empty. */
    atomic_bool attached;
    pthread_t loop_thread;
    int loop_rc;
    int loop_done[2]; /* a pipe: written when the loop has ended */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Under stats_mu: is any open connection down? */
static bool any_dead(struct disk *d)
{
    unsigned n = atomic_load(&d->nconn);
    for (unsigned i = 0; i < n; i++)
        if (d->conn[i].dead_since)
            return true;
    return false;
}

static void write_stats(struct disk *d)
{
    struct textfile_kv kv = {0};

    if (!d->p->stats_path)
        return;
    pthread_mutex_lock(&d->stats_mu);
    textfile_kv_add(&kv, "state", "%s", any_dead(d) ? "disconnected" : "connected");
    textfile_kv_add(&kv, "connections", "%u", atomic_load(&d->nconn));
    textfile_kv_add(&kv, "bytes_read", "%llu", (unsigned long long)d->bytes_read);
    textfile_kv_add(&kv, "bytes_written", "%llu", (unsigned long long)d->bytes_written);
    textfile_kv_add(&kv, "reconnects", "%llu", (unsigned long long)d->reconnects);
    textfile_kv_add(&kv, "io_errors", "%llu", (unsigned long long)d->io_errors);
    textfile_kv_add(&kv, "last_error", "%s", d->last_error);
    pthread_mutex_unlock(&d->stats_mu);
    textfile_kv_replace(&kv, d->p->stats_path, 0666);
}

/* What was fetched ahead for the mount is dropped this long after the
 * start at the latest (a read-only mount never writes). */
#define AHEAD_SECONDS 10

/* Rewrite the stats file every second while the numbers move, so that
 * `homeport status` sees current byte counts. */
static void *stats_thread(void *arg)
{
    struct disk *d = arg;
    uint64_t last = UINT64_MAX;

    pthread_mutex_lock(&d->stats_mu);
    while (!d->stopping) {
        if (now_s() - d->started > AHEAD_SECONDS)
            fetchahead_close(&d->ahead);
        uint64_t sum = d->bytes_read + d->bytes_written + d->reconnects + d->io_errors +
                       atomic_load(&d->nconn);
        if (sum != last) {
            pthread_mutex_unlock(&d->stats_mu);
            write_stats(d);
            pthread_mutex_lock(&d->stats_mu);
            last = sum;
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&d->stats_cv, &d->stats_mu, &until);
    }
    pthread_mutex_unlock(&d->stats_mu);
    return NULL;
}

static bool handle_dead(struct nbd_handle *h)
{
    return nbd_aio_is_dead(h) == 1 || nbd_aio_is_closed(h) == 1;
}

/* "" for a home on one connection, " (connection 2 of 4)" otherwise. */
static const char *conn_name(const struct disk *d, const struct conn *c, char *buf, size_t len)
{
    if (d->want < 2)
        return "";
    snprintf(buf, len, " (connection %u of %u)", c->index + 1, d->want);
    return buf;
}

/* Open a connection like the first one (nbd_export_open: the same server,
 * TLS settings and budget) and check that the export kept its size.
 * 0 or -errno with why. */
static int open_like_first(struct disk *d, struct nbd_export *ex, char *why, size_t whylen)
{
    int rc = nbd_export_open(d->p->server, d->p->export, d->p->connect_timeout_ms, ex, why, whylen);
    if (rc < 0)
        return rc;
    if ((uint64_t)ex->size != d->size) {
        snprintf(why, whylen, "export size changed from %llu to %lld", (unsigned long long)d->size,
                 (long long)ex->size);
        nbd_export_close(ex);
        return -EIO;
    }
    return 0;
}

static void set_last_error(struct disk *d, const char *why)
{
    pthread_mutex_lock(&d->stats_mu);
    snprintf(d->last_error, sizeof d->last_error, "%.255s", why);
    textfile_one_line(d->last_error); /* one line in the stats file (home.h) */
    pthread_mutex_unlock(&d->stats_mu);
}

/* Put a fresh handle in c, close the old one, count the reconnect. */
static void swap_in(struct disk *d, struct conn *c, struct nbd_export *ex)
{
    char nm[48];

    pthread_rwlock_wrlock(&c->lock);
    struct nbd_export old = c->ex;
    c->ex = *ex;
    pthread_rwlock_unlock(&c->lock);
    if (old.h)
        nbd_close(old.h);
    pthread_mutex_lock(&d->stats_mu);
    d->reconnects++;
    c->dead_since = 0;
    if (!any_dead(d))
        d->last_error[0] = '\0';
    pthread_mutex_unlock(&d->stats_mu);
    log_notice("%s: reconnected to %s%s", d->p->export, d->p->server->label,
               conn_name(d, c, nm, sizeof nm));
}

/* A connection of a home on several, reopened to a server that no longer
 * advertises multi-conn (restarted with another setup): the connections
 * would no longer see each other's writes, so the home goes on with
 * conn[0] alone.  Returns whether c may take ex (c is conn[0]); if not, ex
 * is closed and c is out of use. */
static bool single_again(struct disk *d, struct conn *c, struct nbd_export *ex)
{
    if (atomic_exchange(&d->nconn, 1) > 1)
        log_warn("%s: %s no longer advertises multi-conn: going on with one connection",
                 d->p->export, d->p->server->label);
    if (c->index == 0)
        return true;
    nbd_export_close(ex);
    pthread_mutex_lock(&d->stats_mu);
    c->dead_since = 0; /* out of use, not down */
    pthread_mutex_unlock(&d->stats_mu);
    return false;
}

/* Try to reconnect c: backoff 100 ms doubling to 2 s (jittered) until limit, or once
 * when the dead timeout has expired.  Under c->reconnect_mu. */
static bool reconnect_loop(struct disk *d, struct conn *c, double limit, bool expired)
{
    unsigned backoff_ms = 100;
    do {
        struct nbd_export ex;
        char why[HP_WHY_MAX];
        c->last_attempt = now_s();
        if (open_like_first(d, &ex, why, sizeof why) == 0) {
            if (d->want > 1 && !ex.multi_conn && !single_again(d, c, &ex))
                return false;
            swap_in(d, c, &ex);
            return true;
        }
        set_last_error(d, why);
        if (expired)
            break;
        clock_backoff(&backoff_ms, &c->seed);
    } while (now_s() < limit);
    return false;
}

/* Called after a failed request on c's handle `seen`.  Returns true when a
 * fresh handle is in place and the request should be retried. */
static bool reconnect(struct disk *d, struct conn *c, struct nbd_handle *seen)
{
    char nm[48];

    if (c->index >= atomic_load(&d->nconn)) /* out of use (single_again) */
        return false;
    pthread_mutex_lock(&c->reconnect_mu);
    pthread_rwlock_rdlock(&c->lock);
    bool replaced = c->ex.h != seen;
    bool dead = c->ex.h == NULL || handle_dead(c->ex.h);
    pthread_rwlock_unlock(&c->lock);
    if (replaced || !dead) { /* reconnected meanwhile; or a real I/O error, not a dead link */
        pthread_mutex_unlock(&c->reconnect_mu);
        return replaced;
    }
    pthread_mutex_lock(&d->stats_mu);
    if (!c->dead_since) {
        c->dead_since = now_s();
        log_warn("%s: connection to %s lost%s; reconnecting", d->p->export, d->p->server->label,
                 conn_name(d, c, nm, sizeof nm));
    }
    double dead_since = c->dead_since;
    pthread_mutex_unlock(&d->stats_mu);
    write_stats(d);

    double limit = dead_since + d->p->dead_timeout_ms / 1000.0;
    bool expired = now_s() >= limit;
    if (expired && now_s() - c->last_attempt < 5.0) {
        pthread_mutex_unlock(&c->reconnect_mu);
        return false;
    }
    bool fresh = reconnect_loop(d, c, limit, expired);
    if (!fresh && c->index < atomic_load(&d->nconn))
        log_err("%s: server %s unreachable for %u ms%s: I/O fails until it is back (%s)",
                d->p->export, d->p->server->label, d->p->dead_timeout_ms,
                conn_name(d, c, nm, sizeof nm), d->last_error);
    pthread_mutex_unlock(&c->reconnect_mu);
    write_stats(d);
    return fresh;
}

/* The connection for the next request: round-robin over the open ones.
 * One that is down is not skipped: the request reconnects it (or waits
 * for the thread that does), as on a home with one connection. */
static struct conn *pick_conn(struct disk *d)
{
    unsigned n = atomic_load(&d->nconn);

    return &d->conn[n > 1 ? atomic_fetch_add(&d->next, 1) % n : 0];
}

enum op { OP_READ, OP_WRITE, OP_FLUSH };

/* One request, with reconnect-and-retry.  Returns 0 or -errno.  A flush
 * goes to one connection: extra connections exist only when the server
 * advertised multi-conn, and then a flush covers the writes completed on
 * every connection (the NBD protocol, NBD_FLAG_CAN_MULTI_CONN). */
static int do_io(struct disk *d, enum op op, void *buf, size_t len, uint64_t off)
{
    struct conn *c = pick_conn(d);

    if (op == OP_WRITE) {
        fetchahead_close(&d->ahead);   /* nothing read before it is served after it */
        atomic_store(&d->dirty, true); /* before it is sent: a flush after covers it */
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc;
        pthread_rwlock_rdlock(&c->lock);
        struct nbd_handle *h = c->ex.h;
        if (!h)
            rc = -1;
        else if (op == OP_READ)
            rc = nbd_pread(h, buf, len, off, 0);
        else if (op == OP_WRITE)
            rc = nbd_pwrite(h, buf, len, off, 0);
        else
            rc = c->ex.can_flush ? nbd_flush(h, 0) : 0;
        int err = rc < 0 ? (nbd_get_errno() ? nbd_get_errno() : EIO) : 0;
        pthread_rwlock_unlock(&c->lock);
        if (rc == 0) {
            /* Again once done: a flush sent on another connection while it
             * was in flight did not cover it (multi-conn covers the writes
             * completed before the flush), and may have cleared the flag. */
            if (op == OP_WRITE)
                atomic_store(&d->dirty, true);
            pthread_mutex_lock(&d->stats_mu);
            if (op == OP_READ)
                d->bytes_read += len;
            else if (op == OP_WRITE)
                d->bytes_written += len;
            pthread_mutex_unlock(&d->stats_mu);
            return 0;
        }
        if (attempt == 0 && reconnect(d, c, h))
            continue;
        if (c->index >= atomic_load(&d->nconn)) { /* out of use (single_again) */
            c = &d->conn[0];
            attempt = -1;
            continue;
        }
        pthread_mutex_lock(&d->stats_mu);
        d->io_errors++;
        pthread_mutex_unlock(&d->stats_mu);
        return -(err == ENOTCONN || err == ESHUTDOWN || err == ECONNRESET ? EIO : err);
    }
    return -EIO;
}

/* How long the extra connections wait after the mount: the login's loop
 * device, e2fsck and mount come first, without their TLS handshakes
 * beside them (as the warm pool waits after a take, warm.h). */
#define OPEN_DELAY_MS 100

/* Sleep ms unless the disk is stopping.  Returns whether it is. */
static bool wait_unless_stopping(struct disk *d, unsigned ms)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    until.tv_sec += ms / 1000 + until.tv_nsec / 1000000000;
    until.tv_nsec %= 1000000000;
    pthread_mutex_lock(&d->stats_mu);
    while (!d->stopping && pthread_cond_timedwait(&d->stats_cv, &d->stats_mu, &until) == 0)
        ;
    bool stopping = d->stopping;
    pthread_mutex_unlock(&d->stats_mu);
    return stopping;
}

/* How long the opener waits before trying an extra connection again
 * (jittered), first and at most: a server that refuses it now (a limit on
 * connections, a restart) may take it later. */
#define REOPEN_FIRST_MS 1000
#define REOPEN_MAX_MS 60000

/* Try conn[i] until it is open (true) or the disk stops (false): the first
 * failure is logged as a warning, the next ones at debug level. */
static bool open_extra(struct disk *d, unsigned i, struct nbd_export *ex)
{
    unsigned backoff_ms = REOPEN_FIRST_MS, seed = clock_seed() + i;
    char why[HP_WHY_MAX];

    for (unsigned failed = 0;; failed++) {
        if (wait_unless_stopping(d, 0))
            return false;
        if (open_like_first(d, ex, why, sizeof why) == 0) {
            if (failed)
                log_notice("%s: connection %u of %u to %s opened", d->p->export, i + 1, d->want,
                           d->p->server->label);
            return true;
        }
        if (!failed)
            log_warn("%s: connection %u of %u to %s not opened (%s): going on with %u, trying "
                     "again later",
                     d->p->export, i + 1, d->want, d->p->server->label, why, i);
        else
            log_debug("%s: connection %u of %u: %s", d->p->export, i + 1, d->want, why);
        if (wait_unless_stopping(d, clock_jitter_ms(backoff_ms, &seed)))
            return false;
        backoff_ms = clock_doubled(backoff_ms, REOPEN_MAX_MS);
    }
}

/* Open conn[1..want) one after the other, shortly after the mount, so
 * that the login never waits for them; the home goes on with those it has
 * meanwhile.  A server that no longer advertises multi-conn ends it. */
static void *opener_thread(void *arg)
{
    struct disk *d = arg;

    if (wait_unless_stopping(d, OPEN_DELAY_MS))
        return NULL;
    for (unsigned i = 1; i < d->want; i++) {
        struct nbd_export ex;
        if (!open_extra(d, i, &ex))
            break;
        d->conn[i].ex = ex; /* not seen by requests before nconn says so */
        unsigned have = i;
        if (!ex.multi_conn || !atomic_compare_exchange_strong(&d->nconn, &have, i + 1)) {
            nbd_export_close(&d->conn[i].ex); /* restarted without multi-conn meanwhile */
            break;
        }
    }
    log_debug("%s: %u connection(s) to %s", d->p->export, atomic_load(&d->nconn),
              d->p->server->label);
    return NULL;
}

static void disk_stat(struct disk *d, fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    if (ino == FUSE_ROOT_ID) {
        st->st_mode = S_IFDIR | 0700;
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | (d->read_only ? 0400 : 0600);
        st->st_nlink = 1;
        st->st_size = (off_t)d->size;
        st->st_blocks = (blkcnt_t)((d->size + 511) / 512);
    }
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    (void)fi;
    struct disk *d = fuse_req_userdata(req);
    if (ino != FUSE_ROOT_ID && (ino != DISK_INO || !atomic_load(&d->attached))) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    disk_stat(d, ino, &st);
    fuse_reply_attr(req, &st, 3600.0);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e = {0};
    if (parent != FUSE_ROOT_ID || strcmp(name, DISK_NAME) != 0 ||
        !atomic_load(&((struct disk *)fuse_req_userdata(req))->attached)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    e.ino = DISK_INO;
    e.attr_timeout = e.entry_timeout = 3600.0;
    disk_stat(fuse_req_userdata(req), DISK_INO, &e.attr);
    fuse_reply_entry(req, &e);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    static const struct {
        const char *name;
        fuse_ino_t ino;
        mode_t mode;
    } ents[] = {{".", FUSE_ROOT_ID, S_IFDIR},
                {"..", FUSE_ROOT_ID, S_IFDIR},
                {DISK_NAME, DISK_INO, S_IFREG}};
    char buf[512];
    size_t used = 0;
    (void)fi;
    if (ino != FUSE_ROOT_ID) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    off_t n_ents = atomic_load(&((struct disk *)fuse_req_userdata(req))->attached) ? 3 : 2;
    for (off_t i = off; i < n_ents; i++) {
        struct stat st = {.st_ino = ents[i].ino, .st_mode = ents[i].mode};
        size_t n = fuse_add_direntry(req, buf + used, sizeof buf - used, ents[i].name, &st, i + 1);
        if (n > sizeof buf - used || used + n > size)
            break;
        used += n;
    }
    fuse_reply_buf(req, buf, used);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct disk *d = fuse_req_userdata(req);
    if (ino != DISK_INO) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    if (!atomic_load(&d->attached)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (d->read_only && (fi->flags & O_ACCMODE) != O_RDONLY) {
        fuse_reply_err(req, EROFS);
        return;
    }
    /* No page cache here: the loop device above caches, and O_DIRECT from
     * the loop device needs it. */
    fi->direct_io = 1;
    fi->keep_cache = 0;
    /* A close has nothing to flush (op_flush): the kernel (5.16 and later)
     * then does not ask, and the prepare's close of the disk file after
     * LOOP_CONFIGURE waits for no round trip through this process. */
    fi->noflush = 1;
    fuse_reply_open(req, fi);
}

/* One read buffer per FUSE thread, kept between requests (a fresh 1 MiB
 * allocation per request costs an mmap/munmap pair with musl) and freed
 * when the thread ends. */
struct rbuf {
    char *p;
    size_t cap;
};
static pthread_key_t rbuf_key;
static pthread_once_t rbuf_once = PTHREAD_ONCE_INIT;

static void rbuf_free(void *v)
{
    struct rbuf *rb = v;
    free(rb->p);
    free(rb);
}

static void rbuf_init(void)
{
    pthread_key_create(&rbuf_key, rbuf_free);
}

static struct rbuf *read_buffer(size_t size)
{
    struct rbuf *rb;

    pthread_once(&rbuf_once, rbuf_init);
    rb = pthread_getspecific(rbuf_key);
    if (!rb) {
        rb = calloc(1, sizeof *rb);
        if (!rb || pthread_setspecific(rbuf_key, rb) != 0) {
            free(rb);
            return NULL;
        }
    }
    if (size > rb->cap) {
        char *g = realloc(rb->p, size ? size : 1);
        if (!g)
            return NULL;
        rb->p = g;
        rb->cap = size;
    }
    return rb;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct disk *d = fuse_req_userdata(req);
    struct rbuf *rb = read_buffer(size);
    int rc;
    (void)ino;
    (void)fi;
    if (off < 0 || (uint64_t)off >= d->size) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (size > d->size - (uint64_t)off)
        size = (size_t)(d->size - (uint64_t)off);
    if (!rb) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    rc = fetchahead_get(&d->ahead, rb->p, size, (uint64_t)off)
             ? 0
             : do_io(d, OP_READ, rb->p, size, (uint64_t)off);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_buf(req, rb->p, size);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    struct disk *d = fuse_req_userdata(req);
    int rc;
    (void)ino;
    (void)fi;
    if (off < 0 || (uint64_t)off > d->size || size > d->size - (uint64_t)off) {
        fuse_reply_err(req, ENOSPC);
        return;
    }
    rc = do_io(d, OP_WRITE, (void *)buf, size, (uint64_t)off);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_write(req, size);
}

/* FUSE_FLUSH comes with every close() of the disk file (on kernels that
 * ignore the open's noflush), not only when data must be durable: the
 * prepare's own open/close around LOOP_CONFIGURE sent an NBD flush (a
 * round trip, and an fdatasync on most servers) on the login's path.
 * Nothing here is cached (direct_io), so a close has nothing to flush;
 * durability comes through fsync: the filesystem's flushes reach the loop
 * device, which fsyncs this file (op_fsync), and the worker flushes once
 * more when it ends. */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0);
}

/* A flush when something was written since the last one: the loop device
 * fsyncs the file when it is configured, before anything was written. */
static int flush_dirty(struct disk *d)
{
    int rc;

    if (!atomic_exchange(&d->dirty, false))
        return 0;
    rc = do_io(d, OP_FLUSH, NULL, 0, 0);
    if (rc < 0)
        atomic_store(&d->dirty, true);
    return rc;
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    (void)fi;
    fuse_reply_err(req, -flush_dirty(fuse_req_userdata(req)));
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    struct disk *d = userdata;
    /* Bigger requests: fewer round trips to the server.  With n
     * connections, 1/n of it: the kernel sends a loop device's 1 MiB
     * request as n requests at once (async direct I/O), one a connection. */
    conn->max_write = (1u << 20) / d->want;
    conn->max_readahead = 1 << 20;
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .readdir = op_readdir,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .fsync = op_fsync,
};

/* ---- the layout hint: the ranges the last mount read ------------------ */

/* A hint holds the ranges after the head (the group descriptors when they
 * are not in it, the inodes, the journal's superblock), at most this many
 * bytes each: more is not a mount's read. */
#define HINT_RANGES 3
#define HINT_MAX_LEN (1u << 20)

static bool same_range(struct ext4_range a, struct ext4_range b)
{
    return a.off == b.off && a.len == b.len;
}

/* The ranges of p->layout_path that fit a device of d->size ("SIZE
 * OFF+LEN ..."), in r; how many (0: no usable hint).  Written by this
 * worker's root only, but checked like the server's bytes: a hint only
 * says what to read, never what the data is. */
static size_t hint_read(const struct disk *d, struct ext4_range r[HINT_RANGES])
{
    char line[256];
    unsigned long long size, off[HINT_RANGES];
    unsigned len[HINT_RANGES];
    size_t n = 0;

    if (!d->p->layout_path || textfile_read_line(d->p->layout_path, line, sizeof line, 1) < 0)
        return 0;
    int got = sscanf(line, "%llu %llu+%u %llu+%u %llu+%u", &size, &off[0], &len[0], &off[1],
                     &len[1], &off[2], &len[2]);
    if (got < 3 || got % 2 == 0 || size != d->size)
        return 0;
    for (int i = 0; i < (got - 1) / 2; i++) {
        if (len[i] == 0 || len[i] > HINT_MAX_LEN || off[i] > d->size || len[i] > d->size - off[i])
            return 0;
        r[n++] = (struct ext4_range){off[i], len[i]};
    }
    return n;
}

/* Keep the ranges this mount read (those after the head) for the next
 * one, when they differ from the hint.  No fsync: a hint lost in a crash
 * costs the next login its round trips, nothing else. */
static void hint_write(const struct disk *d, const struct ext4_range *r, size_t n,
                       const struct ext4_range *old, size_t nold)
{
    char line[256];
    int len = snprintf(line, sizeof line, "%llu", (unsigned long long)d->size);

    size_t same = 0;

    while (same < n && same < nold && same_range(r[same], old[same]))
        same++;
    if (!d->p->layout_path || n == 0 || (same == n && n == nold))
        return;
    for (size_t i = 0; i < n; i++)
        len += snprintf(line + len, sizeof line - (size_t)len, " %llu+%u",
                        (unsigned long long)r[i].off, r[i].len);
    line[len++] = '\n';
    if (textfile_replace(d->p->layout_path, line, (size_t)len, 0600, TEXTFILE_NO_SYNC) < 0)
        log_debug("%s: cannot keep the layout hint in %s", d->p->export, d->p->layout_path);
}

/* Fetch n ranges at once on conn[0] with libnbd's aio calls: one round
 * trip, where one after the other takes n.  buf[i]: the data, malloc'd,
 * or NULL when that read failed (a step reads it again through do_io,
 * with its reconnect).  The bytes read count in the stats, as do_io's. */
static void fetch_many(struct disk *d, const struct ext4_range *r, size_t n, uint8_t **buf)
{
    struct conn *c = &d->conn[0];
    int64_t cookie[1 + HINT_RANGES];
    double deadline = now_s() + d->p->connect_timeout_ms / 1000.0 + 1;
    uint64_t got = 0;

    pthread_rwlock_rdlock(&c->lock);
    struct nbd_handle *h = c->ex.h;
    for (size_t i = 0; i < n; i++) {
        buf[i] = h && r[i].len ? malloc(r[i].len) : NULL;
        cookie[i] =
            buf[i] ? nbd_aio_pread(h, buf[i], r[i].len, r[i].off, NBD_NULL_COMPLETION, 0) : -1;
    }
    for (size_t i = 0; i < n; i++) {
        int done = cookie[i] < 0 ? -1 : 0;
        /* (a short poll: a FUSE thread's call may read the answer) */
        while (done == 0 && (done = nbd_aio_command_completed(h, cookie[i])) == 0 &&
               now_s() < deadline && nbd_poll(h, 10) >= 0)
            ;
        if (done == 0)     /* still in flight (timed out, or the poll failed): */
            buf[i] = NULL; /* libnbd may still write into it, so it is not freed */
        else if (done != 1) {
            free(buf[i]);
            buf[i] = NULL;
        } else
            got += r[i].len;
    }
    pthread_rwlock_unlock(&c->lock);
    pthread_mutex_lock(&d->stats_mu);
    d->bytes_read += got;
    pthread_mutex_unlock(&d->stats_mu);
}

/* The hinted ranges, fetched with the head, until a step takes them. */
struct hinted {
    size_t n;
    struct ext4_range r[HINT_RANGES];
    uint8_t *buf[HINT_RANGES];
};

static bool is_hinted(const struct hinted *h, struct ext4_range r)
{
    for (size_t i = 0; i < h->n; i++)
        if (same_range(h->r[i], r))
            return true;
    return false;
}

/* Put what no step took into the fetch-ahead (true data of the disk,
 * read before any write), or give it up: something may wait for it. */
static void hinted_put_rest(struct disk *d, struct hinted *h)
{
    for (size_t i = 0; i < h->n; i++) {
        fetchahead_put(&d->ahead, h->r[i].off, h->buf[i], h->r[i].len);
        h->buf[i] = NULL;
        h->r[i].len = 0;
    }
}

/* len bytes at off, in a buffer of their own; NULL when the read failed
 * (or len is 0: an empty disk). */
static uint8_t *fetch(struct disk *d, uint64_t off, size_t len)
{
    uint8_t *buf = len ? malloc(len) : NULL;

    if (buf && do_io(d, OP_READ, buf, len, off) < 0) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

/* A step on the data of r (buf, taken over; NULL: it could not be
 * read): parse it with step, announce what step found (*next) before the
 * data goes in (a read served from r can only come after its successor
 * is announced; a hinted successor is announced already).  0, or -1 when
 * the chain ends. */
static int step_on(struct disk *d, const struct hinted *h, struct ext4_range r, uint8_t *buf,
                   struct ext4meta *m,
                   int (*step)(struct ext4meta *, const uint8_t *, size_t, struct ext4_range *),
                   struct ext4_range *next)
{
    int rc = buf && step ? step(m, buf, r.len, next) : -1;

    if (rc == 0 && !is_hinted(h, *next) && !fetchahead_expect(&d->ahead, next->off, next->len))
        rc = -1;
    fetchahead_put(&d->ahead, r.off, buf, r.len); /* NULL: given up */
    return rc;
}

/* The data of r: the hinted fetch's when it asked for r, else read now. */
static uint8_t *data_for(struct disk *d, struct hinted *h, struct ext4_range r)
{
    for (size_t i = 0; i < h->n; i++)
        if (same_range(h->r[i], r) && h->buf[i]) {
            uint8_t *b = h->buf[i];
            h->buf[i] = NULL;
            h->r[i].len = 0; /* taken: not put twice */
            return b;
        }
    return fetch(d, r.off, r.len);
}

/* The first range fetched ahead: the device's start (the superblock). */
static struct ext4_range head_range(const struct disk *d)
{
    return (struct ext4_range){0, d->size < EXT4META_HEAD ? (uint32_t)d->size : EXT4META_HEAD};
}

static int step_super(struct ext4meta *m, const uint8_t *b, size_t len, struct ext4_range *next)
{
    if (ext4meta_super(b, len, m->dev_size, m) < 0)
        return -1;
    if (m->gdt.off + m->gdt.len <= len) { /* the descriptors are in the head */
        if (ext4meta_inodes(m, b + m->gdt.off, m->gdt.len) < 0)
            return -1;
        *next = m->inodes;
        return 0;
    }
    *next = m->gdt;
    return 0;
}

static int step_gdt(struct ext4meta *m, const uint8_t *b, size_t len, struct ext4_range *next)
{
    if (ext4meta_inodes(m, b, len) < 0)
        return -1;
    *next = m->inodes;
    return 0;
}

static int step_inodes(struct ext4meta *m, const uint8_t *b, size_t len, struct ext4_range *next)
{
    return ext4meta_journal(m, b, len, next);
}

/* Tell the starter the disk is served: "ok".  Its next step is to bind a
 * loop device to the disk, which the head's fetch need not hold up. */
static void report_ok(struct disk *d)
{
    if (d->p->ready_fd >= 0)
        (void)!send(d->p->ready_fd, "ok\n", 3, MSG_NOSIGNAL);
}

/* Then the verdict, once the head is in (or given up): "clean" when the
 * superblock fetched ahead says that e2fsck -p would find nothing to do
 * (ext4meta_clean), so that the starter reads it no second time through
 * the loop device and this process; else "unknown". */
static void report_verdict(struct disk *d)
{
    uint8_t sb[1024];
    bool clean = d->size >= 2048 && /* closed when there is no head: false */
                 fetchahead_get(&d->ahead, sb, sizeof sb, 1024) && ext4meta_clean(sb, time(NULL));
    const char *line = clean ? "clean\n" : "unknown\n";

    if (d->p->ready_fd < 0)
        return;
    (void)!send(d->p->ready_fd, line, strlen(line), MSG_NOSIGNAL);
    close(d->p->ready_fd);
}

/* One of the two things the verdict waits for is done: "ok" is out (the
 * FUSE loop is running by then or starts at once), the head's fetch is
 * over, in whichever order.  The last one reports. */
static void ready_part(struct disk *d)
{
    if (atomic_fetch_sub(&d->ready_wait, 1) == 1)
        report_verdict(d);
}

/* The reads of an ext4 mount (ext4meta.h), fetched one step after the
 * other alongside the FUSE mount, the loop device and the check; each
 * range is announced before it is asked for, so the kernel's reads wait
 * for it rather than asking the server again.  The head is announced by
 * fusedisk_serve before this starts.  With a layout hint (the ranges the
 * last mount read), those are announced and fetched with the head, and
 * the steps only check them.  What it cannot follow it leaves to the
 * mount's own reads. */
static void *ahead_thread(void *arg)
{
    struct disk *d = arg;
    struct ext4meta m = {.dev_size = d->size};
    struct ext4_range r[1 + HINT_RANGES] = {head_range(d)}, next, seen[HINT_RANGES];
    uint8_t *buf[1 + HINT_RANGES];
    struct hinted h = {.n = hint_read(d, r + 1)};
    size_t nseen = 0;
    int rc;

    for (size_t i = 0; i < h.n; i++) {
        h.r[i] = r[1 + i];
        fetchahead_expect(&d->ahead, h.r[i].off, h.r[i].len);
    }
    if (h.n)
        fetch_many(d, r, 1 + h.n, buf);
    else
        buf[0] = fetch(d, r[0].off, r[0].len);
    for (size_t i = 0; i < h.n; i++)
        h.buf[i] = buf[1 + i];
    rc = step_on(d, &h, r[0], buf[0], &m, step_super, &next);
    ready_part(d);                  /* the head is in, or given up */
    if (rc == 0 && !m.inodes.len) { /* the descriptors were not all in the head */
        seen[nseen++] = next;
        rc = step_on(d, &h, next, data_for(d, &h, next), &m, step_gdt, &next);
    }
    if (rc == 0) {
        seen[nseen++] = next;
        rc = step_on(d, &h, next, data_for(d, &h, next), &m, step_inodes, &next);
    }
    if (rc == 0) { /* the journal's superblock */
        seen[nseen++] = next;
        step_on(d, &h, next, data_for(d, &h, next), &m, NULL, &next);
        hint_write(d, seen, nseen, r + 1, h.n); /* the chain went through */
    }
    hinted_put_rest(d, &h);
    return NULL;
}

/* The configured number of connections per home, within bounds. */
static unsigned connections_wanted(unsigned configured)
{
    unsigned n = configured < 1 ? 1 : configured;

    return n > HP_NBD_MAX_CONNECTIONS ? HP_NBD_MAX_CONNECTIONS : n;
}

/* How many connections the home gets: the configured number, or 1 when
 * the server does not promise that they see each other's writes. */
static unsigned connections_for(const struct fusedisk_params *p, const struct nbd_export *ex)
{
    unsigned n = connections_wanted(p->connections);

    if (n > 1 && !ex->multi_conn) {
        log_info("%s: %s does not advertise multi-conn: one connection, not %u", p->export,
                 p->server->label, n);
        n = 1;
    }
    return n;
}

/* Everything but the export: want is what FUSE_INIT sizes the requests
 * for (op_init). */
static void disk_init(struct disk *d, unsigned want)
{
    *d = (struct disk){.want = want, .loop_done = {-1, -1}};
    fetchahead_init(&d->ahead);
    atomic_init(&d->nconn, 1);
    atomic_init(&d->next, 0);
    atomic_init(&d->attached, false);
    for (unsigned i = 0; i < HP_NBD_MAX_CONNECTIONS; i++) {
        d->conn[i].index = i;
        d->conn[i].seed = clock_seed() + i;
        pthread_rwlock_init(&d->conn[i].lock, NULL);
        pthread_mutex_init(&d->conn[i].reconnect_mu, NULL);
    }
    pthread_mutex_init(&d->stats_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->stats_cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* The export: from here DIR/disk is there.  Its head is announced at once
 * (the kernel's first read may come before the fetch) and fetched with
 * what the mount will read by the ahead thread. */
static void disk_attach(struct disk *d, const struct fusedisk_params *p, struct nbd_export *ex)
{
    d->p = p;
    d->size = (uint64_t)ex->size;
    d->read_only = ex->read_only;
    d->want = connections_for(p, ex);
    d->conn[0].ex = *ex;
    memset(ex, 0, sizeof *ex);
    d->started = now_s();
    atomic_store(&d->ready_wait, 2); /* the mount and the head */
    d->have_ahead = fetchahead_expect(&d->ahead, head_range(d).off, head_range(d).len) &&
                    pthread_create(&d->ahead_thread, NULL, ahead_thread, d) == 0;
    if (!d->have_ahead) {
        fetchahead_close(&d->ahead); /* nothing waits for a head that never comes */
        atomic_store(&d->ready_wait, 1);
    }
    atomic_store(&d->attached, true);
}

/* The helper threads of a served disk: stats, the extra connections. */
struct helpers {
    pthread_t st, op;
    bool have_st, have_op;
};

/* Say "ok" (the verdict follows when the head is in), then start them. */
static void helpers_start(struct disk *d, struct helpers *h)
{
    report_ok(d);
    ready_part(d);
    /* The stats thread writes the stats file at its start, alongside. */
    h->have_st = pthread_create(&h->st, NULL, stats_thread, d) == 0;
    if (!h->have_st)
        write_stats(d);
    h->have_op = d->want > 1 && pthread_create(&h->op, NULL, opener_thread, d) == 0;
}

/* The FUSE loop has ended: the stop is under way.  A SIGTERM now
 * (homeport umount sends one after unmounting) must not kill the process
 * before every connection is flushed and closed with NBD_CMD_DISC (and,
 * under TLS, its close_notify); the umount escalates to SIGKILL if this
 * hangs. */
static void helpers_stop(struct disk *d, const struct helpers *h)
{
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    pthread_mutex_lock(&d->stats_mu);
    d->stopping = 1;
    pthread_cond_broadcast(&d->stats_cv); /* the stats and the opener threads */
    pthread_mutex_unlock(&d->stats_mu);
    if (h->have_st)
        pthread_join(h->st, NULL);
    if (h->have_op)
        pthread_join(h->op, NULL);
    flush_dirty(d);
}

/* The FUSE loop, until the session ends.  0 or -errno. */
static int run_loop(struct disk *d)
{
    struct fuse_loop_config *lc = fuse_loop_cfg_create();
    int rc;

    if (!lc)
        return -ENOMEM;
    /* As many idle threads as threads: with fewer, libfuse ends and
     * creates a thread for nearly every request under load. */
    fuse_loop_cfg_set_max_threads(lc, 16);
    fuse_loop_cfg_set_idle_threads(lc, 16);
    rc = fuse_session_loop_mt(d->se, lc);
    fuse_loop_cfg_destroy(lc);
    return rc < 0 ? rc : 0;
}

/* The mounted disk: report ready, open the extra connections, serve until
 * the session ends, then stop the helpers and flush.  0 or -errno. */
static int serve_mounted(struct disk *d)
{
    struct helpers h = {0};
    int rc;

    /* The FUSE loop at once: the starter's next step is its LOOKUP and
     * OPEN, which wait for it. */
    helpers_start(d, &h);
    rc = run_loop(d);
    helpers_stop(d, &h);
    return rc;
}

/* What fusedisk_serve and a spare do when the FUSE loop has ended. */
static void disk_finish(struct disk *d, struct fuse_args *args)
{
    if (d->have_ahead)
        pthread_join(d->ahead_thread, NULL);
    fetchahead_close(&d->ahead);
    if (d->p)
        log_debug("%s: %llu reads served from what was fetched ahead", d->p->export,
                  (unsigned long long)fetchahead_hits(&d->ahead));
    fuse_opt_free_args(args);
    for (unsigned i = 0; i < d->want; i++) /* those out of use too */
        nbd_export_close(&d->conn[i].ex);
    if (d->p)
        write_stats(d);
}

int fusedisk_serve(const struct fusedisk_params *p, struct nbd_export *ex)
{
    char *argv[] = {"homeport", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(1, argv);
    struct disk d;
    int rc = -EIO;

    disk_init(&d, connections_wanted(p->connections)); /* disk_attach lowers it */
    alloc_cache_enable();                              /* this process moves the home's data */
    disk_attach(&d, p, ex);
    d.se = fuse_session_new(&args, &ops, sizeof ops, &d);
    if (!d.se)
        goto out;
    if (fuse_session_mount(d.se, p->dir) != 0)
        goto out_destroy;
    if (fuse_set_signal_handlers(d.se) != 0)
        goto out_unmount;
    rc = serve_mounted(&d);
    fuse_remove_signal_handlers(d.se);
out_unmount:
    fuse_session_unmount(d.se);
out_destroy:
    fuse_session_destroy(d.se);
out:
    disk_finish(&d, &args);
    return rc;
}

/* ---- spares ------------------------------------------------------------ */

struct fusedisk_spare {
    struct disk d;
    struct fuse_args args;
    char *argv[2];
};

/* SIGTERM, SIGINT, SIGHUP: what stops a worker (libfuse's handlers). */
static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

/* The spare's FUSE loop, in a thread of its own: the stop signals come
 * here (the spare's other threads block them).  Says on loop_done when it
 * has ended. */
static void *spare_loop(void *arg)
{
    struct disk *d = arg;
    sigset_t stop;

    stop_signals(&stop);
    pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
    d->loop_rc = run_loop(d);
    (void)!write(d->loop_done[1], "x", 1);
    return NULL;
}

int fusedisk_spare_mount(const char *dir, unsigned connections, struct fusedisk_spare **out)
{
    struct fusedisk_spare *sp = calloc(1, sizeof *sp);
    struct disk *d;
    sigset_t stop, old;
    int rc = -EIO;

    if (!sp)
        return -ENOMEM;
    d = &sp->d;
    disk_init(d, connections_wanted(connections));
    alloc_cache_enable();
    sp->argv[0] = "homeport";
    sp->args = (struct fuse_args)FUSE_ARGS_INIT(1, sp->argv);
    if (pipe2(d->loop_done, O_CLOEXEC) < 0) {
        rc = -errno;
        goto out;
    }
    d->se = fuse_session_new(&sp->args, &ops, sizeof ops, d);
    if (!d->se)
        goto out;
    if (fuse_session_mount(d->se, dir) != 0)
        goto out_destroy;
    if (fuse_set_signal_handlers(d->se) != 0)
        goto out_unmount;
    stop_signals(&stop);
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    if (pthread_create(&d->loop_thread, NULL, spare_loop, d) == 0) {
        *out = sp;
        return 0;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    fuse_remove_signal_handlers(d->se);
out_unmount:
    fuse_session_unmount(d->se);
out_destroy:
    fuse_session_destroy(d->se);
out:
    if (d->loop_done[0] >= 0) {
        close(d->loop_done[0]);
        close(d->loop_done[1]);
    }
    fuse_opt_free_args(&sp->args);
    free(sp);
    return rc;
}

int fusedisk_spare_ended_fd(const struct fusedisk_spare *sp)
{
    return sp->d.loop_done[0];
}

/* The loop has ended: unmount (when not yet), close and free it all. */
static void spare_free(struct fusedisk_spare *sp)
{
    struct disk *d = &sp->d;

    fuse_remove_signal_handlers(d->se);
    fuse_session_unmount(d->se); /* once: a second call does nothing */
    fuse_session_destroy(d->se);
    disk_finish(d, &sp->args);
    close(d->loop_done[0]);
    close(d->loop_done[1]);
    free(sp);
}

void fusedisk_spare_drop(struct fusedisk_spare *sp)
{
    if (!sp)
        return;
    fuse_session_exit(sp->d.se);
    fuse_session_unmount(sp->d.se); /* its threads' reads end with ENODEV */
    pthread_join(sp->d.loop_thread, NULL);
    spare_free(sp);
}

int fusedisk_spare_serve(struct fusedisk_spare *sp, const struct fusedisk_params *p,
                         struct nbd_export *ex)
{
    struct disk *d = &sp->d;
    struct helpers h = {0};
    int rc;

    disk_attach(d, p, ex);
    helpers_start(d, &h);
    pthread_join(d->loop_thread, NULL);
    rc = d->loop_rc;
    helpers_stop(d, &h);
    spare_free(sp);
    return rc;
}
