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

/* The words after "ok": a device (kernel attach) to dev, "clean". */
static void ready_words(char *words, char *dev, size_t devlen, bool *clean)
{
    char *save = NULL;

    for (char *w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (strcmp(w, "clean") == 0)
            *clean = true;
        else if (w[0] == '/')
            snprintf(dev, devlen, "%s", w);
    }
}

/* Wait for the worker's first line: "ok [device] [clean]" or "err ERRNO
 * reason". */
static int worker_ready(int rfd, unsigned timeout_ms, char *dev, size_t devlen, bool *clean,
                        char *why, size_t whylen)
{
    char buf[600];
    size_t got = 0;
    struct pollfd p = {.fd = rfd, .events = POLLIN};

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
    if (strcmp(buf, "ok") == 0)
        return 0;
    if (strncmp(buf, "ok ", 3) == 0) {
        ready_words(buf + 3, dev, devlen, clean);
        return 0;
    }
    if (strncmp(buf, "err ", 4) == 0) {
        char *rest;
        long e = strtol(buf + 4, &rest, 10);
        snprintf(why, whylen, "%s", *rest == ' ' ? rest + 1 : rest);
        return e > 0 ? (int)-e : -EIO;
    }
    snprintf(why, whylen, "the home's worker exited before serving");
    return -EIO;
}

int worker_start(const struct worker_params *p, pid_t *pid, char *dev, size_t devlen, bool *clean,
                 char *why, size_t whylen)
{
    int pfd[2], rc;

    *pid = -1;
    *clean = false;
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        rc = -errno;
        snprintf(why, whylen, "pipe: %s", strerror(-rc));
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
    rc = worker_ready(pfd[0], p->cfg->connect_timeout_ms + 5000, dev, devlen, clean, why, whylen);
    close(pfd[0]);
    if (rc < 0)
        waitpid(*pid, NULL, WNOHANG);
    return rc;
}
