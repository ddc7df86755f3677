#include "nbd.h"

#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum phase { P_CONNECT, P_HANDSHAKE, P_LIST, P_INFO, P_ABORT, P_DONE };

static const char *const phase_names[] = {"connect", "handshake", "list", "info", "abort", "done"};

struct probe {
    struct nbd_probe *out;
    const char *export;
    struct nbd_handle *h;
    int sock;
    struct addrinfo *ai, *next_ai;
    enum phase phase;
    double t0, t_phase;
    bool cmd_done;
    int cmd_err;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void fail(struct probe *p, int err, const char *msg)
{
    p->out->err = err < 0 ? err : -err;
    if (!p->out->err)
        p->out->err = -EIO;
    p->out->phase = phase_names[p->phase];
    snprintf(p->out->message, sizeof p->out->message, "%s", msg ? msg : strerror(-p->out->err));
    p->phase = P_DONE;
}

/* A libnbd failure; under TLS with what to check first. */
static void fail_nbd(struct probe *p)
{
    int e = nbd_get_errno();
    bool closed = p->h && nbd_aio_is_closed(p->h);
    const char *msg = nbd_get_error(), *hint = tls_hint(p->out->server->tls, msg, closed);
    char buf[sizeof p->out->message];

    if (*hint) {
        snprintf(buf, sizeof buf, "%s (%s)", hint, msg ? msg : "closed");
        msg = buf;
    }
    fail(p, closed ? EPROTO : e ? e : EPROTO, msg);
}

static int list_cb(void *user, const char *name, const char *description)
{
    struct nbd_probe *o = user;
    char **g;

    (void)description;
    g = realloc(o->exports, (o->nexports + 1) * sizeof *g);
    if (!g)
        return -1;
    o->exports = g;
    if ((o->exports[o->nexports] = strdup(name)))
        o->nexports++;
    return 0;
}

static int done_cb(void *user, int *error)
{
    struct probe *p = user;
    p->cmd_done = true;
    p->cmd_err = *error;
    return 1;
}

/* Start a non-blocking connect to the next address; false when none is left. */
static bool start_connect(struct probe *p)
{
    const struct hp_server *s = p->out->server;

    if (s->kind == HP_SRV_UNIX) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (p->sock >= 0)
            return false; /* one address only, already tried */
        memcpy(sa.sun_path, s->path, sizeof sa.sun_path);
        p->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->sock < 0 ||
            (connect(p->sock, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)) {
            fail(p, errno, NULL);
            return true;
        }
        return true;
    }
    while (p->next_ai) {
        struct addrinfo *a = p->next_ai;
        p->next_ai = a->ai_next;
        if (p->sock >= 0)
            close(p->sock);
        p->sock =
            socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (p->sock < 0)
            continue;
        nbd_tune_socket(p->sock);
        if (connect(p->sock, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS)
            return true;
        if (!p->next_ai) {
            fail(p, errno, NULL);
            return true;
        }
    }
    return false;
}

void nbd_tune_socket(int fd)
{
    int on = 1, idle = 10, intvl = 5, cnt = 3;

    /* Requests and replies are small writes that must go out at once:
     * without TCP_NODELAY, Nagle's algorithm holds one back for the
     * server's delayed ACK (40 ms) */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

int nbd_connect_tls(struct nbd_handle *h, const struct hp_server *srv)
{
    int rc;

    if (tls_apply(h, srv->tls) < 0)
        return -1;
    rc = srv->kind == HP_SRV_TCP ? nbd_aio_connect_tcp(h, srv->host, srv->port)
                                 : nbd_aio_connect_unix(h, srv->path);
    if (rc == 0 && srv->kind == HP_SRV_TCP && nbd_aio_get_fd(h) >= 0)
        nbd_tune_socket(nbd_aio_get_fd(h));
    return rc < 0 ? -1 : 0;
}

static void step(struct probe *p);

/* libnbd says what TLS it negotiated in a debug message only. */
static int debug_cb(void *user, const char *context, const char *msg)
{
    static const char mark[] = "connection is using TLS: ";
    struct nbd_probe *o = user;

    (void)context;
    if (strncmp(msg, mark, sizeof mark - 1) == 0)
        snprintf(o->tls_info, sizeof o->tls_info, "%s", msg + sizeof mark - 1);
    return 0;
}

static struct nbd_handle *probe_handle(struct probe *p)
{
    struct nbd_handle *h = nbd_create();

    if (h && (nbd_set_opt_mode(h, true) < 0 ||
              (p->out->server->tls &&
               (nbd_set_debug_callback(
                    h, (nbd_debug_callback){.callback = debug_cb, .user_data = p->out}) < 0 ||
                nbd_set_debug(h, true) < 0)))) {
        nbd_close(h);
        h = NULL;
    }
    return h;
}

/* Under TLS libnbd connects (tls.h): the probe starts in the handshake. */
static void start_tls_probe(struct probe *p)
{
    p->out->connect_ms = -1; /* inside libnbd's handshake */
    p->h = probe_handle(p);
    if (!p->h) {
        fail_nbd(p);
        return;
    }
    /* on loopback the connect call may run the whole TLS handshake */
    p->phase = P_HANDSHAKE;
    if (nbd_connect_tls(p->h, p->out->server) < 0) {
        fail_nbd(p);
        return;
    }
    step(p);
}

static void connected(struct probe *p)
{
    p->out->connect_ms = now_ms() - p->t0;
    p->h = probe_handle(p);
    if (!p->h) {
        fail_nbd(p);
        return;
    }
    if (nbd_aio_connect_socket(p->h, p->sock) < 0) {
        fail_nbd(p);
        return;
    }
    p->sock = -1; /* owned by the handle now */
    p->phase = P_HANDSHAKE;
    step(p);
}

static void start_info(struct probe *p)
{
    if (!p->export[0]) {
        p->phase = P_ABORT;
        return;
    }
    p->cmd_done = false;
    if (nbd_set_export_name(p->h, p->export) < 0 ||
        nbd_aio_opt_info(p->h, (nbd_completion_callback){.callback = done_cb, .user_data = p}) <
            0) {
        fail_nbd(p);
        return;
    }
    p->phase = P_INFO;
}

/* Move a handle's state machine on after I/O. */
static void advance(struct probe *p)
{
    struct nbd_probe *o = p->out;

    if (p->phase >= P_HANDSHAKE && p->phase < P_ABORT &&
        (nbd_aio_is_dead(p->h) || nbd_aio_is_closed(p->h))) {
        fail_nbd(p);
        return;
    }
    switch (p->phase) {
    case P_HANDSHAKE:
        if (nbd_aio_is_ready(p->h) || nbd_aio_is_negotiating(p->h))
            o->tls = o->server->tls ? nbd_get_tls_negotiated(p->h) == 1 : 0;
        if (nbd_aio_is_ready(p->h)) {
            /* Oldstyle server: no options, one export. */
            o->handshake_ms = now_ms() - p->t0;
            snprintf(o->protocol, sizeof o->protocol, "%s", nbd_get_protocol(p->h));
            o->list_err = -ENOTSUP;
            o->probe_size = nbd_get_size(p->h);
            p->phase = P_DONE;
            return;
        }
        if (!nbd_aio_is_negotiating(p->h))
            return;
        o->handshake_ms = now_ms() - p->t0;
        snprintf(o->protocol, sizeof o->protocol, "%s", nbd_get_protocol(p->h));
        p->t_phase = now_ms();
        p->cmd_done = false;
        if (nbd_aio_opt_list(p->h, (nbd_list_callback){.callback = list_cb, .user_data = o},
                             (nbd_completion_callback){.callback = done_cb, .user_data = p}) < 0) {
            fail_nbd(p);
            return;
        }
        p->phase = P_LIST;
        return;
    case P_LIST:
        if (!p->cmd_done)
            return;
        o->rtt_ms = now_ms() - p->t_phase;
        o->list_err = -p->cmd_err;
        start_info(p);
        return;
    case P_INFO:
        if (!p->cmd_done)
            return;
        if (p->cmd_err) {
            o->probe_err = -p->cmd_err;
            snprintf(o->probe_msg, sizeof o->probe_msg, "%s",
                     p->cmd_err == ENOENT ? "no such export" : strerror(p->cmd_err));
        } else if ((o->probe_size = nbd_get_size(p->h)) == 0) {
            /* nbd-server answers NBD_OPT_INFO with a size of 0: not a size */
            o->probe_size = -1;
            snprintf(o->probe_msg, sizeof o->probe_msg,
                     "size unknown (the server's NBD_OPT_INFO reply says 0 bytes)");
        }
        p->phase = P_ABORT;
        return;
    case P_ABORT:
        if ((nbd_aio_is_negotiating(p->h) && nbd_aio_opt_abort(p->h) < 0) ||
            nbd_aio_is_closed(p->h) || nbd_aio_is_dead(p->h))
            p->phase = P_DONE;
        return;
    default: return;
    }
}

/* Advance as far as possible without waiting: a command may complete
 * inside the call that issues it (the reply was already in the socket), so
 * one step can enable the next with no I/O in between. */
static void step(struct probe *p)
{
    for (int i = 0; i < 8 && p->phase != P_DONE; i++) {
        enum phase before = p->phase;
        advance(p);
        if (p->phase == before)
            break;
    }
}

/* Start probing srv: resolve its address, then connect (or the TLS
 * probe). */
static void start_probe(struct probe *p, const struct hp_server *srv)
{
    p->sock = -1;
    p->t0 = now_ms();
    if (srv->tls) {
        start_tls_probe(p);
        return;
    }
    if (srv->kind == HP_SRV_TCP) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
        int rc = getaddrinfo(srv->host, srv->port, &hints, &p->ai);
        if (rc != 0) {
            p->out->err = -EHOSTUNREACH;
            p->out->phase = "resolve";
            snprintf(p->out->message, sizeof p->out->message, "cannot resolve %s: %s", srv->host,
                     gai_strerror(rc));
            p->phase = P_DONE;
            return;
        }
        p->next_ai = p->ai;
    }
    start_connect(p);
}

/* What poll said of p's socket (re: its revents). */
static void on_events(struct probe *p, short re)
{
    if (p->phase == P_CONNECT) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(p->sock, SOL_SOCKET, SO_ERROR, &err, &len);
        if (!err)
            connected(p);
        else if (!start_connect(p) && p->phase != P_DONE)
            fail(p, err, NULL);
        return;
    }
    if ((re & (POLLIN | POLLHUP | POLLERR)) && nbd_aio_notify_read(p->h) < 0) {
        if (p->phase == P_ABORT)
            p->phase = P_DONE;
        else
            fail_nbd(p);
        return;
    }
    if ((re & POLLOUT) && nbd_aio_notify_write(p->h) < 0) {
        fail_nbd(p);
        return;
    }
    step(p);
}

size_t nbd_probe_servers(const struct hp_server *servers, size_t n, const char *probe_export,
                         unsigned timeout_ms, struct nbd_probe *out)
{
    struct probe *ps = calloc(n ? n : 1, sizeof *ps);
    struct pollfd *pfd = calloc(n ? n : 1, sizeof *pfd);
    double deadline = now_ms() + timeout_ms;
    size_t failed = 0;

    memset(out, 0, n * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        out[i].server = &servers[i];
        out[i].probe_size = -1;
        out[i].tls = -1;
    }
    if (!ps || !pfd) {
        for (size_t i = 0; i < n; i++) {
            out[i].err = -ENOMEM;
            out[i].phase = "start";
            snprintf(out[i].message, sizeof out[i].message, "out of memory");
        }
        free(ps);
        free(pfd);
        return n;
    }

    for (size_t i = 0; i < n; i++) {
        ps[i].out = &out[i];
        ps[i].export = probe_export ? probe_export : "";
        start_probe(&ps[i], &servers[i]);
    }

    for (;;) {
        size_t active = 0;
        double now = now_ms();

        for (size_t i = 0; i < n; i++) {
            struct probe *p = &ps[i];
            pfd[i] = (struct pollfd){.fd = -1};
            if (p->phase == P_DONE)
                continue;
            if (p->phase == P_CONNECT) {
                pfd[i].fd = p->sock;
                pfd[i].events = POLLOUT;
            } else {
                unsigned dir = nbd_aio_get_direction(p->h);
                if (dir == 0) { /* nothing to wait for: move on now */
                    step(p);
                    if (p->phase == P_DONE)
                        continue;
                    dir = nbd_aio_get_direction(p->h);
                }
                pfd[i].fd = nbd_aio_get_fd(p->h);
                pfd[i].events = (short)(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                                        ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0));
            }
            active++;
        }
        if (!active)
            break;
        if (now >= deadline) {
            for (size_t i = 0; i < n; i++)
                if (ps[i].phase != P_DONE) {
                    char msg[128];
                    snprintf(msg, sizeof msg, "timed out after %u ms during %s", timeout_ms,
                             phase_names[ps[i].phase]);
                    /* A probe that only had its abort left did its job. */
                    if (ps[i].phase == P_ABORT)
                        ps[i].phase = P_DONE;
                    else
                        fail(&ps[i], ETIMEDOUT, msg);
                }
            break;
        }
        int r = poll(pfd, n, (int)(deadline - now) + 1);
        if (r < 0 && errno != EINTR)
            break;
        for (size_t i = 0; i < n && r > 0; i++) {
            if (pfd[i].revents && ps[i].phase != P_DONE)
                on_events(&ps[i], pfd[i].revents);
        }
    }

    for (size_t i = 0; i < n; i++) {
        struct probe *p = &ps[i];
        if (p->h)
            nbd_close(p->h);
        if (p->sock >= 0)
            close(p->sock);
        if (p->ai)
            freeaddrinfo(p->ai);
        if (out[i].err || out[i].probe_err)
            failed++;
    }
    free(ps);
    free(pfd);
    return failed;
}

void nbd_probe_free(struct nbd_probe *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < p[i].nexports; j++)
            free(p[i].exports[j]);
        free(p[i].exports);
        p[i].exports = NULL;
        p[i].nexports = 0;
    }
}

/* Connect a socket to srv before the deadline (ms on the monotonic clock). */
static int connect_deadline(const struct hp_server *srv, double deadline, int *out)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int rc = -EHOSTUNREACH;

    if (srv->kind == HP_SRV_TCP) {
        if (getaddrinfo(srv->host, srv->port, &hints, &ai) != 0)
            return -EHOSTUNREACH;
    } else {
        memcpy(sun.sun_path, srv->path, sizeof sun.sun_path);
    }
    for (struct addrinfo *a = ai; srv->kind == HP_SRV_UNIX || a; a = a ? a->ai_next : NULL) {
        int fam = a ? a->ai_family : AF_UNIX;
        int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        const struct sockaddr *sa = a ? a->ai_addr : (const struct sockaddr *)&sun;
        socklen_t salen = a ? a->ai_addrlen : (socklen_t)sizeof sun;

        if (fd < 0) {
            rc = -errno;
        } else if (connect(fd, sa, salen) == 0 || errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int err = 0, left = (int)(deadline - now_ms());
            socklen_t len = sizeof err;
            int r = left > 0 ? poll(&p, 1, left) : 0;
            if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
                if (fam != AF_UNIX)
                    nbd_tune_socket(fd);
                *out = fd;
                if (ai)
                    freeaddrinfo(ai);
                return 0;
            }
            rc = r == 0 ? -ETIMEDOUT : -(err ? err : errno);
            close(fd);
        } else {
            rc = -errno;
            close(fd);
        }
        if (srv->kind == HP_SRV_UNIX || rc == -ETIMEDOUT)
            break;
    }
    if (ai)
        freeaddrinfo(ai);
    return rc;
}

/* Drive h until it is ready for I/O or deadline.  0, -ETIMEDOUT, or -1
 * for a libnbd error (nbd_get_error says it). */
static int drive_until_ready(struct nbd_handle *h, double deadline)
{
    while (!nbd_aio_is_ready(h)) {
        unsigned dir;
        struct pollfd p;
        int left = (int)(deadline - now_ms()), r;

        if (nbd_aio_is_dead(h) || nbd_aio_is_closed(h) || nbd_aio_is_negotiating(h))
            return -1; /* negotiating again: the server refused the export */
        if (left <= 0)
            return -ETIMEDOUT;
        dir = nbd_aio_get_direction(h);
        p = (struct pollfd){.fd = nbd_aio_get_fd(h),
                            .events = (short)(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                                              ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0))};
        r = poll(&p, 1, left);
        if (r < 0 && errno != EINTR)
            return -1;
        if (r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) && nbd_aio_notify_read(h) < 0)
            return -1;
        if (r > 0 && (p.revents & POLLOUT) && nbd_aio_notify_write(h) < 0)
            return -1;
    }
    return 0;
}

/* libnbd's reason; under TLS with what to check first. */
static void export_error(const struct hp_server *srv, struct nbd_handle *h, const char *name,
                         char *why, size_t whylen)
{
    const char *e = nbd_get_error();
    const char *hint = tls_hint(srv->tls, e, nbd_aio_is_closed(h) == 1);

    if (*hint)
        snprintf(why, whylen, "%s: export '%s': %s (%s)", srv->label, name, hint, e ? e : "closed");
    else
        snprintf(why, whylen, "%s: export '%s': %s", srv->label, name, e ? e : "unknown error");
}

static void fill_export(struct nbd_handle *h, struct nbd_export *ex)
{
    /* libnbd zeroes a read's buffer before every read unless told not to:
     * a 1 MiB memset a FUSE read, 4 % of a TLS read's CPU (perf).  Not
     * needed here: these handles get simple replies only, and a simple
     * reply that succeeds has written every byte of the buffer. */
    nbd_set_pread_initialize(h, false);
    ex->h = h;
    ex->size = nbd_get_size(h);
    ex->read_only = nbd_is_read_only(h) == 1;
    ex->can_flush = nbd_can_flush(h) == 1;
    ex->multi_conn = nbd_can_multi_conn(h) == 1;
}

int nbd_export_open(const struct hp_server *srv, const char *name, unsigned timeout_ms,
                    struct nbd_export *ex, char *why, size_t whylen)
{
    double deadline = now_ms() + timeout_ms;
    int fd = -1, rc;
    struct nbd_handle *h;

    memset(ex, 0, sizeof *ex);
    if (!srv->tls && (rc = connect_deadline(srv, deadline, &fd)) < 0) {
        snprintf(why, whylen, "cannot connect to %s: %s", srv->label,
                 rc == -ETIMEDOUT ? "timed out" : strerror(-rc));
        return rc;
    }
    h = nbd_create();
    if (!h) {
        if (fd >= 0)
            close(fd);
        snprintf(why, whylen, "%s", nbd_get_error());
        return -ENOMEM;
    }
    /* Simple replies only: nbd.ko cannot parse structured ones, and the
     * same negotiation must serve a kernel handoff. */
    if (nbd_set_request_structured_replies(h, false) < 0 || nbd_set_export_name(h, name) < 0) {
        if (fd >= 0)
            close(fd); /* not the handle's yet */
        goto nbd_err;
    }
    if (srv->tls ? nbd_connect_tls(h, srv) < 0 : nbd_aio_connect_socket(h, fd) < 0)
        goto nbd_err;
    rc = drive_until_ready(h, deadline);
    if (rc == -ETIMEDOUT) {
        snprintf(why, whylen, "%s: negotiating export '%s' timed out", srv->label, name);
        nbd_close(h);
        return rc;
    }
    if (rc < 0)
        goto nbd_err;
    fill_export(h, ex);
    return 0;

nbd_err:
    rc = nbd_get_errno() ? -nbd_get_errno() : -EPROTO;
    export_error(srv, h, name, why, whylen);
    nbd_close(h);
    return rc;
}

int nbd_warm_go(struct nbd_handle *h, const char *name)
{
    if (!nbd_aio_is_negotiating(h))
        return -ENOTCONN;
    if (nbd_set_export_name(h, name) < 0 || nbd_aio_opt_go(h, NBD_NULL_COMPLETION) < 0)
        return nbd_get_errno() ? -nbd_get_errno() : -ENOTCONN;
    return 0;
}

/* Whether NBD_OPT_GO for name was sent on h (nbd_warm_go): its answer on
 * its way, or read already (ready). */
static bool go_sent_for(struct nbd_handle *h, const char *name)
{
    if (!nbd_aio_is_ready(h) && (!nbd_aio_is_connecting(h) || nbd_aio_is_negotiating(h)))
        return false;
    char *sent = nbd_get_export_name(h);
    bool same = sent && strcmp(sent, name) == 0;
    free(sent);
    return same;
}

int nbd_export_open_warm(struct nbd_handle *h, const struct hp_server *srv, const char *name,
                         unsigned timeout_ms, struct nbd_export *ex, char *why, size_t whylen)
{
    double deadline = now_ms() + timeout_ms;
    int rc;

    memset(ex, 0, sizeof *ex);
    if (go_sent_for(h, name)) {
        /* nbd_warm_go sent it: at most its answer is left */
    } else if (!nbd_aio_is_negotiating(h)) {
        snprintf(why, whylen, "%s: the warm connection is gone", srv->label);
        nbd_close(h);
        return -ENOTCONN;
    } else if (nbd_warm_go(h, name) < 0) {
        rc = -ENOTCONN;
        goto fail;
    }
    rc = drive_until_ready(h, deadline);
    if (rc == 0) {
        fill_export(h, ex);
        return 0;
    }
    if (rc == -ETIMEDOUT) {
        snprintf(why, whylen, "%s: negotiating export '%s' timed out", srv->label, name);
        nbd_close(h);
        return rc;
    }
    /* Still negotiating: the server answered and refused the export.
     * Dead: the connection went away while it waited (or now). */
    rc = nbd_aio_is_negotiating(h) ? (nbd_get_errno() ? -nbd_get_errno() : -ENOENT) : -ENOTCONN;
fail:
    export_error(srv, h, name, why, whylen);
    nbd_close(h);
    return rc;
}

int nbd_export_cache(struct nbd_export *ex, uint64_t bytes, uint64_t *done)
{
    const uint64_t chunk = 4u << 20;

    *done = 0;
    if (nbd_can_cache(ex->h) != 1)
        return -EOPNOTSUPP;
    if (ex->size >= 0 && bytes > (uint64_t)ex->size)
        bytes = (uint64_t)ex->size;
    while (*done < bytes) {
        uint64_t n = bytes - *done < chunk ? bytes - *done : chunk;
        if (nbd_cache(ex->h, n, *done, 0) < 0)
            return nbd_get_errno() ? -nbd_get_errno() : -EIO;
        *done += n;
    }
    return 0;
}

void nbd_export_close(struct nbd_export *ex)
{
    if (ex->h) {
        nbd_shutdown(ex->h, 0);
        nbd_close(ex->h);
    }
    ex->h = NULL;
}
