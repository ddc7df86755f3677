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
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

struct disk {
    const struct fusedisk_params *p;
    pthread_rwlock_t lock; /* readers use h; the writer swaps it */
    pthread_mutex_t reconnect_mu;
    struct nbd_export ex;
    uint64_t size;
    bool read_only;
    atomic_bool dirty;       /* a write was sent since the last flush was */
    struct fetchahead ahead; /* the mount's reads, until the first write */
    unsigned seed;           /* of the reconnects' jitter, under reconnect_mu */
    double started;
    /* counters, under stats_mu */
    pthread_mutex_t stats_mu;
    uint64_t bytes_read, bytes_written, reconnects, io_errors;
    double dead_since;   /* 0 = connected */
    double last_attempt; /* of a reconnect after the dead timeout */
    char last_error[256];
    struct fuse_session *se;
    int stopping;            /* under stats_mu */
    pthread_cond_t stats_cv; /* wakes the stats thread to stop */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_stats(struct disk *d)
{
    struct textfile_kv kv = {0};

    if (!d->p->stats_path)
        return;
    pthread_mutex_lock(&d->stats_mu);
    textfile_kv_add(&kv, "state", "%s", d->dead_since ? "disconnected" : "connected");
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
        uint64_t sum = d->bytes_read + d->bytes_written + d->reconnects + d->io_errors;
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

/* Called after a failed request on handle `seen`.  Returns true when a
 * fresh handle is in place and the request should be retried. */
static bool reconnect(struct disk *d, struct nbd_handle *seen)
{
    bool fresh = false;

    pthread_mutex_lock(&d->reconnect_mu);
    pthread_rwlock_rdlock(&d->lock);
    bool replaced = d->ex.h != seen;
    bool dead = d->ex.h == NULL || handle_dead(d->ex.h);
    pthread_rwlock_unlock(&d->lock);
    if (replaced) { /* another thread reconnected meanwhile */
        pthread_mutex_unlock(&d->reconnect_mu);
        return true;
    }
    if (!dead) { /* a real I/O error from the server, not a dead link */
        pthread_mutex_unlock(&d->reconnect_mu);
        return false;
    }
    pthread_mutex_lock(&d->stats_mu);
    if (!d->dead_since) {
        d->dead_since = now_s();
        log_warn("%s: connection to %s lost; reconnecting", d->p->export, d->p->server->label);
    }
    double dead_since = d->dead_since;
    pthread_mutex_unlock(&d->stats_mu);
    write_stats(d);

    double limit = dead_since + d->p->dead_timeout_ms / 1000.0;
    bool expired = now_s() >= limit;
    if (expired && now_s() - d->last_attempt < 5.0) {
        pthread_mutex_unlock(&d->reconnect_mu);
        return false;
    }
    unsigned backoff_ms = 100;
    do {
        struct nbd_export ex;
        char why[HP_WHY_MAX];
        unsigned budget = d->p->connect_timeout_ms;
        d->last_attempt = now_s();
        if (nbd_export_open(d->p->server, d->p->export, budget, &ex, why, sizeof why) == 0) {
            if ((uint64_t)ex.size != d->size) {
                snprintf(why, sizeof why, "export size changed from %llu to %lld",
                         (unsigned long long)d->size, (long long)ex.size);
                nbd_export_close(&ex);
            } else {
                pthread_rwlock_wrlock(&d->lock);
                struct nbd_export old = d->ex;
                d->ex = ex;
                pthread_rwlock_unlock(&d->lock);
                if (old.h)
                    nbd_close(old.h);
                pthread_mutex_lock(&d->stats_mu);
                d->reconnects++;
                d->dead_since = 0;
                d->last_error[0] = '\0';
                pthread_mutex_unlock(&d->stats_mu);
                log_notice("%s: reconnected to %s", d->p->export, d->p->server->label);
                fresh = true;
                break;
            }
        }
        pthread_mutex_lock(&d->stats_mu);
        snprintf(d->last_error, sizeof d->last_error, "%.255s", why);
        textfile_one_line(d->last_error); /* one line in the stats file (home.h) */
        pthread_mutex_unlock(&d->stats_mu);
        if (expired)
            break;
        unsigned ms = clock_jitter_ms(backoff_ms, &d->seed);
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        backoff_ms = backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2;
    } while (now_s() < limit);
    if (!fresh)
        log_err("%s: server %s unreachable for %u ms: I/O fails until it is back (%s)",
                d->p->export, d->p->server->label, d->p->dead_timeout_ms, d->last_error);
    pthread_mutex_unlock(&d->reconnect_mu);
    write_stats(d);
    return fresh;
}

enum op { OP_READ, OP_WRITE, OP_FLUSH };

/* One request, with reconnect-and-retry.  Returns 0 or -errno. */
static int do_io(struct disk *d, enum op op, void *buf, size_t len, uint64_t off)
{
    if (op == OP_WRITE) {
        fetchahead_close(&d->ahead);   /* nothing read before it is served after it */
        atomic_store(&d->dirty, true); /* before it is sent: a flush after covers it */
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc;
        pthread_rwlock_rdlock(&d->lock);
        struct nbd_handle *h = d->ex.h;
        if (!h)
            rc = -1;
        else if (op == OP_READ)
            rc = nbd_pread(h, buf, len, off, 0);
        else if (op == OP_WRITE)
            rc = nbd_pwrite(h, buf, len, off, 0);
        else
            rc = d->ex.can_flush ? nbd_flush(h, 0) : 0;
        int err = rc < 0 ? (nbd_get_errno() ? nbd_get_errno() : EIO) : 0;
        pthread_rwlock_unlock(&d->lock);
        if (rc == 0) {
            pthread_mutex_lock(&d->stats_mu);
            if (op == OP_READ)
                d->bytes_read += len;
            else if (op == OP_WRITE)
                d->bytes_written += len;
            pthread_mutex_unlock(&d->stats_mu);
            return 0;
        }
        if (attempt == 0 && reconnect(d, h))
            continue;
        pthread_mutex_lock(&d->stats_mu);
        d->io_errors++;
        pthread_mutex_unlock(&d->stats_mu);
        return -(err == ENOTCONN || err == ESHUTDOWN || err == ECONNRESET ? EIO : err);
    }
    return -EIO;
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
    if (ino != FUSE_ROOT_ID && ino != DISK_INO) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    disk_stat(fuse_req_userdata(req), ino, &st);
    fuse_reply_attr(req, &st, 3600.0);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e = {0};
    if (parent != FUSE_ROOT_ID || strcmp(name, DISK_NAME) != 0) {
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
    for (off_t i = off; i < 3; i++) {
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
    if (d->read_only && (fi->flags & O_ACCMODE) != O_RDONLY) {
        fuse_reply_err(req, EROFS);
        return;
    }
    /* No page cache here: the loop device above caches, and O_DIRECT from
     * the loop device needs it. */
    fi->direct_io = 1;
    fi->keep_cache = 0;
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

/* FUSE_FLUSH comes with every close() of the disk file, not only when data
 * must be durable: the prepare's own open/close around LOOP_CONFIGURE sent
 * an NBD flush (a round trip, and an fdatasync on most servers) on the
 * login's path.  Nothing here is cached (direct_io), so a close has
 * nothing to flush; durability comes through fsync: the filesystem's
 * flushes reach the loop device, which fsyncs this file (op_fsync), and
 * the worker flushes once more when it ends. */
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
    (void)userdata;
    /* Bigger requests: fewer round trips to the server. */
    conn->max_write = 1 << 20;
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

/* len bytes at off, in a buffer of their own; NULL when the read failed. */
static uint8_t *fetch(struct disk *d, uint64_t off, size_t len)
{
    uint8_t *buf = malloc(len);

    if (buf && do_io(d, OP_READ, buf, len, off) < 0) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

/* Fetch the range r (announced), parse it with step, announce what step
 * found (*next) before the data goes in: a read served from r can only
 * come after its successor is announced.  0, or -1 when the chain ends. */
static int fetch_step(struct disk *d, struct ext4_range r, struct ext4meta *m,
                      int (*step)(struct ext4meta *, const uint8_t *, size_t, struct ext4_range *),
                      struct ext4_range *next)
{
    uint8_t *buf = fetch(d, r.off, r.len);
    int rc = buf && step ? step(m, buf, r.len, next) : -1;

    if (rc == 0 && !fetchahead_expect(&d->ahead, next->off, next->len))
        rc = -1;
    fetchahead_put(&d->ahead, r.off, buf, r.len); /* NULL: given up */
    return rc;
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

/* The reads of an ext4 mount (ext4meta.h), fetched one step after the
 * other alongside the FUSE mount, the loop device and the check; each
 * range is announced before it is asked for, so the kernel's reads wait
 * for it rather than asking the server again.  The head is announced by
 * fusedisk_serve before this starts.  What it cannot follow it leaves to
 * the mount's own reads. */
static void *ahead_thread(void *arg)
{
    struct disk *d = arg;
    struct ext4meta m = {.dev_size = d->size};
    struct ext4_range r = {0, d->size < EXT4META_HEAD ? (uint32_t)d->size : EXT4META_HEAD}, next;

    if (fetch_step(d, r, &m, step_super, &next) < 0)
        return NULL;
    if (next.off == m.gdt.off && next.len == m.gdt.len) {
        r = next;
        if (fetch_step(d, r, &m, step_gdt, &next) < 0)
            return NULL;
    }
    r = next;
    if (fetch_step(d, r, &m, step_inodes, &next) < 0)
        return NULL;
    fetch_step(d, next, &m, NULL, &next); /* the journal's superblock */
    return NULL;
}

int fusedisk_serve(const struct fusedisk_params *p, struct nbd_export *ex)
{
    char *argv[] = {"homeport", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(1, argv);
    struct fuse_loop_config *lc;
    struct disk d = {.p = p, .ex = *ex, .size = (uint64_t)ex->size, .read_only = ex->read_only};
    int rc = 0;

    memset(ex, 0, sizeof *ex);
    alloc_cache_enable(); /* this process moves the home's data */
    fetchahead_init(&d.ahead);
    d.started = now_s();
    d.seed = clock_seed();
    pthread_rwlock_init(&d.lock, NULL);
    pthread_mutex_init(&d.reconnect_mu, NULL);
    pthread_mutex_init(&d.stats_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d.stats_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_t at; /* the head announced here: the kernel's first read may come first */
    bool have_at =
        fetchahead_expect(&d.ahead, 0, d.size < EXT4META_HEAD ? d.size : EXT4META_HEAD) &&
        pthread_create(&at, NULL, ahead_thread, &d) == 0;
    if (!have_at)
        fetchahead_close(&d.ahead); /* nothing waits for a head that never comes */
    d.se = fuse_session_new(&args, &ops, sizeof ops, &d);
    if (!d.se) {
        rc = -EIO;
        goto out;
    }
    if (fuse_session_mount(d.se, p->dir) != 0) {
        rc = -EIO;
        goto out_destroy;
    }
    if (fuse_set_signal_handlers(d.se) != 0) {
        rc = -EIO;
        goto out_unmount;
    }
    write_stats(&d);
    if (p->ready_fd >= 0) {
        (void)!write(p->ready_fd, "ok\n", 3);
        close(p->ready_fd);
    }
    lc = fuse_loop_cfg_create();
    if (!lc) {
        rc = -ENOMEM;
        goto out_handlers;
    }
    pthread_t st;
    bool have_st = pthread_create(&st, NULL, stats_thread, &d) == 0;
    /* As many idle threads as threads: with fewer, libfuse ends and
     * creates a thread for nearly every request under load. */
    fuse_loop_cfg_set_max_threads(lc, 16);
    fuse_loop_cfg_set_idle_threads(lc, 16);
    rc = fuse_session_loop_mt(d.se, lc);
    rc = rc < 0 ? rc : 0;
    fuse_loop_cfg_destroy(lc);
    pthread_mutex_lock(&d.stats_mu);
    d.stopping = 1;
    pthread_cond_signal(&d.stats_cv);
    pthread_mutex_unlock(&d.stats_mu);
    if (have_st)
        pthread_join(st, NULL);
    flush_dirty(&d);
out_handlers:
    fuse_remove_signal_handlers(d.se);
out_unmount:
    fuse_session_unmount(d.se);
out_destroy:
    fuse_session_destroy(d.se);
out:
    if (have_at)
        pthread_join(at, NULL);
    fetchahead_close(&d.ahead);
    log_debug("%s: %llu reads served from what was fetched ahead", p->export,
              (unsigned long long)fetchahead_hits(&d.ahead));
    fuse_opt_free_args(&args);
    nbd_export_close(&d.ex);
    write_stats(&d);
    return rc;
}
