#include "warm.h"

#include <errno.h>
#include <libnbd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "nbd.h"
#include "tls.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define YOUNG_MS 5000 /* an idle connection closed sooner than this counts as a failure */
/* After a take: the login that took it (both stages) is done by then. */
#define REFILL_DELAY_MS 100

enum slot_state { W_WAIT, W_CONNECT, W_HANDSHAKE, W_IDLE };

struct slot {
    const struct hp_server *srv;
    enum slot_state state;
    int fd;               /* W_CONNECT: our socket; later libnbd's */
    struct nbd_handle *h; /* W_HANDSHAKE, W_IDLE */
    int64_t due;          /* W_WAIT: start then; W_CONNECT/W_HANDSHAKE: give up then */
    int64_t idle_since;
    unsigned backoff_ms;
    size_t pollidx; /* where warm_poll put it, or SIZE_MAX */
};

struct warm_pool {
    unsigned timeout_ms;
    size_t n;
    struct slot *slots;
};

static void drop(struct slot *s, int64_t now, bool failed, const char *why)
{
    if (s->h)
        nbd_close(s->h); /* closes fd too; nothing is sent: a plain close */
    else if (s->fd >= 0)
        close(s->fd);
    s->h = NULL;
    s->fd = -1;
    if (failed) {
        s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (s->backoff_ms > BACKOFF_MAX_MS)
            s->backoff_ms = BACKOFF_MAX_MS;
        log_info("warm connection to %s: %s; again in %u ms", s->srv->label, why, s->backoff_ms);
    } else {
        s->backoff_ms = 0;
    }
    s->state = W_WAIT;
    s->due = now + s->backoff_ms;
}

/* The handshake failed: drop with libnbd's reason (under TLS, with what
 * to check first). */
static void drop_failed(struct slot *s, int64_t now)
{
    const char *e = nbd_get_error(), *hint;
    char why[600];

    hint = tls_hint(s->srv->tls, e, s->h && nbd_aio_is_closed(s->h) == 1);
    snprintf(why, sizeof why, "%s%s%s%s", hint, *hint ? " (" : "", e ? e : "handshake failed",
             *hint ? ")" : "");
    drop(s, now, true, why);
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

static void start(struct slot *s, int64_t now, unsigned timeout_ms)
{
    const struct hp_server *srv = s->srv;
    int fd = -1, rc = 0;

    if (srv->tls) { /* libnbd connects (tls.h), and does the TLS handshake */
        s->h = warm_handle();
        if (!s->h || nbd_connect_tls(s->h, srv) < 0) {
            drop(s, now, true, s->h ? nbd_get_error() : "out of memory");
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
        drop(s, now, true, strerror(-rc));
        return;
    }
    s->state = W_CONNECT;
    s->due = now + timeout_ms;
}

/* The socket is connected: let libnbd do the handshake, stopping in the
 * options phase. */
static void connected(struct slot *s, int64_t now)
{
    int err = 0;
    socklen_t len = sizeof err;

    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
        drop(s, now, true, strerror(err ? err : errno));
        return;
    }
    if (s->srv->kind == HP_SRV_TCP)
        nbd_tune_socket(s->fd);
    s->h = warm_handle();
    if (!s->h || nbd_aio_connect_socket(s->h, s->fd) < 0) {
        drop(s, now, true, s->h ? nbd_get_error() : "out of memory");
        return;
    }
    s->state = W_HANDSHAKE;
}

struct warm_pool *warm_new(const struct hp_config *cfg, unsigned per)
{
    struct warm_pool *p = calloc(1, sizeof *p);
    const struct hp_server *home = config_home_server(cfg);
    size_t nsrv = cfg->nservers;
    bool home_listed = !home;

    if (!p)
        return NULL;
    p->timeout_ms = cfg->connect_timeout_ms;
    for (size_t i = 0; i < cfg->nservers && !home_listed; i++)
        home_listed = strcmp(cfg->servers[i].label, home->label) == 0;
    if (!home_listed)
        nsrv++;
    p->n = nsrv * per;
    p->slots = p->n ? calloc(p->n, sizeof *p->slots) : NULL;
    if (p->n && !p->slots) {
        free(p);
        return NULL;
    }
    for (size_t i = 0; i < p->n; i++) {
        size_t k = i / per;
        p->slots[i] = (struct slot){
            .srv = k < cfg->nservers ? &cfg->servers[k] : home, .state = W_WAIT, .fd = -1};
    }
    return p;
}

void warm_free(struct warm_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        drop(&p->slots[i], 0, false, NULL);
    free(p->slots);
    free(p);
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
        if (s->state == W_WAIT && s->due <= now)
            start(s, now, p->timeout_ms);
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
        if (s->state != W_IDLE && s->due < *next)
            *next = s->due;
        if (ev && n < max) {
            s->pollidx = n;
            fds[n++] = (struct pollfd){.fd = s->state == W_CONNECT ? s->fd : nbd_aio_get_fd(s->h),
                                       .events = ev};
        }
    }
    return n;
}

void warm_events(struct warm_pool *p, const struct pollfd *fds, size_t n, int64_t now)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        struct slot *s = &p->slots[i];
        short rev = s->pollidx < n ? fds[s->pollidx].revents : 0;

        if (s->state == W_IDLE) {
            if (rev) {
                bool young = now - s->idle_since < YOUNG_MS;
                log_info("warm connection to %s closed by the server after %lld ms idle",
                         s->srv->label, (long long)(now - s->idle_since));
                drop(s, now, young, "closed young");
            }
            continue;
        }
        if (s->state == W_CONNECT && rev)
            connected(s, now);
        else if (s->state == W_HANDSHAKE && rev) {
            bool bad = (rev & (POLLIN | POLLHUP | POLLERR)) && nbd_aio_notify_read(s->h) < 0;
            if (!bad && (rev & POLLOUT))
                bad = nbd_aio_notify_write(s->h) < 0;
            if (bad)
                drop_failed(s, now);
        }
        if (s->state == W_HANDSHAKE) {
            if (nbd_aio_is_negotiating(s->h)) {
                s->state = W_IDLE;
                s->idle_since = now;
                log_debug("warm connection to %s ready", s->srv->label);
            } else if (nbd_aio_is_dead(s->h) || nbd_aio_is_closed(s->h)) {
                drop_failed(s, now);
            }
        }
        if ((s->state == W_CONNECT || s->state == W_HANDSHAKE) && now >= s->due)
            drop(s, now, true, "timed out");
    }
}

struct nbd_handle *warm_take(struct warm_pool *p, const struct hp_server *srv, int64_t now)
{
    if (!p || !srv)
        return NULL;
    for (size_t i = 0; i < p->n; i++) {
        struct slot *s = &p->slots[i];
        if (s->state == W_IDLE && strcmp(s->srv->label, srv->label) == 0) {
            struct nbd_handle *h = s->h;
            s->h = NULL;
            s->fd = -1;
            s->backoff_ms = 0;
            /* Replaced a little later: the login that takes it runs now,
             * and a new connection's handshake (under TLS some ms of CPU
             * at both ends) would compete with it. */
            s->state = W_WAIT;
            s->due = now + REFILL_DELAY_MS;
            return h;
        }
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
