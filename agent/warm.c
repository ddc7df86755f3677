#include "warm.h"

#include <errno.h>
#include <libnbd.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "json.h"
#include "log.h"
#include "nbd.h"
#include "textfile.h"
#include "tls.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define YOUNG_MS 5000 /* an idle connection closed sooner than this counts as a failure */
/* After a take: the login that took it (both stages) is done by then. */
#define REFILL_DELAY_MS 100
/* First fill, and a refill after the server closed a connection: at a
 * random moment within this, so that many agents that start (or see their
 * server restart) together do not all connect in the same second. */
#define SPREAD_MS 4000
/* A server seen to close idle connections (learn()) gets this many. */
#define LIMITED_KEEP 1u
/* ...and one is not handed out this close to its end. */
#define LIMIT_MARGIN_MS 1000

enum slot_state { W_WAIT, W_CONNECT, W_HANDSHAKE, W_IDLE };

/* What the pool knows of one server. */
struct wsrv {
    const struct hp_server *srv;
    unsigned idle_limit_ms; /* 0, or: it closes idle connections after about this */
    unsigned closed;        /* idle connections it closed, since the start */
    bool failing;           /* the last attempt failed, none has succeeded since */
};

struct slot {
    const struct hp_server *srv;
    struct wsrv *ws;
    unsigned rank;     /* among the slots of ws */
    int64_t last_life; /* how long the last connection lived idle; 0: none closed */
    enum slot_state state;
    int fd;               /* W_CONNECT: our socket; later libnbd's */
    struct nbd_handle *h; /* W_HANDSHAKE, W_IDLE */
    int64_t due;          /* W_WAIT: start then; W_CONNECT/W_HANDSHAKE: give up then */
    int64_t idle_since;
    unsigned backoff_ms;
    size_t pollidx; /* where warm_poll put it, or SIZE_MAX */
};

struct warm_pool {
    unsigned timeout_ms, per;
    size_t n, nsrv;
    struct slot *slots;
    struct wsrv *srvs;
    uint64_t rng;
    bool dirty; /* the status file is out of date */
    char status_path[PATH_MAX];
};

/* A random number below n (n > 0): xorshift64, seeded per agent. */
static unsigned rnd(struct warm_pool *p, unsigned n)
{
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 7;
    p->rng ^= p->rng << 17;
    return (unsigned)(p->rng % n);
}

/* A wait of about ms, at random: from half of it, over at least
 * SPREAD_MS (many agents fail together when their server restarts). */
static int64_t jittered(struct warm_pool *p, unsigned ms)
{
    return (int64_t)ms / 2 + rnd(p, (ms > SPREAD_MS ? ms : SPREAD_MS) + 1);
}

/* While connections to a server fail, only its first slot tries (backed
 * off); the others wait until one gets through (recovered()). */
static bool held_back(const struct slot *s)
{
    return s->ws->failing && s->rank > 0 && (s - s->rank)->state != W_IDLE;
}

/* Does s hold a connection now?  Not a spare one to a server that closes
 * idle connections. */
static bool active(const struct slot *s)
{
    return !s->ws->idle_limit_ms || s->rank < LIMITED_KEEP;
}

static void drop(struct warm_pool *p, struct slot *s, int64_t now, bool failed, const char *why)
{
    if (s->h)
        nbd_close(s->h); /* closes fd too; nothing is sent: a plain close */
    else if (s->fd >= 0)
        close(s->fd);
    s->h = NULL;
    s->fd = -1;
    if (failed) {
        s->ws->failing = true;
        s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (s->backoff_ms > BACKOFF_MAX_MS)
            s->backoff_ms = BACKOFF_MAX_MS;
        /* the first failure of a series at info level: not one line a retry */
        if (s->backoff_ms == BACKOFF_MIN_MS)
            log_info("warm connection to %s: %s; again in %u ms", s->srv->label, why,
                     s->backoff_ms);
        else
            log_debug("warm connection to %s: %s; again in %u ms", s->srv->label, why,
                      s->backoff_ms);
    } else {
        s->backoff_ms = 0;
    }
    if (s->state == W_IDLE)
        p->dirty = true;
    s->state = W_WAIT;
    s->due = now + (s->backoff_ms ? jittered(p, s->backoff_ms) : 0);
}

/* The handshake failed: drop with libnbd's reason (under TLS, with what
 * to check first). */
static void drop_failed(struct warm_pool *p, struct slot *s, int64_t now)
{
    const char *e = nbd_get_error(), *hint;
    char why[HP_WHY_MAX];

    hint = tls_hint(s->srv->tls, e, s->h && nbd_aio_is_closed(s->h) == 1);
    snprintf(why, sizeof why, "%s%s%s%s", hint, *hint ? " (" : "", e ? e : "handshake failed",
             *hint ? ")" : "");
    drop(p, s, now, true, why);
}

static struct nbd_handle *warm_handle(void)
{
    struct nbd_handle *h = nbd_create();

    if (h && (nbd_set_opt_mode(h, true) < 0 || nbd_set_request_structured_replies(h, false) < 0)) {
        nbd_close(h);
        h = NULL;
    }
    return h;
}

static void start(struct warm_pool *p, struct slot *s, int64_t now)
{
    unsigned timeout_ms = p->timeout_ms;
    const struct hp_server *srv = s->srv;
    int fd = -1, rc = 0;

    if (srv->tls) { /* libnbd connects (tls.h), and does the TLS handshake */
        s->h = warm_handle();
        if (!s->h || nbd_connect_tls(s->h, srv) < 0) {
            drop(p, s, now, true, s->h ? nbd_get_error() : "out of memory");
            return;
        }
        s->state = W_HANDSHAKE;
        s->due = now + timeout_ms;
        return;
    }
    if (srv->kind == HP_SRV_UNIX) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        memcpy(sa.sun_path, srv->path, sizeof sa.sun_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS))
            rc = -errno;
    } else {
        /* A numeric address resolves at once; a name may block here (see
         * homeport.conf(5): name servers by address). */
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
        if (getaddrinfo(srv->host, srv->port, &hints, &ai) != 0) {
            rc = -EHOSTUNREACH;
        } else {
            fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0 || (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS))
                rc = -errno;
            freeaddrinfo(ai);
        }
    }
    s->fd = fd;
    if (rc < 0) {
        drop(p, s, now, true, strerror(-rc));
        return;
    }
    s->state = W_CONNECT;
    s->due = now + timeout_ms;
}

/* The socket is connected: let libnbd do the handshake, stopping in the
 * options phase. */
static void connected(struct warm_pool *p, struct slot *s, int64_t now)
{
    int err = 0;
    socklen_t len = sizeof err;

    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
        drop(p, s, now, true, strerror(err ? err : errno));
        return;
    }
    if (s->srv->kind == HP_SRV_TCP)
        nbd_tune_socket(s->fd);
    s->h = warm_handle();
    if (!s->h || nbd_aio_connect_socket(s->h, s->fd) < 0) {
        drop(p, s, now, true, s->h ? nbd_get_error() : "out of memory");
        return;
    }
    s->state = W_HANDSHAKE;
}

static unsigned kept(const struct warm_pool *p, const struct wsrv *w)
{
    return w->idle_limit_ms && p->per > LIMITED_KEEP ? LIMITED_KEEP : p->per;
}

/* The status file (RUN_DIR/warm) for homeport status: the agent's pid,
 * then a line a server: configured, kept, ready, idle limit in ms (0:
 * none), idle connections it closed, its label; tab-separated. */
static void save(struct warm_pool *p)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f;

    if (!p->dirty || !p->status_path[0] || !(f = open_memstream(&text, &len)))
        return;
    p->dirty = false;
    fprintf(f, "%d\n", (int)getpid());
    for (size_t k = 0; k < p->nsrv; k++) {
        const struct wsrv *w = &p->srvs[k];
        unsigned ready = 0;
        for (size_t i = 0; i < p->n; i++)
            ready += p->slots[i].ws == w && p->slots[i].state == W_IDLE;
        fprintf(f, "%u\t%u\t%u\t%u\t%u\t%s\n", p->per, kept(p, w), ready, w->idle_limit_ms,
                w->closed, w->srv->label);
    }
    fclose(f);
    /* A status for `homeport status`, rewritten from the agent's loop at
     * every take and refill: no fsync (the login must not wait on the
     * disk for it; run_dir does not outlive a boot anyway). */
    int rc = text ? textfile_replace(p->status_path, text, len, 0644, TEXTFILE_NO_SYNC) : 0;
    if (rc < 0)
        log_debug("cannot write %s: %s", p->status_path, strerror(-rc));
    free(text);
}

struct warm_pool *warm_new(const struct hp_config *cfg, unsigned per)
{
    struct warm_pool *p = calloc(1, sizeof *p);
    const struct hp_server *home = config_home_server(cfg);
    bool home_listed = !home;
    int64_t now = clock_ms();

    if (!p)
        return NULL;
    p->timeout_ms = cfg->connect_timeout_ms;
    p->per = per;
    for (size_t i = 0; i < cfg->nservers && !home_listed; i++)
        home_listed = strcmp(cfg->servers[i].label, home->label) == 0;
    p->nsrv = per ? cfg->nservers + !home_listed : 0;
    p->n = p->nsrv * per;
    p->srvs = p->nsrv ? calloc(p->nsrv, sizeof *p->srvs) : NULL;
    p->slots = p->n ? calloc(p->n, sizeof *p->slots) : NULL;
    if (p->n && (!p->slots || !p->srvs)) {
        free(p->srvs);
        free(p->slots);
        free(p);
        return NULL;
    }
    if (getrandom(&p->rng, sizeof p->rng, GRND_NONBLOCK) != sizeof p->rng)
        p->rng = (uint64_t)now * 2654435761u ^ (uint64_t)getpid();
    p->rng |= 1; /* xorshift never leaves 0 */
    for (size_t k = 0; k < p->nsrv; k++) {
        p->srvs[k].srv = k < cfg->nservers ? &cfg->servers[k] : home;
        for (unsigned r = 0; r < per; r++)
            p->slots[k * per + r] = (struct slot){.srv = p->srvs[k].srv,
                                                  .ws = &p->srvs[k],
                                                  .rank = r,
                                                  .state = W_WAIT,
                                                  .fd = -1,
                                                  .due = now + rnd(p, SPREAD_MS)};
    }
    if (cfg->run_dir && cfg->run_dir[0])
        snprintf(p->status_path, sizeof p->status_path, "%s/warm", cfg->run_dir);
    p->dirty = true;
    save(p);
    return p;
}

void warm_free(struct warm_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        drop(p, &p->slots[i], 0, false, NULL);
    if (p->status_path[0])
        unlink(p->status_path);
    free(p->slots);
    free(p->srvs);
    free(p);
}

/* An idle connection that lived this long without being closed: the
 * server no longer closes idle ones (forget()). */
static int64_t forget_after(const struct wsrv *w)
{
    return 2 * (int64_t)w->idle_limit_ms + YOUNG_MS;
}

size_t warm_poll(struct warm_pool *p, struct pollfd *fds, size_t max, int64_t now, int64_t *next)
{
    size_t n = 0;

    if (!p)
        return 0;
    for (size_t i = 0; i < p->n; i++) {
        struct slot *s = &p->slots[i];
        short ev = 0;
        s->pollidx = SIZE_MAX;
        if (s->state == W_WAIT && (!active(s) || held_back(s)))
            continue;
        if (s->state == W_WAIT && s->due <= now)
            start(p, s, now);
        switch (s->state) {
        case W_WAIT: break;
        case W_CONNECT: ev = POLLOUT; break;
        case W_HANDSHAKE: {
            unsigned dir = nbd_aio_get_direction(s->h);
            ev = (short)(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                         ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0));
            break;
        }
        case W_IDLE: ev = POLLIN; break; /* a server says nothing here unless it goes */
        }
        int64_t t = s->state != W_IDLE     ? s->due
                    : s->ws->idle_limit_ms ? s->idle_since + forget_after(s->ws)
                                           : INT64_MAX;
        if (t < *next)
            *next = t;
        if (ev && n < max) {
            s->pollidx = n;
            fds[n++] = (struct pollfd){.fd = s->state == W_CONNECT ? s->fd : nbd_aio_get_fd(s->h),
                                       .events = ev};
        }
    }
    return n;
}

/* Two idle connections in a row on one slot closed after about the same
 * time (within a fifth, or a second): the server closes idle connections
 * (qemu's NBD server does, in the options phase).  Said once a server. */
static void learn(struct warm_pool *p, struct slot *s, int64_t life)
{
    struct wsrv *w = s->ws;
    int64_t prev = s->last_life, tol = prev / 5 > 1000 ? prev / 5 : 1000;
    bool first = !w->idle_limit_ms;

    s->last_life = life;
    if (!prev || life < prev - tol || life > prev + tol)
        return;
    if (!first && life >= w->idle_limit_ms)
        return;
    w->idle_limit_ms = (unsigned)(life < prev ? life : prev);
    p->dirty = true;
    if (first)
        log_warn("NBD server %s closes idle connections after about %.1f s: keeping %u warm "
                 "connection(s) to it instead of %u, opened again no sooner than that after "
                 "one closes",
                 w->srv->label, w->idle_limit_ms / 1000.0, kept(p, w), p->per);
}

/* An idle connection lived past forget_after(): back to the full pool. */
static void forget(struct warm_pool *p, struct wsrv *w, int64_t now)
{
    log_info("NBD server %s keeps idle connections open now: back to %u warm connection(s)",
             w->srv->label, p->per);
    w->idle_limit_ms = 0;
    p->dirty = true;
    for (size_t i = 0; i < p->n; i++) {
        struct slot *s = &p->slots[i];
        if (s->ws != w)
            continue;
        s->last_life = 0;
        if (s->state == W_WAIT)
            s->due = now + rnd(p, SPREAD_MS);
    }
}

/* The server closed s's idle connection (or it is found dead at a take):
 * open it again at a random moment (many agents see a server restart at
 * once), backed off when it died young, no sooner than the server's idle
 * limit when it has one. */
static void closed_idle(struct warm_pool *p, struct slot *s, int64_t now)
{
    struct wsrv *w = s->ws;
    int64_t life = now - s->idle_since;
    bool young = life < YOUNG_MS;

    if (w->closed++ == 0)
        log_info("warm connection to %s closed by the server after %lld ms idle (the next ones "
                 "are logged at debug level)",
                 s->srv->label, (long long)life);
    else
        log_debug("warm connection to %s closed by the server after %lld ms idle", s->srv->label,
                  (long long)life);
    learn(p, s, life);
    drop(p, s, now, young, "closed young");
    if (!young)
        s->due = now + rnd(p, SPREAD_MS);
    if (w->idle_limit_ms && s->due < now + (int64_t)w->idle_limit_ms)
        s->due = now + w->idle_limit_ms + rnd(p, w->idle_limit_ms / 2 + 1);
}

static void idle_event(struct warm_pool *p, struct slot *s, short rev, int64_t now)
{
    if (rev)
        closed_idle(p, s, now);
    else if (s->ws->idle_limit_ms && now - s->idle_since > forget_after(s->ws))
        forget(p, s->ws, now);
}

/* A connection to w got through after failures: the slots held back
 * follow, each at a random moment. */
static void recovered(struct warm_pool *p, struct wsrv *w, int64_t now)
{
    w->failing = false;
    for (size_t i = 0; i < p->n; i++)
        if (p->slots[i].ws == w && p->slots[i].state == W_WAIT && p->slots[i].due < now)
            p->slots[i].due = now + rnd(p, SPREAD_MS);
}

/* A connection on its way: connected, handshake, or timed out. */
static void progress(struct warm_pool *p, struct slot *s, short rev, int64_t now)
{
    if (s->state == W_CONNECT && rev)
        connected(p, s, now);
    else if (s->state == W_HANDSHAKE && rev) {
        bool bad = (rev & (POLLIN | POLLHUP | POLLERR)) && nbd_aio_notify_read(s->h) < 0;
        if (!bad && (rev & POLLOUT))
            bad = nbd_aio_notify_write(s->h) < 0;
        if (bad)
            drop_failed(p, s, now);
    }
    if (s->state == W_HANDSHAKE) {
        if (nbd_aio_is_negotiating(s->h)) {
            s->state = W_IDLE;
            s->idle_since = now;
            p->dirty = true;
            if (s->ws->failing)
                recovered(p, s->ws, now);
            log_debug("warm connection to %s ready", s->srv->label);
        } else if (nbd_aio_is_dead(s->h) || nbd_aio_is_closed(s->h)) {
            drop_failed(p, s, now);
        }
    }
    if ((s->state == W_CONNECT || s->state == W_HANDSHAKE) && now >= s->due)
        drop(p, s, now, true, "timed out");
}

void warm_events(struct warm_pool *p, const struct pollfd *fds, size_t n, int64_t now)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        struct slot *s = &p->slots[i];
        short rev = s->pollidx < n ? fds[s->pollidx].revents : 0;

        if (!active(s)) { /* a spare to a server that closes idle connections */
            if (s->state != W_WAIT)
                drop(p, s, now, false, NULL);
        } else if (s->state == W_IDLE)
            idle_event(p, s, rev, now);
        else if (s->state != W_WAIT)
            progress(p, s, rev, now);
    }
    save(p);
}

/* The server has closed it (or sent something it should not have). */
static bool gone(const struct slot *s)
{
    struct pollfd pfd = {.fd = nbd_aio_get_fd(s->h), .events = POLLIN};
    return poll(&pfd, 1, 0) != 0;
}

struct nbd_handle *warm_take(struct warm_pool *p, const struct hp_server *srv, int64_t now)
{
    if (!p || !srv)
        return NULL;
    for (size_t i = 0; i < p->n; i++) {
        struct slot *s = &p->slots[i];
        if (s->state != W_IDLE || strcmp(s->srv->label, srv->label) != 0)
            continue;
        if (gone(s)) {
            closed_idle(p, s, now);
            continue;
        }
        /* about to be closed by the server: a fresh connection is surer */
        if (s->ws->idle_limit_ms &&
            now - s->idle_since + LIMIT_MARGIN_MS >= (int64_t)s->ws->idle_limit_ms)
            continue;
        struct nbd_handle *h = s->h;
        s->h = NULL;
        s->fd = -1;
        s->backoff_ms = 0;
        /* Replaced a little later: the login that takes it runs now,
         * and a new connection's handshake (under TLS some ms of CPU
         * at both ends) would compete with it. */
        s->state = W_WAIT;
        s->due = now + REFILL_DELAY_MS;
        p->dirty = true;
        return h;
    }
    return NULL;
}

size_t warm_ready(const struct warm_pool *p)
{
    size_t n = 0;
    for (size_t i = 0; p && i < p->n; i++)
        n += p->slots[i].state == W_IDLE;
    return n;
}

struct warm_line {
    unsigned per, kept, ready, limit_ms, closed;
    const char *label;
};

static void print_line(FILE *out, bool json, int n, const struct warm_line *l)
{
    if (!json) {
        fprintf(out, "warm connections to %s: %u ready of %u", l->label, l->ready, l->kept);
        if (l->limit_ms)
            fprintf(out, " (%u configured: the server closes idle connections after about %.1f s)",
                    l->per, l->limit_ms / 1000.0);
        fprintf(out, ", %u closed idle by the server\n", l->closed);
        return;
    }
    fprintf(out, "%s\n  {\"server\": ", n ? "," : "");
    json_str(out, l->label);
    fprintf(out,
            ", \"configured\": %u, \"kept\": %u, \"ready\": %u, \"idle_limit_ms\": %u, "
            "\"closed_idle\": %u}",
            l->per, l->kept, l->ready, l->limit_ms, l->closed);
}

int warm_status(const char *run_dir, FILE *out, bool json)
{
    char path[PATH_MAX], line[600];
    FILE *f;
    int pid = 0, n = 0;

    snprintf(path, sizeof path, "%s/warm", run_dir);
    f = fopen(path, "re");
    if (json)
        fprintf(out, ", \"warm\": [");
    /* the file of an agent that is gone says nothing */
    if (f && fgets(line, sizeof line, f) && sscanf(line, "%d", &pid) == 1 && pid > 0 &&
        (kill(pid, 0) == 0 || errno == EPERM)) {
        while (fgets(line, sizeof line, f)) {
            struct warm_line l;
            int off = 0;
            if (sscanf(line, "%u %u %u %u %u %n", &l.per, &l.kept, &l.ready, &l.limit_ms, &l.closed,
                       &off) < 5 ||
                !off)
                continue;
            line[strcspn(line, "\n")] = '\0';
            l.label = line + off;
            print_line(out, json, n++, &l);
        }
    }
    if (f)
        fclose(f);
    if (json)
        fprintf(out, "]");
    return n;
}
