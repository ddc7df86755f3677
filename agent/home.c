#include "home.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libmount.h>
#include <libnbd.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fusedisk.h"
#include "json.h"
#include "log.h"
#include "loopdev.h"
#include "nbd.h"
#include "nbdkernel.h"
#include "spawn.h"
#include "textfile.h"
#include "tree.h"
#include "user.h"
#include "warm.h"

#define WORKER_STOP_MS 10000

static int release_device(const struct home_state *s);

__attribute__((format(printf, 3, 4))) static void say(home_progress_fn fn, void *ctx,
                                                      const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): false positive, ap is started */
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_info("%s", msg);
    if (fn)
        fn(ctx, msg);
}

static void state_path(const struct hp_config *cfg, const char *user, const char *suffix, char *out,
                       size_t len)
{
    snprintf(out, len, "%s/homes/%s%s", cfg->run_dir, user, suffix);
}

static int state_write(const struct hp_config *cfg, const struct home_state *s)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    FILE *f;

    state_path(cfg, s->user, "", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s:tmp", path);
    f = fopen(tmp, "we");
    if (!f)
        return -errno;
    fprintf(f,
            "user=%s\nattach=%s\ndevice=%s\nserver=%s\nexport=%s\nmountpoint=%s\nfuse_dir=%s\n"
            "worker=%d\nsize=%llu\ndirect_io=%d\nread_only=%d\nphase=%s\nstage=%s\nsessions=%d\n"
            "closing=%d\n",
            s->user, s->attach, s->device, s->server, s->export, s->mountpoint, s->fuse_dir,
            (int)s->worker, (unsigned long long)s->size, s->direct_io ? 1 : 0, s->read_only ? 1 : 0,
            s->phase == HOME_MOUNTED ? "mounted" : "prepared", s->stage, s->sessions,
            s->closing ? 1 : 0);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        int e = -errno;
        fclose(f);
        unlink(tmp);
        return e;
    }
    fclose(f);
    return rename(tmp, path) == 0 ? 0 : -errno;
}

/* Copy, cutting what does not fit. */
static void copy_field(char *dst, size_t len, const char *v)
{
    size_t n = strnlen(v, len - 1);
    memcpy(dst, v, n);
    dst[n] = '\0';
}

/* The next line of f into line (len bytes, the newline dropped), or false
 * at the end.  A line that does not fit is skipped whole (*line is then
 * ""), never read as several: its rest could look like a key. */
static bool record_line(FILE *f, char *line, size_t len)
{
    size_t n = 0;
    int c;

    while ((c = getc(f)) != EOF && c != '\n')
        if (n < len)
            line[n++] = (char)c;
    if (c == EOF && n == 0)
        return false;
    if (n == len) /* too long (a NUL in a line only ends its value early) */
        n = 0;
    line[n] = '\0';
    return true;
}

/* The record at path, which is user's (its file is named for the user):
 * one whose user= says otherwise is not valid (-EINVAL), or what it names
 * (paths under run_dir built from that name: home_set_sessions rewrites
 * the record it names) would not be user's. */
static int state_read_file(const char *path, const char *user, struct home_state *s)
{
    char line[4200];
    FILE *f = fopen(path, "re");

    memset(s, 0, sizeof *s);
    s->phase = HOME_MOUNTED; /* records written before phases existed */
    if (!f)
        return -errno;
    while (record_line(f, line, sizeof line)) {
        char *eq = strchr(line, '='), *v;
        if (!eq)
            continue;
        *eq = '\0';
        v = eq + 1;
        if (!strcmp(line, "user"))
            copy_field(s->user, sizeof s->user, v);
        else if (!strcmp(line, "attach"))
            copy_field(s->attach, sizeof s->attach, v);
        else if (!strcmp(line, "device"))
            copy_field(s->device, sizeof s->device, v);
        else if (!strcmp(line, "server"))
            copy_field(s->server, sizeof s->server, v);
        else if (!strcmp(line, "export"))
            copy_field(s->export, sizeof s->export, v);
        else if (!strcmp(line, "mountpoint"))
            copy_field(s->mountpoint, sizeof s->mountpoint, v);
        else if (!strcmp(line, "fuse_dir"))
            copy_field(s->fuse_dir, sizeof s->fuse_dir, v);
        else if (!strcmp(line, "worker"))
            s->worker = (pid_t)atoi(v);
        else if (!strcmp(line, "size"))
            s->size = strtoull(v, NULL, 10);
        else if (!strcmp(line, "direct_io"))
            s->direct_io = atoi(v) != 0;
        else if (!strcmp(line, "read_only"))
            s->read_only = atoi(v) != 0;
        else if (!strcmp(line, "phase"))
            s->phase = strcmp(v, "prepared") == 0 ? HOME_PREPARED : HOME_MOUNTED;
        else if (!strcmp(line, "stage"))
            copy_field(s->stage, sizeof s->stage, v);
        else if (!strcmp(line, "sessions"))
            s->sessions = atoi(v) > 0 ? atoi(v) : 0;
        else if (!strcmp(line, "closing"))
            s->closing = atoi(v) != 0;
    }
    fclose(f);
    return !strcmp(s->user, user) && s->mountpoint[0] ? 0 : -EINVAL;
}

static int state_read(const struct hp_config *cfg, const char *user, struct home_state *s)
{
    char path[PATH_MAX];
    state_path(cfg, user, "", path, sizeof path);
    return state_read_file(path, user, s);
}

static void state_remove(const struct hp_config *cfg, const char *user)
{
    char path[PATH_MAX];
    state_path(cfg, user, "", path, sizeof path);
    unlink(path);
    state_path(cfg, user, ":stats", path, sizeof path);
    unlink(path);
    state_path(cfg, user, ":stats:tmp", path, sizeof path); /* a worker killed mid-write */
    unlink(path);
    state_path(cfg, user, ":tmp", path, sizeof path);
    unlink(path);
}

static bool is_mountpoint_of(const char *target, const char *source)
{
    struct libmnt_table *tb = mnt_new_table();
    bool found = false;

    if (tb && mnt_table_parse_file(tb, "/proc/self/mountinfo") == 0) {
        struct libmnt_fs *fs = mnt_table_find_target(tb, target, MNT_ITER_BACKWARD);
        found = fs &&
                (!source || (mnt_fs_get_source(fs) && strcmp(mnt_fs_get_source(fs), source) == 0));
    }
    mnt_unref_table(tb);
    return found;
}

static bool worker_alive(pid_t pid)
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

/* Stop the worker: unmount its FUSE dir (its loop then ends at once),
 * SIGTERM, wait, SIGKILL; a killed worker leaves its FUSE mount behind, so
 * detach that too. */
static void stop_worker(const struct home_state *s)
{
    if (s->fuse_dir[0] && is_mountpoint_of(s->fuse_dir, NULL))
        umount2(s->fuse_dir, 0);
    if (worker_alive(s->worker)) {
        kill(s->worker, SIGTERM);
        for (int i = 0; i < WORKER_STOP_MS / 20 && worker_alive(s->worker); i++) {
            struct timespec ts = {0, 20L * 1000000};
            /* The loop device lets go of the FUSE file asynchronously: the
             * first unmount may have been refused (EBUSY).  Until the FUSE
             * mount is gone, the worker's threads sit in read(2). */
            if (s->fuse_dir[0] && is_mountpoint_of(s->fuse_dir, NULL))
                umount2(s->fuse_dir, 0);
            waitpid(s->worker, NULL, WNOHANG);
            nanosleep(&ts, NULL);
        }
        if (worker_alive(s->worker)) {
            log_warn("worker %d of %s did not stop: killing it", (int)s->worker, s->user);
            kill(s->worker, SIGKILL);
        }
        waitpid(s->worker, NULL, WNOHANG);
    }
    if (s->fuse_dir[0]) {
        if (is_mountpoint_of(s->fuse_dir, NULL))
            umount2(s->fuse_dir, MNT_DETACH);
        rmdir(s->fuse_dir);
    }
}

/* Undo what a record says is there: stage mount, device, worker, record.
 * For a home that never reached its user, or whose worker is gone. */
static void discard(const struct hp_config *cfg, const struct home_state *s)
{
    if (s->stage[0] && s->device[0] && is_mountpoint_of(s->stage, s->device))
        umount2(s->stage, MNT_DETACH | UMOUNT_NOFOLLOW);
    if (s->device[0] && is_mountpoint_of(s->mountpoint, s->device))
        log_warn("%s is still mounted on %s: not releasing it", s->device, s->mountpoint);
    else
        release_device(s);
    stop_worker(s);
    if (s->stage[0])
        rmdir(s->stage);
    state_remove(cfg, s->user);
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

/* The worker: connect, serve the export on the FUSE dir, report through
 * the pipe.  Never returns. */
static void run_worker(const struct hp_config *cfg, const struct hp_server *srv, const char *export,
                       const char *fuse_dir, const char *stats, int wfd, struct nbd_handle *warm)
{
    struct nbd_export ex;
    char why[512];
    int rc;

    worker_detach(cfg, wfd, warm);
    rc = open_export(cfg, srv, export, warm, &ex, why, sizeof why);
    if (rc < 0) {
        dprintf(wfd, "err %d %s\n", -rc, why);
        _exit(1);
    }
    struct fusedisk_params p = {.dir = fuse_dir,
                                .server = srv,
                                .export = export,
                                .connect_timeout_ms = cfg->connect_timeout_ms,
                                .dead_timeout_ms = cfg->dead_timeout_ms,
                                .stats_path = stats,
                                .ready_fd = wfd};
    rc = fusedisk_serve(&p, &ex);
    if (rc < 0)
        dprintf(wfd, "err %d cannot serve the FUSE disk on %s: %s\n", -rc, fuse_dir, strerror(-rc));
    _exit(rc < 0 ? 1 : 0);
}

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void worker_detach(const struct hp_config *cfg, int keep, struct nbd_handle *warm);

static void write_kernel_stats(const char *path, bool connected, unsigned long long reconnects,
                               const char *err)
{
    char tmp[PATH_MAX + 8], line[256];
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s:tmp", path);
    f = fopen(tmp, "we");
    if (!f)
        return;
    /* one line: the reason may quote the server, whose newline would add a key */
    snprintf(line, sizeof line, "%s", err);
    for (char *c = line; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    fprintf(f, "state=%s\nreconnects=%llu\nlast_error=%s\n",
            connected ? "connected" : "disconnected", reconnects, line);
    if (fclose(f) == 0)
        rename(tmp, path);
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

/* The kernel attach worker: connect, hand the socket to nbd.ko, then watch
 * for a dead link and give the kernel a new connection (backoff 100 ms to
 * 2 s) until it works again.  The kernel holds I/O for dead_timeout
 * meanwhile, then fails it.  Never returns. */
static void run_kernel_worker(const struct hp_config *cfg, const struct hp_server *srv,
                              const char *export, const char *stats, int wfd,
                              struct nbd_handle *warm)
{
    struct nbd_export ex;
    char why[512] = "";
    unsigned long long reconnects = 0;
    int rc, index = -1, watch = -1;
    unsigned dead_s = (cfg->dead_timeout_ms + 999) / 1000;
    unsigned io_s = (cfg->io_timeout_ms + 999) / 1000;

    worker_detach(cfg, wfd, warm);
    rc = open_export(cfg, srv, export, warm, &ex, why, sizeof why);
    bool use_ioctl = cfg->kernel_api == HP_KAPI_IOCTL;
    if (rc == 0 && !use_ioctl) {
        watch = nbdkernel_watch_open(); /* before connecting: miss no announcement */
        rc = nbdkernel_connect(&ex, dead_s, io_s, &index);
        if (rc == -ENODEV && cfg->kernel_api == HP_KAPI_AUTO) {
            log_notice("%s: no netlink nbd in this kernel: using the ioctl interface", export);
            use_ioctl = true;
            rc = 0;
        } else if (rc < 0) {
            snprintf(why, sizeof why, "the kernel refused the connection: %s", strerror(-rc));
            nbd_export_close(&ex);
        }
    }
    if (rc == 0 && use_ioctl)
        run_ioctl_worker(&ex, io_s, stats, wfd); /* never returns */
    if (rc < 0) {
        dprintf(wfd, "err %d %s\n", -rc, why);
        _exit(1);
    }
    write_kernel_stats(stats, true, 0, "");
    dprintf(wfd, "ok /dev/nbd%d\n", index);
    close(wfd);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    signal(SIGHUP, on_stop);
    if (watch < 0)
        log_warn("%s: cannot watch /dev/nbd%d for a dead link (%s): no reconnects", export, index,
                 strerror(-watch));
    while (!stop_requested) {
        struct pollfd p = {.fd = watch, .events = POLLIN};
        if (watch < 0) { /* nothing to watch: just wait to be stopped */
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
            continue;
        }
        if (poll(&p, 1, 1000) <= 0 || nbdkernel_watch_read(watch) != index)
            continue;
        log_warn("%s: /dev/nbd%d lost its connection to %s; reconnecting", export, index,
                 srv->label);
        write_kernel_stats(stats, false, reconnects, "link dead");
        unsigned backoff_ms = 100;
        while (!stop_requested) {
            rc = nbd_export_open(srv, export, cfg->connect_timeout_ms, &ex, why, sizeof why);
            if (rc == 0) {
                rc = nbdkernel_reconfigure(index, &ex);
                if (rc < 0) {
                    snprintf(why, sizeof why, "reconfigure: %s", strerror(-rc));
                    nbd_export_close(&ex);
                }
            }
            if (rc == 0) {
                reconnects++;
                log_notice("%s: /dev/nbd%d reconnected to %s", export, index, srv->label);
                write_kernel_stats(stats, true, reconnects, "");
                break;
            }
            write_kernel_stats(stats, false, reconnects, why);
            struct timespec ts = {backoff_ms / 1000, (long)(backoff_ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
            backoff_ms = backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2;
        }
    }
    _exit(0);
}

/* Wait for the worker's first line: "ok [device]" or "err ERRNO reason".
 * The device (kernel attach) goes to dev. */
static int worker_ready(int rfd, unsigned timeout_ms, char *dev, size_t devlen, char *why,
                        size_t whylen)
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
        copy_field(dev, devlen, buf + 3);
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

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Whether e2fsck -p would only say "clean" and exit 0: the ext4 superblock
 * says valid, no errors recorded, no journal to replay, and no check due by
 * mount count or interval.  Then its exec (the dearest step of a login
 * here) is skipped; in any other case, or when in doubt, e2fsck runs. */
static bool fs_clean(const char *dev)
{
    unsigned char sb[1024];
    int fd = open(dev, O_RDONLY | O_CLOEXEC);
    bool ok;

    if (fd < 0)
        return false;
    ok = pread(fd, sb, sizeof sb, 1024) == (ssize_t)sizeof sb;
    close(fd);
    if (!ok || (sb[0x38] | sb[0x39] << 8) != 0xEF53)
        return false;
    unsigned state = sb[0x3A] | sb[0x3B] << 8;
    int mnt_count = sb[0x34] | sb[0x35] << 8;
    int max_mnt = (int16_t)(sb[0x36] | sb[0x37] << 8);
    uint32_t lastcheck = le32(sb + 0x40), interval = le32(sb + 0x44);
    uint32_t incompat = le32(sb + 0x60), errors = le32(sb + 0x194);
    time_t now = time(NULL);

    if (!(state & 1) || (state & 2) || errors) /* not cleanly unmounted, or errors */
        return false;
    if (incompat & (0x4 | 0x8)) /* needs journal recovery; an external journal device */
        return false;
    if (max_mnt > 0 && mnt_count >= max_mnt)
        return false;
    if ((time_t)lastcheck > now || (interval && now >= (time_t)lastcheck + (time_t)interval))
        return false;
    return true;
}

static int do_mount(const struct hp_config *cfg, const char *dev, const char *target, bool ro)
{
    struct libmnt_context *cxt = mnt_new_context();
    int rc;

    if (!cxt)
        return -ENOMEM;
    mnt_context_disable_mtab(cxt, 1);
    mnt_context_set_source(cxt, dev);
    mnt_context_set_target(cxt, target);
    mnt_context_set_fstype(cxt, "ext4");
    mnt_context_set_options(cxt, cfg->mount_options);
    if (ro)
        mnt_context_append_options(cxt, "ro");
    rc = mnt_context_mount(cxt);
    if (rc == 0 && mnt_context_get_status(cxt) != 1)
        rc = -EIO;
    else if (rc > 0) /* a mount(2) error: libmount keeps errno in the syscall status */
        rc = -mnt_context_get_syscall_errno(cxt);
    mnt_free_context(cxt);
    return rc > 0 ? -EIO : rc;
}

/* Where the home of s is mounted now. */
static const char *current_target(const struct home_state *s)
{
    return s->phase == HOME_PREPARED ? s->stage : s->mountpoint;
}

int home_prepare(const struct hp_config *cfg, const char *user, const struct hp_server *srv,
                 struct nbd_handle *warm, home_progress_fn progress, void *ctx, char *why,
                 size_t whylen)
{
    struct home_state s = {0};
    char stats[PATH_MAX], dir[PATH_MAX], disk[PATH_MAX + 8];
    struct passwd *pw;
    struct stat st;
    int pfd[2], lfd = -1, rc;
    pid_t pid;

    if (!user_name_valid(user)) {
        snprintf(why, whylen, "invalid user name '%s': it %s", user, user_name_problem(user));
        return -EINVAL;
    }
    pw = getpwnam(user);
    if (!pw) {
        snprintf(why, whylen, "user '%s' is unknown on this machine", user);
        return -ENOENT;
    }
    if (!srv)
        srv = config_home_server(cfg);
    if (!srv) {
        snprintf(why, whylen, "no home server configured: set [home] server or [nbd] servers");
        return -EINVAL;
    }
    if (state_read(cfg, user, &s) == 0) {
        if (worker_alive(s.worker) && is_mountpoint_of(current_target(&s), s.device)) {
            snprintf(why, whylen, "the home of %s is already %s on %s (%s)", user,
                     s.phase == HOME_PREPARED ? "prepared" : "mounted", current_target(&s),
                     s.device);
            return -EALREADY;
        }
        log_warn("stale record of %s's home (worker %d gone): cleaning it up", user, (int)s.worker);
        discard(cfg, &s);
    }
    bool kernel =
        cfg->attach == HP_ATTACH_KERNEL || (cfg->attach == HP_ATTACH_AUTO && nbdkernel_available());
    if (cfg->attach == HP_ATTACH_KERNEL && !nbdkernel_available()) {
        snprintf(why, whylen, "attach = kernel, but nbd.ko is not loaded and cannot be loaded");
        return -ENODEV;
    }
    memset(&s, 0, sizeof s);
    snprintf(s.user, sizeof s.user, "%s", user);
    snprintf(s.attach, sizeof s.attach, "%s", kernel ? "kernel" : "fuse");
    snprintf(s.server, sizeof s.server, "%s", srv->label);
    if (config_expand(cfg->export_template, user, s.export, sizeof s.export) < 0 ||
        config_expand(cfg->mount_template, user, s.mountpoint, sizeof s.mountpoint) < 0) {
        snprintf(why, whylen, "export or mount_dir too long for user %s", user);
        return -ENAMETOOLONG;
    }
    if (!kernel)
        snprintf(s.fuse_dir, sizeof s.fuse_dir, "%s/fuse/%s", cfg->run_dir, user);
    snprintf(s.stage, sizeof s.stage, "%s/stage/%s", cfg->run_dir, user);
    s.phase = HOME_PREPARED;
    snprintf(dir, sizeof dir, "%s/homes", cfg->run_dir);
    if ((rc = tree_mkdirs(dir, 0700)) < 0 || (rc = tree_mkdirs(s.stage, 0700)) < 0 ||
        (!kernel && (rc = tree_mkdirs(s.fuse_dir, 0700)) < 0)) {
        snprintf(why, whylen, "cannot create the directories under %s: %s", cfg->run_dir,
                 strerror(-rc));
        return rc;
    }
    state_path(cfg, user, ":stats", stats, sizeof stats);

    say(progress, ctx, "Requesting home of %s from %s...", user, srv->label);
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        rc = -errno;
        snprintf(why, whylen, "pipe: %s", strerror(-rc));
        return rc;
    }
    pid = fork();
    if (pid < 0) {
        rc = -errno;
        close(pfd[0]);
        close(pfd[1]);
        snprintf(why, whylen, "fork: %s", strerror(-rc));
        return rc;
    }
    if (pid == 0) {
        close(pfd[0]);
        if (kernel)
            run_kernel_worker(cfg, srv, s.export, stats, pfd[1], warm);
        run_worker(cfg, srv, s.export, s.fuse_dir, stats, pfd[1], warm);
    }
    close(pfd[1]);
    s.worker = pid;
    rc = worker_ready(pfd[0], cfg->connect_timeout_ms + 5000, s.device, sizeof s.device, why,
                      whylen);
    close(pfd[0]);
    if (rc < 0) {
        waitpid(pid, NULL, WNOHANG);
        discard(cfg, &s); /* the worker, its FUSE dir, the stage dir */
        return rc;
    }
    /* Record it now: from here on a failure must be able to undo it. */
    rc = state_write(cfg, &s);
    if (rc < 0) {
        snprintf(why, whylen, "cannot record the home of %s: %s", user, strerror(-rc));
        goto undo;
    }

    if (!kernel) {
        snprintf(disk, sizeof disk, "%s/disk", s.fuse_dir);
        if (stat(disk, &st) == 0) {
            s.size = (uint64_t)st.st_size;
            s.read_only = !(st.st_mode & S_IWUSR); /* the server exports it read-only */
        }
        lfd = loopdev_attach(disk, s.read_only, 0, s.device, sizeof s.device, &s.direct_io);
        if (lfd < 0) {
            rc = lfd;
            s.device[0] = '\0';
            snprintf(why, whylen, "cannot bind a loop device to %s: %s", disk, strerror(-rc));
            goto undo;
        }
    } else {
        char ro[8] = "0", path[128];
        snprintf(path, sizeof path, "/sys/block/%.58s/ro", s.device + 5);
        textfile_read_line(path, ro, sizeof ro, 0);
        s.read_only = ro[0] == '1';
        s.direct_io = true; /* no page cache between the device and the network */
    }
    if (s.read_only)
        log_notice("the server exports %s's home read-only: mounting it read-only", user);
    state_write(cfg, &s);

    say(progress, ctx, "Checking the home of %s...", user);
    /* -p repairs what is safe; a read-only device can only be checked (-n). */
    const char *fsck[] = {"e2fsck", s.read_only ? "-n" : "-p", s.device, NULL};
    rc = fs_clean(s.device) ? 0 : spawn_wait(fsck, 1);
    if (rc == -ENOENT) {
        log_debug("e2fsck not found: %s not checked", s.device);
    } else if (rc >= 0 && (rc & ~3) == 4) {
        snprintf(why, whylen,
                 "the home of %s has errors e2fsck %s cannot repair (exit %d): run "
                 "'e2fsck -f' on export '%s' of %s by hand",
                 user, s.read_only ? "-n" : "-p", rc, s.export, s.server);
        rc = -EUCLEAN;
        goto undo;
    } else if (rc < 0 || rc >= 4) {
        snprintf(why, whylen, "e2fsck could not check the home of %s on %s (exit %d)", user,
                 s.device, rc);
        rc = -EIO;
        goto undo;
    } else if (rc > 0) {
        log_notice("e2fsck -p repaired the home of %s (exit %d)", user, rc);
    }

    rc = do_mount(cfg, s.device, s.stage, s.read_only);
    if (rc == -EUCLEAN) {
        snprintf(why, whylen,
                 "cannot mount the home of %s: the filesystem needs repair (the kernel "
                 "refused it): run 'e2fsck -f' on export '%s' of %s by hand",
                 user, s.export, s.server);
        goto undo;
    } else if (rc < 0) {
        snprintf(why, whylen, "cannot mount %s (the home of %s): %s", s.device, user,
                 strerror(-rc));
        goto undo;
    }
    close(lfd); /* the mount holds the device now */
    lfd = -1;
    if (stat(s.stage, &st) < 0 || st.st_uid != pw->pw_uid) {
        if (!cfg->fix_owner) {
            snprintf(why, whylen,
                     "the home of %s belongs to uid %u, not %u: chown it on the server, or set "
                     "fix_owner = yes",
                     user, (unsigned)st.st_uid, (unsigned)pw->pw_uid);
            rc = -EPERM;
            goto undo;
        }
        if (chown(s.stage, pw->pw_uid, pw->pw_gid) < 0) {
            rc = -errno;
            snprintf(why, whylen, "cannot give the home of %s to uid %u: %s", user,
                     (unsigned)pw->pw_uid, strerror(-rc));
            goto undo;
        }
        log_notice("gave the root of %s's home to uid %u (fix_owner)", user, (unsigned)pw->pw_uid);
    }
    rc = state_write(cfg, &s);
    if (rc < 0) {
        snprintf(why, whylen, "cannot record the home of %s: %s", user, strerror(-rc));
        goto undo;
    }
    log_info("home of %s prepared on %s (%s)", user, s.stage, s.device);
    return 0;

undo:
    if (is_mountpoint_of(s.stage, s.device))
        umount2(s.stage, 0);
    if (lfd >= 0)
        close(lfd);
    discard(cfg, &s);
    return rc;
}

int home_enter(const struct hp_config *cfg, const char *user, int sessions, char *mountpoint,
               size_t mplen, char *why, size_t whylen)
{
    struct home_state s;
    struct stat st;
    int rc;

    if (!user_name_valid(user)) {
        snprintf(why, whylen, "invalid user name '%s': it %s", user, user_name_problem(user));
        return -EINVAL;
    }
    if (state_read(cfg, user, &s) < 0 || s.phase != HOME_PREPARED ||
        !is_mountpoint_of(s.stage, s.device)) {
        snprintf(why, whylen, "no prepared home of %s", user);
        return -ENOENT;
    }
    rc = tree_mkdirs(s.mountpoint, 0755);
    if (rc == 0 && (lstat(s.mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)))
        rc = -ENOTDIR; /* a symlink there would be followed by mount(2) */
    if (rc < 0) {
        snprintf(why, whylen, "home dir %s of %s: %s", s.mountpoint, user, strerror(-rc));
        return rc;
    }
    if (is_mountpoint_of(s.mountpoint, NULL)) {
        snprintf(why, whylen,
                 "something else is mounted on %s already: not mounting the home of %s over it",
                 s.mountpoint, user);
        return -EBUSY;
    }
    /* Bind, then drop the stage mount: no I/O, the filesystem stays mounted
     * throughout.  (MS_MOVE would refuse on a shared /run.) */
    if (mount(s.stage, s.mountpoint, NULL, MS_BIND, NULL) < 0) {
        rc = -errno;
        snprintf(why, whylen, "cannot mount the home of %s on %s: %s", user, s.mountpoint,
                 strerror(-rc));
        return rc;
    }
    if (umount2(s.stage, UMOUNT_NOFOLLOW) < 0)
        umount2(s.stage, MNT_DETACH | UMOUNT_NOFOLLOW);
    s.phase = HOME_MOUNTED;
    s.sessions = sessions;
    s.closing = false;
    rc = state_write(cfg, &s); /* one write: the login waits for its fsync */
    if (rc < 0)
        log_err("cannot record the home of %s as mounted: %s", user, strerror(-rc));
    log_info("home of %s mounted on %s (%s)", user, s.mountpoint, s.device);
    if (mountpoint)
        snprintf(mountpoint, mplen, "%s", s.mountpoint);
    return 0;
}

int home_mount(const struct hp_config *cfg, const char *user, const struct hp_server *srv,
               home_progress_fn progress, void *ctx, char *why, size_t whylen)
{
    char more[512], mountpoint[PATH_MAX];
    int rc = home_prepare(cfg, user, srv, NULL, progress, ctx, why, whylen);

    if (rc < 0)
        return rc;
    rc = home_enter(cfg, user, 0, mountpoint, sizeof mountpoint, why, whylen);
    if (rc < 0) {
        if (home_umount(cfg, user, more, sizeof more) < 0)
            log_err("%s", more);
        return rc;
    }
    say(progress, ctx, "Home of %s mounted on %s", user, mountpoint);
    return 0;
}

/* Give the block device back: loop detach, or NBD disconnect.  Only ever
 * called once its filesystem is unmounted. */
static int release_device(const struct home_state *s)
{
    int index;

    if (!s->device[0])
        return 0;
    if (strcmp(s->attach, "kernel") == 0) {
        if (sscanf(s->device, "/dev/nbd%d", &index) != 1)
            return -EINVAL;
        return nbdkernel_disconnect(index);
    }
    char disk[sizeof s->fuse_dir + 8];
    snprintf(disk, sizeof disk, "%s/disk", s->fuse_dir);
    return loopdev_detach(s->device, disk);
}

/* List the processes using something below dir (cwd, root, executable or
 * an open file), for a message. */
static void list_holders(const char *dir, char *out, size_t len)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    size_t dlen = strlen(dir), used = 0;
    int found = 0;

    out[0] = '\0';
    if (!d)
        return;
    while ((de = readdir(d)) && used + 64 < len) {
        char path[PATH_MAX], link[PATH_MAX], comm[32];
        const char *what = NULL;
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        static const char *const links[] = {"cwd", "root", "exe"};
        for (size_t i = 0; i < 3 && !what; i++) {
            snprintf(path, sizeof path, "/proc/%ld/%s", pid, links[i]);
            ssize_t n = readlink(path, link, sizeof link - 1);
            if (n > 0) {
                link[n] = '\0';
                if (strncmp(link, dir, dlen) == 0 && (link[dlen] == '/' || !link[dlen]))
                    what = links[i];
            }
        }
        if (!what) {
            snprintf(path, sizeof path, "/proc/%ld/fd", pid);
            DIR *fds = opendir(path);
            struct dirent *fe;
            while (fds && (fe = readdir(fds)) && !what) {
                char fpath[PATH_MAX + 300];
                snprintf(fpath, sizeof fpath, "%s/%s", path, fe->d_name);
                ssize_t n = readlink(fpath, link, sizeof link - 1);
                if (n > 0) {
                    link[n] = '\0';
                    if (strncmp(link, dir, dlen) == 0 && (link[dlen] == '/' || !link[dlen]))
                        what = "open file";
                }
            }
            if (fds)
                closedir(fds);
        }
        if (!what)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/comm", pid);
        if (textfile_read_line(path, comm, sizeof comm, 0) < 0)
            snprintf(comm, sizeof comm, "?");
        int n = snprintf(out + used, len - used, "%s%ld (%s, %s)", found++ ? ", " : "", pid, comm,
                         what);
        if (n > 0)
            used += (size_t)n;
    }
    closedir(d);
}

int home_umount(const struct hp_config *cfg, const char *user, char *why, size_t whylen)
{
    struct home_state s;
    int rc = -EBUSY;

    if (!user_name_valid(user)) {
        snprintf(why, whylen, "invalid user name '%s': it %s", user, user_name_problem(user));
        return -EINVAL;
    }
    if (state_read(cfg, user, &s) < 0) {
        snprintf(why, whylen, "no home of %s is mounted by homeport here", user);
        return -ENOENT;
    }
    const char *target = current_target(&s);
    /* This filesystem only: a global sync() would wait on every other one,
     * a dead FUSE or NFS mount included. */
    int tfd = open(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (tfd >= 0) {
        syncfs(tfd);
        close(tfd);
    }
    for (int i = 0; i < 5 && is_mountpoint_of(target, s.device); i++) {
        rc = umount2(target, UMOUNT_NOFOLLOW) == 0 ? 0 : -errno;
        if (rc == 0 || rc != -EBUSY)
            break;
        struct timespec ts = {0, 200L * 1000000};
        nanosleep(&ts, NULL);
    }
    if (is_mountpoint_of(target, s.device)) {
        char holders[1024];
        list_holders(target, holders, sizeof holders);
        snprintf(why, whylen, "the home of %s on %s is busy%s%s; it stays mounted", user, target,
                 holders[0] ? ": " : "", holders);
        return rc < 0 ? rc : -EBUSY;
    }
    /* Unmounted: now the device may go (a loop's autoclear may have done it). */
    rc = release_device(&s);
    if (rc < 0) {
        snprintf(why, whylen, "cannot release %s: %s", s.device, strerror(-rc));
        return rc;
    }
    stop_worker(&s);
    if (s.stage[0])
        rmdir(s.stage);
    state_remove(cfg, user);
    return 0;
}

int home_lookup(const struct hp_config *cfg, const char *user, struct home_state *s)
{
    if (state_read(cfg, user, s) < 0)
        return -ENOENT;
    return worker_alive(s->worker) && is_mountpoint_of(current_target(s), s->device) ? 0 : -ESTALE;
}

int home_set_sessions(const struct hp_config *cfg, const char *user, int sessions, bool closing)
{
    struct home_state s;
    int rc = state_read(cfg, user, &s);

    if (rc < 0)
        return rc;
    s.sessions = sessions;
    s.closing = closing;
    return state_write(cfg, &s);
}

void home_foreach(const struct hp_config *cfg, void (*fn)(void *ctx, const char *user), void *ctx)
{
    char dir[PATH_MAX];
    struct dirent *de;
    DIR *d;

    snprintf(dir, sizeof dir, "%s/homes", cfg->run_dir);
    d = opendir(dir);
    while (d && (de = readdir(d)))
        if (user_name_valid(de->d_name)) /* not USER:stats, USER:tmp */
            fn(ctx, de->d_name);
    if (d)
        closedir(d);
}

static void read_stats(const struct hp_config *cfg, const char *user, char *state, size_t slen,
                       unsigned long long *rd, unsigned long long *wr, unsigned long long *rec,
                       char *err, size_t elen)
{
    char path[PATH_MAX], line[512];
    FILE *f;

    snprintf(state, slen, "unknown");
    *rd = *wr = *rec = 0;
    err[0] = '\0';
    state_path(cfg, user, ":stats", path, sizeof path);
    f = fopen(path, "re");
    if (!f)
        return;
    while (record_line(f, line, sizeof line)) {
        if (!strncmp(line, "state=", 6))
            copy_field(state, slen, line + 6);
        else if (!strncmp(line, "bytes_read=", 11))
            *rd = strtoull(line + 11, NULL, 10);
        else if (!strncmp(line, "bytes_written=", 14))
            *wr = strtoull(line + 14, NULL, 10);
        else if (!strncmp(line, "reconnects=", 11))
            *rec = strtoull(line + 11, NULL, 10);
        else if (!strncmp(line, "last_error=", 11))
            copy_field(err, elen, line + 11);
    }
    fclose(f);
}

int home_status(const struct hp_config *cfg, FILE *out, bool json)
{
    char dir[PATH_MAX];
    struct dirent *de;
    DIR *d;
    int troubled = 0, n = 0;

    snprintf(dir, sizeof dir, "%s/homes", cfg->run_dir);
    d = opendir(dir);
    if (json)
        fprintf(out, "{\"version\": 1, \"homes\": [");
    while (d && (de = readdir(d))) {
        char path[PATH_MAX + 300], state[32], err[256];
        unsigned long long rd, wr, rec;
        struct home_state s;
        if (de->d_name[0] == '.' || strchr(de->d_name, ':'))
            continue; /* USER:stats, USER:tmp (':' is never in a user name) */
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (state_read_file(path, de->d_name, &s) < 0)
            continue;
        bool alive = worker_alive(s.worker);
        bool mounted = is_mountpoint_of(current_target(&s), s.device);
        read_stats(cfg, s.user, state, sizeof state, &rd, &wr, &rec, err, sizeof err);
        if (!strcmp(s.attach, "kernel")) {
            /* the kernel counts: /sys/block/nbdN/stat, sectors read (3rd) and written (7th) */
            char sp[sizeof s.device + 32], line[256];
            unsigned long long f[7] = {0};
            snprintf(sp, sizeof sp, "/sys/block/%.58s/stat", s.device + 5);
            if (textfile_read_line(sp, line, sizeof line, 0) == 0 &&
                sscanf(line, "%llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3],
                       &f[4], &f[5], &f[6]) == 7) {
                rd = f[2] * 512;
                wr = f[6] * 512;
            }
        }
        if (!alive)
            snprintf(state, sizeof state, "worker-gone");
        else if (!mounted)
            snprintf(state, sizeof state, "not-mounted");
        bool bad = strcmp(state, "connected") != 0;
        troubled += bad;
        const char *phase = s.phase == HOME_PREPARED ? "prepared" : "mounted";
        if (json) {
            fprintf(out, "%s\n  {\"user\": ", n ? "," : "");
            json_str(out, s.user);
            fprintf(out, ", \"device\": ");
            json_str(out, s.device);
            fprintf(out, ", \"server\": ");
            json_str(out, s.server);
            fprintf(out, ", \"export\": ");
            json_str(out, s.export);
            fprintf(out, ", \"attach\": ");
            json_str(out, s.attach);
            fprintf(out, ", \"mountpoint\": ");
            json_str(out, s.mountpoint);
            fprintf(out, ", \"state\": ");
            json_str(out, state);
            fprintf(out, ", \"phase\": \"%s\", \"sessions\": %d", phase, s.sessions);
            fprintf(out,
                    ", \"size\": %llu, \"direct_io\": %s, \"read_only\": %s, \"reconnects\": %llu, "
                    "\"bytes_read\": %llu, \"bytes_written\": %llu, \"worker\": %d, "
                    "\"last_error\": ",
                    (unsigned long long)s.size, s.direct_io ? "true" : "false",
                    s.read_only ? "true" : "false", rec, rd, wr, (int)s.worker);
            json_str(out, err);
            fputc('}', out);
        } else {
            fprintf(out,
                    "%s %s on %s (%s): %s export '%s' via %s (%s%s), %s, sessions %d, "
                    "reconnects %llu, read %llu bytes, written %llu bytes%s%s\n",
                    s.user, s.device, current_target(&s), phase, s.server, s.export, s.attach,
                    s.direct_io ? "direct I/O" : "buffered", s.read_only ? ", read-only" : "",
                    state, s.sessions, rec, rd, wr, err[0] ? ", last error: " : "", err);
        }
        n++;
    }
    if (d)
        closedir(d);
    if (json)
        fprintf(out, "], \"count\": %d, \"troubled\": %d", n, troubled);
    else if (n == 0)
        fprintf(out, "no homes held\n");
    warm_status(cfg->run_dir, out, json);
    if (json)
        fprintf(out, "}\n");
    return troubled;
}
