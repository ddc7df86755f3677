#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fusedisk.h"
#include "log.h"
#include "nbd.h"
#include "nbdkernel.h"
#include "spawn.h"
#include "textfile.h"

bool worker_alive(pid_t pid)
{
    char path[64], buf[512], *paren;

    if (pid <= 1 || (kill(pid, 0) < 0 && errno != EPERM))
        return false;
    /* "PID (comm) STATE ...": a homeport that is not a zombie */
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (textfile_read_line(path, buf, sizeof buf, 0) < 0)
        return false;
    paren = strrchr(buf, ')');
    return paren && strstr(buf, "(homeport)") && paren[1] == ' ' && paren[2] != 'Z' &&
           paren[2] != 'X';
}

/* A worker outlives the command that started it: it must not hold that
 * command's stdout/stderr (pam_exec and $(...) wait for them to close), so
 * its stdio goes to /dev/null and its log to syslog or the kernel log. */
static void worker_detach(const struct hp_config *cfg, int keep, struct nbd_handle *warm)
{
    int fds[2] = {keep, warm ? nbd_aio_get_fd(warm) : -1};

    log_close();
    spawn_close_fds(fds, 2); /* the caller's sockets, pipes and locks */
    if (spawn_detach(cfg->log_target) < 0)
        _exit(1);
    signal(SIGPIPE, SIG_IGN);
}

/* A warm connection gets this long to answer NBD_OPT_GO (one round trip)
 * before the login gives up on it and connects afresh: one held by a
 * server process that no longer serves (nbd-server's children after its
 * main process was killed) never answers. */
#define WARM_GO_MS 2000

/* Connect to the export: on the warm connection when there is one (one
 * round trip), else afresh (also when the warm one turns out dead or does
 * not answer within WARM_GO_MS). */
static int open_export(const struct hp_config *cfg, const struct hp_server *srv, const char *export,
                       struct nbd_handle *warm, struct nbd_export *ex, char *why, size_t whylen)
{
    if (warm) {
        unsigned bound =
            cfg->connect_timeout_ms < WARM_GO_MS ? cfg->connect_timeout_ms : WARM_GO_MS;
        int rc = nbd_export_open_warm(warm, srv, export, bound, ex, why, whylen);
        if (rc != -ENOTCONN && rc != -ETIMEDOUT) {
            if (rc == 0)
                log_debug("%s: on a warm connection to %s", export, srv->label);
            return rc;
        }
        if (rc == -ETIMEDOUT)
            log_warn("%s: the warm connection to %s did not answer within %u ms: connecting "
                     "afresh",
                     export, srv->label, bound);
        else
            log_info("%s: the warm connection to %s was gone (%s): connecting afresh", export,
                     srv->label, why);
    }
    return nbd_export_open(srv, export, cfg->connect_timeout_ms, ex, why, whylen);
}

/* The FUSE attach worker: connect, serve the export on the FUSE dir,
 * report through the pipe.  Never returns. */
static void run_fuse_worker(const struct worker_params *p, int wfd)
{
    struct nbd_export ex;
    char why[HP_WHY_MAX];
    int rc;

    rc = open_export(p->cfg, p->srv, p->export, p->warm, &ex, why, sizeof why);
    if (rc < 0) {
        dprintf(wfd, "err %d %s\n", -rc, why);
        _exit(1);
    }
    struct fusedisk_params fp = {.dir = p->fuse_dir,
                                 .server = p->srv,
                                 .export = p->export,
                                 .connect_timeout_ms = p->cfg->connect_timeout_ms,
                                 .dead_timeout_ms = p->cfg->dead_timeout_ms,
                                 .connections = p->cfg->connections,
                                 .stats_path = p->stats,
                                 .layout_path = p->layout,
                                 .ready_fd = wfd};
    rc = fusedisk_serve(&fp, &ex);
    if (rc < 0)
        dprintf(wfd, "err %d cannot serve the FUSE disk on %s: %s\n", -rc, p->fuse_dir,
                strerror(-rc));
    _exit(rc < 0 ? 1 : 0);
}

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void write_kernel_stats(const char *path, bool connected, unsigned long long reconnects,
                               const char *err)
{
    struct textfile_kv kv = {0};

    textfile_kv_add(&kv, "state", "%s", connected ? "connected" : "disconnected");
    textfile_kv_add(&kv, "reconnects", "%llu", reconnects);
    /* one line: the reason may quote the server, whose newline would add a key */
    textfile_kv_add(&kv, "last_error", "%.255s", err);
    textfile_kv_replace(&kv, path, 0666);
}

struct ready_arg {
    int wfd, index;
};

/* Report readiness once the device has its receiver (NBD_DO_IT started). */
static void *ioctl_ready(void *v)
{
    struct ready_arg *a = v;
    char path[64];

    snprintf(path, sizeof path, "/sys/block/nbd%d/pid", a->index);
    for (int i = 0; i < 500; i++) {
        if (access(path, F_OK) == 0) {
            dprintf(a->wfd, "ok /dev/nbd%d\n", a->index);
            close(a->wfd);
            return NULL;
        }
        struct timespec ts = {0, 20L * 1000000};
        nanosleep(&ts, NULL);
    }
    dprintf(a->wfd, "err %d /dev/nbd%d did not start\n", ETIMEDOUT, a->index);
    close(a->wfd);
    return NULL;
}

/* The ioctl interface: the worker serves the device in NBD_DO_IT until it
 * is disconnected.  No reconnects: a request unanswered for io_timeout_s
 * fails, and the device with it.  Never returns. */
static void run_ioctl_worker(struct nbd_export *ex, unsigned io_timeout_s, const char *stats,
                             int wfd)
{
    struct ready_arg a = {.wfd = wfd};
    pthread_t t;
    int fd = nbdkernel_ioctl_attach(ex, io_timeout_s, &a.index), rc;

    if (fd < 0) {
        nbd_export_close(ex);
        dprintf(wfd, "err %d the kernel refused the connection (ioctl): %s\n", -fd, strerror(-fd));
        _exit(1);
    }
    write_kernel_stats(stats, true, 0, "");
    if (pthread_create(&t, NULL, ioctl_ready, &a) != 0) {
        dprintf(wfd, "err %d cannot start a thread\n", EAGAIN);
        _exit(1);
    }
    rc = nbdkernel_ioctl_run(fd);
    write_kernel_stats(stats, false, 0, rc < 0 ? strerror(-rc) : "disconnected");
    _exit(rc < 0 ? 1 : 0);
}

/* The link of /dev/nbd<index> died: give the kernel a new connection,
 * backoff 100 ms to 2 s (jittered), until it works or the worker is
 * stopped. */
static void reconnect(const struct worker_params *p, int index, unsigned long long *reconnects)
{
    struct nbd_export ex;
    char why[HP_WHY_MAX];
    unsigned backoff_ms = 100, seed = clock_seed();

    log_warn("%s: /dev/nbd%d lost its connection to %s; reconnecting", p->export, index,
             p->srv->label);
    write_kernel_stats(p->stats, false, *reconnects, "link dead");
    while (!stop_requested) {
        int rc =
            nbd_export_open(p->srv, p->export, p->cfg->connect_timeout_ms, &ex, why, sizeof why);
        if (rc == 0) {
            rc = nbdkernel_reconfigure(index, &ex);
            if (rc < 0) {
                snprintf(why, sizeof why, "reconfigure: %s", strerror(-rc));
                nbd_export_close(&ex);
            }
        }
        if (rc == 0) {
            ++*reconnects;
            log_notice("%s: /dev/nbd%d reconnected to %s", p->export, index, p->srv->label);
            write_kernel_stats(p->stats, true, *reconnects, "");
            return;
        }
        write_kernel_stats(p->stats, false, *reconnects, why);
        clock_backoff(&backoff_ms, &seed); /* a stop signal cuts it short */
    }
}

/* Watch /dev/nbd<index> (netlink announcements on watch) for a dead link
 * until the worker is stopped.  Never returns. */
static void watch_link(const struct worker_params *p, int index, int watch)
{
    unsigned long long reconnects = 0;

    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    signal(SIGHUP, on_stop);
    if (watch < 0)
        log_warn("%s: cannot watch /dev/nbd%d for a dead link (%s): no reconnects", p->export,
                 index, strerror(-watch));
    while (!stop_requested) {
        struct pollfd pfd = {.fd = watch, .events = POLLIN};
        if (watch < 0) { /* nothing to watch: just wait to be stopped */
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
            continue;
        }
        if (poll(&pfd, 1, 1000) > 0 && nbdkernel_watch_read(watch) == index)
            reconnect(p, index, &reconnects);
    }
    _exit(0);
}

/* The kernel attach worker: connect, hand the socket to nbd.ko, then watch
 * for a dead link and give the kernel a new connection until it works
 * again.  The kernel holds I/O for dead_timeout meanwhile, then fails it.
 * Never returns. */
static void run_kernel_worker(const struct worker_params *p, int wfd)
{
    const struct hp_config *cfg = p->cfg;
    struct nbd_export ex;
    char why[HP_WHY_MAX] = "";
    int rc, index = -1, watch = -1;
    unsigned dead_s = (cfg->dead_timeout_ms + 999) / 1000;
    unsigned io_s = (cfg->io_timeout_ms + 999) / 1000;

    rc = open_export(cfg, p->srv, p->export, p->warm, &ex, why, sizeof why);
    bool use_ioctl = cfg->kernel_api == HP_KAPI_IOCTL;
    if (rc == 0 && !use_ioctl) {
        watch = nbdkernel_watch_open(); /* before connecting: miss no announcement */
        rc = nbdkernel_connect(&ex, dead_s, io_s, &index);
        if (rc == -ENODEV && cfg->kernel_api == HP_KAPI_AUTO) {
            log_notice("%s: no netlink nbd in this kernel: using the ioctl interface", p->export);
            use_ioctl = true;
            rc = 0;
        } else if (rc < 0) {
            snprintf(why, sizeof why, "the kernel refused the connection: %s", strerror(-rc));
            nbd_export_close(&ex);
        }
    }
    if (rc == 0 && use_ioctl)
        run_ioctl_worker(&ex, io_s, p->stats, wfd); /* never returns */
    if (rc < 0) {
        dprintf(wfd, "err %d %s\n", -rc, why);
        _exit(1);
    }
    write_kernel_stats(p->stats, true, 0, "");
    dprintf(wfd, "ok /dev/nbd%d\n", index);
    close(wfd);
    watch_link(p, index, watch);
}

/* The word after "ok": a device (kernel attach) to dev. */
static void ready_words(char *words, char *dev, size_t devlen)
{
    char *save = NULL;

    for (char *w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save))
        if (w[0] == '/')
            snprintf(dev, devlen, "%s", w);
}

/* Wait for the worker's first line: "ok [device]" or "err ERRNO reason".
 * rfd is a SOCK_SEQPACKET socket, read a message at a time: what follows
 * the line (the verdict) stays for worker_verdict.  *said: the worker said
 * one of them (an "err" may carry any errno, ETIMEDOUT too), rather than
 * ending or not answering. */
static int worker_ready(int rfd, unsigned timeout_ms, char *dev, size_t devlen, bool *said,
                        char *why, size_t whylen)
{
    char buf[600];
    size_t got = 0;
    struct pollfd p = {.fd = rfd, .events = POLLIN};

    *said = false;
    while (got < sizeof buf - 1) {
        int r = poll(&p, 1, (int)timeout_ms);
        if (r <= 0) {
            snprintf(why, whylen, "the home's worker did not answer within %u ms", timeout_ms);
            return -ETIMEDOUT;
        }
        ssize_t n = read(rfd, buf + got, sizeof buf - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (memchr(buf, '\n', got))
            break;
    }
    buf[got] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (strcmp(buf, "ok") == 0 || strncmp(buf, "ok ", 3) == 0) {
        *said = true;
        if (buf[2])
            ready_words(buf + 3, dev, devlen);
        return 0;
    }
    if (strncmp(buf, "err ", 4) == 0) {
        char *rest;
        long e = strtol(buf + 4, &rest, 10);
        *said = true;
        snprintf(why, whylen, "%s", *rest == ' ' ? rest + 1 : rest);
        return e > 0 ? (int)-e : -EIO;
    }
    snprintf(why, whylen, "the home's worker exited before serving");
    return -EIO;
}

int worker_start(const struct worker_params *p, pid_t *pid, char *dev, size_t devlen,
                 int *verdict_fd, char *why, size_t whylen)
{
    int pfd[2], rc;
    bool said;

    *pid = -1;
    *verdict_fd = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pfd) < 0) {
        rc = -errno;
        snprintf(why, whylen, "socketpair: %s", strerror(-rc));
        return rc;
    }
    *pid = fork();
    if (*pid < 0) {
        rc = -errno;
        close(pfd[0]);
        close(pfd[1]);
        snprintf(why, whylen, "fork: %s", strerror(-rc));
        return rc;
    }
    if (*pid == 0) {
        close(pfd[0]);
        worker_detach(p->cfg, pfd[1], p->warm);
        if (p->fuse_dir)
            run_fuse_worker(p, pfd[1]);
        run_kernel_worker(p, pfd[1]);
    }
    close(pfd[1]);
    rc = worker_ready(pfd[0], p->cfg->connect_timeout_ms + 5000, dev, devlen, &said, why, whylen);
    if (rc < 0) {
        close(pfd[0]);
        waitpid(*pid, NULL, WNOHANG);
        return rc;
    }
    *verdict_fd = pfd[0];
    return 0;
}

bool worker_verdict(int fd, unsigned timeout_ms)
{
    char buf[16];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;

    if (fd < 0)
        return false;
    while ((r = poll(&p, 1, (int)timeout_ms)) < 0 && errno == EINTR)
        ;
    ssize_t n = r == 1 ? read(fd, buf, sizeof buf - 1) : -1;

    close(fd);
    return n == 6 && memcmp(buf, "clean\n", 6) == 0;
}

/* ---- spares ------------------------------------------------------------ */

/* The take: "take", the export, the stats file, the layout hint ("" for
 * none), each ending in a NUL, in one message. */
#define TAKE_WORD "take"
#define TAKE_MAX (4 * 4096)

/* Wait for the take, or the end: the agent closing its end (it stops or
 * drops the spare), a stop signal.  When the server closes the warm
 * connection (qemu's NBD server does after 10 s in the options phase),
 * the spare stays, without one: the take connects afresh.  Returns the
 * message's length, or 0 when the spare is to end (dropped already). */
static size_t spare_wait(struct fusedisk_spare *sp, struct nbd_handle **warm, int ctl, char *msg)
{
    for (;;) {
        struct pollfd p[3] = {{.fd = ctl, .events = POLLIN},
                              {.fd = fusedisk_spare_ended_fd(sp), .events = POLLIN},
                              {.fd = *warm ? nbd_aio_get_fd(*warm) : -1, .events = POLLIN}};
        if (poll(p, 3, -1) < 0)
            continue; /* EINTR */
        if (p[2].revents) {
            log_debug("spare worker %d: the server closed its warm connection: going on "
                      "without it",
                      (int)getpid());
            nbd_close(*warm);
            *warm = NULL;
            if (!p[0].revents && !p[1].revents)
                continue;
        }
        ssize_t n = p[0].revents && !p[1].revents ? recv(ctl, msg, TAKE_MAX - 1, MSG_DONTWAIT) : 0;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            fusedisk_spare_drop(sp);
            return 0;
        }
        msg[n] = '\0';
        return (size_t)n;
    }
}

/* The n bytes of msg as the take's fields: 0, or -EPROTO. */
static int take_fields(char *msg, size_t n, const char *f[4])
{
    char *at = msg, *end = msg + n;

    for (int i = 0; i < 4; i++) {
        char *nul = memchr(at, '\0', (size_t)(end - at));
        if (!nul)
            return -EPROTO;
        f[i] = at;
        at = nul + 1;
    }
    return strcmp(f[0], TAKE_WORD) == 0 && f[1][0] && f[2][0] ? 0 : -EPROTO;
}

/* The spare: mount, say "spare", wait for the take, then serve the export
 * as run_fuse_worker does.  Never returns. */
static void run_spare(const struct hp_config *cfg, const struct hp_server *srv, const char *dir,
                      struct nbd_handle *warm, int ctl)
{
    static char msg[TAKE_MAX];
    struct fusedisk_spare *sp;
    struct nbd_export ex;
    char why[HP_WHY_MAX];
    const char *f[4];
    size_t n;
    int rc = fusedisk_spare_mount(dir, cfg->connections, &sp);

    if (rc < 0) {
        dprintf(ctl, "err %d cannot mount FUSE on %s: %s\n", -rc, dir, strerror(-rc));
        _exit(1);
    }
    if (dprintf(ctl, "spare\n") < 0 || (n = spare_wait(sp, &warm, ctl, msg)) == 0) {
        rmdir(dir); /* unmounted: untaken */
        _exit(0);
    }
    prctl(PR_SET_PDEATHSIG, 0); /* a home's worker now: it outlives the agent */
    if ((rc = take_fields(msg, n, f)) == 0)
        rc = open_export(cfg, srv, f[1], warm, &ex, why, sizeof why);
    else
        snprintf(why, sizeof why, "a spare worker got a take it cannot read");
    if (rc < 0) {
        dprintf(ctl, "err %d %s\n", -rc, why);
        fusedisk_spare_drop(sp);
        rmdir(dir);
        _exit(1);
    }
    struct fusedisk_params fp = {.dir = dir,
                                 .server = srv,
                                 .export = f[1],
                                 .connect_timeout_ms = cfg->connect_timeout_ms,
                                 .dead_timeout_ms = cfg->dead_timeout_ms,
                                 .connections = cfg->connections,
                                 .stats_path = f[2],
                                 .layout_path = f[3][0] ? f[3] : NULL,
                                 .ready_fd = ctl};
    rc = fusedisk_spare_serve(sp, &fp, &ex);
    rmdir(dir); /* when it was not adopted: else moved and gone */
    _exit(rc < 0 ? 1 : 0);
}

int worker_spare_start(const struct hp_config *cfg, const struct hp_server *srv, const char *root,
                       struct nbd_handle *warm, pid_t *pid, int *ctl)
{
    char dir[PATH_MAX];
    int sv[2], rc;
    pid_t agent = getpid();

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    *pid = fork();
    if (*pid < 0) {
        rc = -errno;
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    if (*pid == 0) {
        close(sv[0]);
        /* Until it is taken, it ends with the agent that started it. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != agent)
            _exit(0);
        worker_detach(cfg, sv[1], warm);
        snprintf(dir, sizeof dir, "%s/%d", root, (int)getpid());
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            dprintf(sv[1], "err %d cannot create %s: %s\n", errno, dir, strerror(errno));
            _exit(1);
        }
        run_spare(cfg, srv, dir, warm, sv[1]);
    }
    close(sv[1]);
    *ctl = sv[0];
    return 0;
}

int worker_spare_take(int ctl, const char *export, const char *stats, const char *layout)
{
    char msg[TAKE_MAX];
    int n = snprintf(msg, sizeof msg, "%s%c%s%c%s%c%s%c", TAKE_WORD, 0, export, 0, stats, 0,
                     layout ? layout : "", 0);

    if (n < 0 || n >= (int)sizeof msg)
        return -ENAMETOOLONG;
    return send(ctl, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) == n ? 0 : -errno;
}

int worker_spare_ready(int ctl, unsigned timeout_ms, bool *answered, char *why, size_t whylen)
{
    char dev[8];
    return worker_ready(ctl, timeout_ms, dev, sizeof dev, answered, why, whylen);
}
