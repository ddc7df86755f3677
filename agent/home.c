#include "home.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libmount.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ext4meta.h"
#include "json.h"
#include "log.h"
#include "loopdev.h"
#include "mounts.h"
#include "nbdkernel.h"
#include "spare.h"
#include "spawn.h"
#include "textfile.h"
#include "tree.h"
#include "user.h"
#include "warm.h"
#include "worker.h"

#define WORKER_STOP_MS 10000
#define RECORD_LINE_MAX 4199 /* home.h: longer lines of a record are ignored */
#define STATS_LINE_MAX 511   /* and of USER:stats */

static int release_device(const struct home_state *s);

__attribute__((format(printf, 3, 4))) static void say(progress_fn fn, void *ctx, const char *fmt,
                                                      ...)
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
    char path[PATH_MAX];
    struct textfile_kv kv = {0};

    state_path(cfg, s->user, "", path, sizeof path);
    textfile_kv_add(&kv, "user", "%s", s->user);
    textfile_kv_add(&kv, "attach", "%s", s->attach);
    textfile_kv_add(&kv, "device", "%s", s->device);
    textfile_kv_add(&kv, "server", "%s", s->server);
    textfile_kv_add(&kv, "export", "%s", s->export);
    textfile_kv_add(&kv, "mountpoint", "%s", s->mountpoint);
    textfile_kv_add(&kv, "fuse_dir", "%s", s->fuse_dir);
    textfile_kv_add(&kv, "worker", "%d", (int)s->worker);
    textfile_kv_add(&kv, "size", "%llu", (unsigned long long)s->size);
    textfile_kv_add(&kv, "direct_io", "%d", s->direct_io ? 1 : 0);
    textfile_kv_add(&kv, "read_only", "%d", s->read_only ? 1 : 0);
    textfile_kv_add(&kv, "phase", "%s", s->phase == HOME_MOUNTED ? "mounted" : "prepared");
    textfile_kv_add(&kv, "stage", "%s", s->stage);
    textfile_kv_add(&kv, "sessions", "%d", s->sessions);
    textfile_kv_add(&kv, "closing", "%d", s->closing ? 1 : 0);
    return textfile_kv_replace(&kv, path, 0666);
}

/* Copy, cutting what does not fit. */
static void copy_field(char *dst, size_t len, const char *v)
{
    size_t n = strnlen(v, len - 1);
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static void state_field(void *ctx, const char *key, const char *v)
{
    struct home_state *s = ctx;

    if (!strcmp(key, "user")) {
        if (strlen(v) < sizeof s->user) /* a longer one is no user's: never cut to one */
            copy_field(s->user, sizeof s->user, v);
    } else if (!strcmp(key, "attach"))
        copy_field(s->attach, sizeof s->attach, v);
    else if (!strcmp(key, "device"))
        copy_field(s->device, sizeof s->device, v);
    else if (!strcmp(key, "server"))
        copy_field(s->server, sizeof s->server, v);
    else if (!strcmp(key, "export"))
        copy_field(s->export, sizeof s->export, v);
    else if (!strcmp(key, "mountpoint"))
        copy_field(s->mountpoint, sizeof s->mountpoint, v);
    else if (!strcmp(key, "fuse_dir"))
        copy_field(s->fuse_dir, sizeof s->fuse_dir, v);
    else if (!strcmp(key, "worker"))
        s->worker = (pid_t)atoi(v);
    else if (!strcmp(key, "size"))
        s->size = strtoull(v, NULL, 10);
    else if (!strcmp(key, "direct_io"))
        s->direct_io = atoi(v) != 0;
    else if (!strcmp(key, "read_only"))
        s->read_only = atoi(v) != 0;
    else if (!strcmp(key, "phase"))
        s->phase = strcmp(v, "prepared") == 0 ? HOME_PREPARED : HOME_MOUNTED;
    else if (!strcmp(key, "stage"))
        copy_field(s->stage, sizeof s->stage, v);
    else if (!strcmp(key, "sessions"))
        s->sessions = atoi(v) > 0 ? atoi(v) : 0;
    else if (!strcmp(key, "closing"))
        s->closing = atoi(v) != 0;
}

/* The record at path, which is user's (its file is named for the user):
 * one whose user= says otherwise is not valid (-EINVAL), or what it names
 * (paths under run_dir built from that name: home_set_sessions rewrites
 * the record it names) would not be user's. */
static int state_read_file(const char *path, const char *user, struct home_state *s)
{
    int rc;

    memset(s, 0, sizeof *s);
    s->phase = HOME_MOUNTED; /* records written before phases existed */
    if ((rc = textfile_kv_read(path, RECORD_LINE_MAX, state_field, s)) < 0)
        return rc;
    return !strcmp(s->user, user) && s->mountpoint[0] ? 0 : -EINVAL;
}

static int state_read(const struct hp_config *cfg, const char *user, struct home_state *s)
{
    char path[PATH_MAX];
    state_path(cfg, user, "", path, sizeof path);
    return state_read_file(path, user, s);
}

/* user's record, stats, and what a writer killed mid-write left of them
 * (USER.tmp.PID, USER:stats.tmp.PID: textfile_replace's temp files). */
static void state_remove(const struct hp_config *cfg, const char *user)
{
    char path[PATH_MAX], dir[PATH_MAX];
    size_t ulen = strlen(user);
    struct dirent *de;
    DIR *d;

    state_path(cfg, user, "", path, sizeof path);
    unlink(path);
    state_path(cfg, user, ":stats", path, sizeof path);
    unlink(path);
    snprintf(dir, sizeof dir, "%s/homes", cfg->run_dir);
    d = opendir(dir);
    while (d && (de = readdir(d))) {
        const char *rest = de->d_name + ulen;
        if (strncmp(de->d_name, user, ulen) != 0 ||
            (strncmp(rest, ".tmp.", 5) != 0 && strncmp(rest, ":stats.tmp.", 11) != 0))
            continue;
        unlinkat(dirfd(d), de->d_name, 0);
    }
    if (d)
        closedir(d);
}

/* Whether the topmost mount on target, in table (mounts_table), is of
 * source (of anything: NULL). */
static bool mounted_in(const char *table, const char *target, const char *source)
{
    char src[PATH_MAX];

    return mounts_table_source(table, target, src, sizeof src) > 0 &&
           (!source || strcmp(src, source) == 0);
}

/* The same on the mount table as it is now. */
static bool is_mountpoint_of(const char *target, const char *source)
{
    char src[PATH_MAX];

    return mounts_source_of("/proc/self/mountinfo", target, src, sizeof src) > 0 &&
           (!source || strcmp(src, source) == 0);
}

/* Stop the worker: unmount its FUSE dir (its loop then ends at once),
 * SIGTERM, wait, SIGKILL; a killed worker leaves its FUSE mount behind, so
 * detach that too. */
static void stop_worker(const struct home_state *s)
{
    if (s->fuse_dir[0] && is_mountpoint_of(s->fuse_dir, NULL))
        umount2(s->fuse_dir, 0);
    if (worker_alive(s->worker)) {
        int64_t end = clock_ms() + WORKER_STOP_MS;
        unsigned ms = 1; /* it is usually gone within a few: look again soon */
        kill(s->worker, SIGTERM);
        while (worker_alive(s->worker) && clock_ms() < end) {
            /* The loop device lets go of the FUSE file asynchronously: the
             * first unmount may have been refused (EBUSY).  Until the FUSE
             * mount is gone, the worker's threads sit in read(2). */
            if (s->fuse_dir[0] && is_mountpoint_of(s->fuse_dir, NULL))
                umount2(s->fuse_dir, 0);
            waitpid(s->worker, NULL, WNOHANG);
            clock_sleep_ms(ms);
            ms = clock_doubled(ms, 20);
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

/* Whether e2fsck -p would only say "clean" and exit 0 (ext4meta.h).  Then
 * its exec (the dearest step of a login here) is skipped; in any other
 * case, or when in doubt, e2fsck runs. */
static bool fs_clean(const char *dev)
{
    uint8_t sb[1024];
    int fd = open(dev, O_RDONLY | O_CLOEXEC);
    bool ok;

    if (fd < 0)
        return false;
    ok = pread(fd, sb, sizeof sb, 1024) == (ssize_t)sizeof sb;
    close(fd);
    return ok && ext4meta_clean(sb, time(NULL));
}

static int do_mount(const struct hp_config *cfg, const char *dev, const char *target, bool ro)
{
    struct libmnt_context *cxt = mnt_new_context();
    int rc;

    if (!cxt)
        return -ENOMEM;
    mnt_context_disable_mtab(cxt, 1);
    /* The paths are ours, made canonical (a device from loop-control or
     * nbd, a dir under run_dir), and the mount is mount(2) itself: no
     * readlink of every component, no search for a /sbin/mount.ext4. */
    mnt_context_disable_canonicalize(cxt, 1);
    mnt_context_disable_helpers(cxt, 1);
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

/* A home being prepared: what is attached so far, so that a failing step
 * can undo it all (home_setup_undo). */
struct home_setup {
    const struct hp_config *cfg;
    const struct hp_server *srv;
    struct nbd_handle *warm;
    struct home_ahead *ahead; /* a spare taken for this home, or NULL */
    uid_t uid;
    gid_t gid;
    bool kernel;
    int loop_fd; /* FUSE attach: the loop device, until the mount holds it */
    struct home_state s;
    char stats[PATH_MAX];
    char layout[PATH_MAX]; /* the FUSE worker's layout hint, or empty */
    int verdict_fd;        /* the worker's verdict on the filesystem (worker.h), or -1 */
    char *why;
    size_t whylen;
};

/* Check the request and fill hs (nothing attached yet): a stale record is
 * cleaned up, the directories made. */
static int home_setup_init(struct home_setup *hs, const char *user)
{
    const struct hp_config *cfg = hs->cfg;
    struct home_state *s = &hs->s;
    struct passwd *pw;
    char dir[PATH_MAX];
    int rc;

    if (!user_name_valid(user)) {
        snprintf(hs->why, hs->whylen, "invalid user name '%s': it %s", user,
                 user_name_problem(user));
        return -EINVAL;
    }
    pw = getpwnam(user);
    if (!pw) {
        snprintf(hs->why, hs->whylen, "user '%s' is unknown on this machine", user);
        return -ENOENT;
    }
    hs->uid = pw->pw_uid;
    hs->gid = pw->pw_gid;
    if (!hs->srv)
        hs->srv = config_home_server(cfg);
    if (!hs->srv) {
        snprintf(hs->why, hs->whylen,
                 "no home server configured: set [home] server or [nbd] servers");
        return -EINVAL;
    }
    if (state_read(cfg, user, s) == 0) {
        if (worker_alive(s->worker) && is_mountpoint_of(current_target(s), s->device)) {
            snprintf(hs->why, hs->whylen, "the home of %s is already %s on %s (%s)", user,
                     s->phase == HOME_PREPARED ? "prepared" : "mounted", current_target(s),
                     s->device);
            return -EALREADY;
        }
        log_warn("stale record of %s's home (worker %d gone): cleaning it up", user,
                 (int)s->worker);
        discard(cfg, s);
    }
    hs->kernel =
        cfg->attach == HP_ATTACH_KERNEL || (cfg->attach == HP_ATTACH_AUTO && nbdkernel_available());
    if (cfg->attach == HP_ATTACH_KERNEL && !nbdkernel_available()) {
        snprintf(hs->why, hs->whylen,
                 "attach = kernel, but nbd.ko is not loaded and cannot be loaded");
        return -ENODEV;
    }
    memset(s, 0, sizeof *s);
    snprintf(s->user, sizeof s->user, "%s", user);
    snprintf(s->attach, sizeof s->attach, "%s", hs->kernel ? "kernel" : "fuse");
    snprintf(s->server, sizeof s->server, "%s", hs->srv->label);
    if (config_export_name(cfg, user, s->export, sizeof s->export) < 0 ||
        config_expand(cfg->mount_template, user, s->mountpoint, sizeof s->mountpoint) < 0) {
        snprintf(hs->why, hs->whylen, "export or mount_dir too long for user %s", user);
        return -ENAMETOOLONG;
    }
    if (!hs->kernel)
        snprintf(s->fuse_dir, sizeof s->fuse_dir, "%s/fuse/%s", cfg->run_dir, user);
    snprintf(s->stage, sizeof s->stage, "%s/stage/%s", cfg->run_dir, user);
    s->phase = HOME_PREPARED;
    snprintf(dir, sizeof dir, "%s/homes", cfg->run_dir);
    if ((rc = tree_mkdirs(dir, 0700)) < 0 || (rc = tree_mkdirs(s->stage, 0700)) < 0 ||
        (!hs->kernel && (rc = tree_mkdirs(s->fuse_dir, 0700)) < 0)) {
        snprintf(hs->why, hs->whylen, "cannot create the directories under %s: %s", cfg->run_dir,
                 strerror(-rc));
        return rc;
    }
    /* Without state_dir/layout the mount just makes its round trips. */
    snprintf(dir, sizeof dir, "%s/layout", cfg->state_dir);
    if (home_worker_files(cfg, user, hs->stats, sizeof hs->stats, hs->layout, sizeof hs->layout) <
            0 ||
        hs->kernel || tree_mkdirs(dir, 0700) < 0)
        hs->layout[0] = '\0';
    return 0;
}

int home_worker_files(const struct hp_config *cfg, const char *user, char *stats, size_t statslen,
                      char *layout, size_t layoutlen)
{
    state_path(cfg, user, ":stats", stats, statslen);
    /* The layout hint lives in state_dir (kept across reboots where it
     * is on a disk). */
    if (snprintf(layout, layoutlen, "%s/layout/%s", cfg->state_dir, user) >= (int)layoutlen) {
        layout[0] = '\0';
        return -ENAMETOOLONG;
    }
    return 0;
}

/* Undo whatever the steps so far attached, mounted and recorded. */
static void home_setup_undo(struct home_setup *hs)
{
    if (hs->s.device[0] && is_mountpoint_of(hs->s.stage, hs->s.device))
        umount2(hs->s.stage, 0);
    if (hs->loop_fd >= 0)
        close(hs->loop_fd);
    hs->loop_fd = -1;
    if (hs->verdict_fd >= 0)
        close(hs->verdict_fd);
    hs->verdict_fd = -1;
    discard(hs->cfg, &hs->s);
}

void home_ahead_drop(struct home_ahead *a)
{
    if (!a || a->spare <= 0 || a->adopted)
        return;
    struct home_state s = {.worker = a->spare};
    snprintf(s.fuse_dir, sizeof s.fuse_dir, "%s", a->spare_dir);
    close(a->spare_ctl);
    stop_worker(&s);
    a->adopted = true;
}

/* The spare the agent took for this home: wait for its "ok", move its
 * FUSE mount onto the home's FUSE dir.  On failure it is stopped; *retry:
 * the failure is the spare's own (it ended, its mount could not move), not
 * the server's answer, so a worker of the job's own may do better. */
static int adopt_spare(struct home_setup *hs, bool *retry)
{
    struct home_ahead *a = hs->ahead;
    struct home_state *s = &hs->s;
    bool answered;
    int rc = worker_spare_ready(a->spare_ctl, hs->cfg->connect_timeout_ms + 5000, &answered,
                                hs->why, hs->whylen);

    *retry = rc < 0 && !answered;
    if (rc == 0 && mount(a->spare_dir, s->fuse_dir, NULL, MS_MOVE, NULL) < 0) {
        *retry = true;
        rc = -errno;
        snprintf(hs->why, hs->whylen, "cannot move the spare's FUSE mount %s to %s: %s",
                 a->spare_dir, s->fuse_dir, strerror(-rc));
    }
    if (rc < 0) {
        home_ahead_drop(a);
        return rc;
    }
    hs->verdict_fd = a->spare_ctl; /* its verdict comes there */
    rmdir(a->spare_dir);
    a->adopted = true;
    s->worker = a->spare;
    return 0;
}

/* Start the home's worker (worker.h) and record the home: from here on a
 * failure must be able to undo it. */
static int start_worker(struct home_setup *hs)
{
    struct home_state *s = &hs->s;
    struct worker_params p = {.cfg = hs->cfg,
                              .srv = hs->srv,
                              .export = s->export,
                              .fuse_dir = hs->kernel ? NULL : s->fuse_dir,
                              .stats = hs->stats,
                              .layout = hs->layout[0] ? hs->layout : NULL,
                              .warm = hs->warm};
    bool retry = true;
    int rc = -ENOENT;

    if (hs->ahead && hs->ahead->spare > 0 && !hs->kernel) {
        rc = adopt_spare(hs, &retry);
        if (rc < 0 && retry)
            log_warn("%s: the spare worker failed (%s): starting a worker", s->user, hs->why);
    }
    if (rc < 0 && retry)
        rc = worker_start(&p, &s->worker, s->device, sizeof s->device, &hs->verdict_fd, hs->why,
                          hs->whylen);
    if (rc < 0)
        return rc;
    rc = state_write(hs->cfg, s);
    if (rc < 0)
        snprintf(hs->why, hs->whylen, "cannot record the home of %s: %s", s->user, strerror(-rc));
    return rc;
}

/* nbd.ko: the worker attaches /dev/nbdN itself. */
static int attach_kernel(struct home_setup *hs)
{
    struct home_state *s = &hs->s;
    char ro[8] = "0", path[128];
    int rc = start_worker(hs);

    if (rc < 0)
        return rc;
    snprintf(path, sizeof path, "/sys/block/%.58s/ro", s->device + 5);
    textfile_read_line(path, ro, sizeof ro, 0);
    s->read_only = ro[0] == '1';
    s->direct_io = true; /* no page cache between the device and the network */
    return 0;
}

/* FUSE: the worker serves FUSE_DIR/disk, a loop device stands on it. */
static int attach_fuse(struct home_setup *hs)
{
    struct home_state *s = &hs->s;
    char disk[PATH_MAX + 8];
    struct stat st;
    int rc = start_worker(hs);

    if (rc < 0)
        return rc;
    snprintf(disk, sizeof disk, "%s/disk", s->fuse_dir);
    if (stat(disk, &st) == 0) {
        s->size = (uint64_t)st.st_size;
        s->read_only = !(st.st_mode & S_IWUSR); /* the server exports it read-only */
    }
    hs->loop_fd = loopdev_attach(disk, s->read_only, 0, s->device, sizeof s->device, &s->direct_io);
    if (hs->loop_fd < 0) {
        rc = hs->loop_fd;
        s->device[0] = '\0';
        snprintf(hs->why, hs->whylen, "cannot bind a loop device to %s: %s", disk, strerror(-rc));
        return rc;
    }
    return 0;
}

/* e2fsck -p (-n on a read-only device), unless the superblock says clean:
 * as the FUSE worker read it for the mount (its verdict, worker.h), else
 * as read here. */
static int check_fs(struct home_setup *hs)
{
    const struct home_state *s = &hs->s;
    const char *fsck[] = {"e2fsck", s->read_only ? "-n" : "-p", s->device, NULL};
    bool clean = worker_verdict(hs->verdict_fd, hs->cfg->connect_timeout_ms + 5000);
    int rc;

    hs->verdict_fd = -1;
    rc = clean || fs_clean(s->device) ? 0 : spawn_wait(fsck, 1);

    if (rc == -ENOENT) {
        log_debug("e2fsck not found: %s not checked", s->device);
    } else if (rc >= 0 && (rc & ~3) == 4) {
        snprintf(hs->why, hs->whylen,
                 "the home of %s has errors e2fsck %s cannot repair (exit %d): run "
                 "'e2fsck -f' on export '%s' of %s by hand",
                 s->user, s->read_only ? "-n" : "-p", rc, s->export, s->server);
        return -EUCLEAN;
    } else if (rc < 0 || rc >= 4) {
        snprintf(hs->why, hs->whylen, "e2fsck could not check the home of %s on %s (exit %d)",
                 s->user, s->device, rc);
        return -EIO;
    } else if (rc > 0) {
        log_notice("e2fsck -p repaired the home of %s (exit %d)", s->user, rc);
    }
    return 0;
}

/* Mount the device on the stage dir; the mount then holds the device. */
static int mount_stage(struct home_setup *hs)
{
    const struct home_state *s = &hs->s;
    int rc = do_mount(hs->cfg, s->device, s->stage, s->read_only);

    if (rc == -EUCLEAN) {
        snprintf(hs->why, hs->whylen,
                 "cannot mount the home of %s: the filesystem needs repair (the kernel "
                 "refused it): run 'e2fsck -f' on export '%s' of %s by hand",
                 s->user, s->export, s->server);
        return rc;
    } else if (rc < 0) {
        snprintf(hs->why, hs->whylen, "cannot mount %s (the home of %s): %s", s->device, s->user,
                 strerror(-rc));
        return rc;
    }
    if (hs->loop_fd >= 0)
        close(hs->loop_fd);
    hs->loop_fd = -1;
    return 0;
}

/* The filesystem's root must belong to the user (or be given to them:
 * fix_owner). */
static int check_owner(struct home_setup *hs)
{
    const struct home_state *s = &hs->s;
    struct stat st;
    int rc;

    if (stat(s->stage, &st) < 0) {
        rc = -errno;
        snprintf(hs->why, hs->whylen, "cannot check the owner of the home of %s on %s: %s", s->user,
                 s->stage, strerror(-rc));
        return rc;
    }
    if (st.st_uid == hs->uid)
        return 0;
    if (!hs->cfg->fix_owner) {
        snprintf(hs->why, hs->whylen,
                 "the home of %s belongs to uid %u, not %u: chown it on the server, or set "
                 "fix_owner = yes",
                 s->user, (unsigned)st.st_uid, (unsigned)hs->uid);
        return -EPERM;
    }
    if (chown(s->stage, hs->uid, hs->gid) < 0) {
        rc = -errno;
        snprintf(hs->why, hs->whylen, "cannot give the home of %s to uid %u: %s", s->user,
                 (unsigned)hs->uid, strerror(-rc));
        return rc;
    }
    log_notice("gave the root of %s's home to uid %u (fix_owner)", s->user, (unsigned)hs->uid);
    return 0;
}

int home_prepare(const struct hp_config *cfg, const char *user, const struct hp_server *srv,
                 struct home_ahead *ahead, progress_fn progress, void *ctx, char *why,
                 size_t whylen)
{
    struct home_setup hs = {.cfg = cfg,
                            .srv = srv,
                            .warm = ahead ? ahead->warm : NULL,
                            .ahead = ahead,
                            .loop_fd = -1,
                            .verdict_fd = -1,
                            .why = why,
                            .whylen = whylen};
    int64_t t[4] = {clock_us()};
    int rc = home_setup_init(&hs, user);

    if (rc < 0) {
        home_ahead_drop(ahead);
        return rc;
    }
    say(progress, ctx, "Requesting home of %s from %s...", user, hs.srv->label);
    rc = hs.kernel ? attach_kernel(&hs) : attach_fuse(&hs);
    home_ahead_drop(ahead); /* a spare not adopted (the kernel attach) */
    t[1] = clock_us();
    if (rc == 0) {
        if (hs.s.read_only)
            log_notice("the server exports %s's home read-only: mounting it read-only", user);
        state_write(cfg, &hs.s);
        say(progress, ctx, "Checking the home of %s...", user);
        rc = check_fs(&hs);
    }
    t[2] = clock_us();
    if (rc == 0)
        rc = mount_stage(&hs);
    t[3] = clock_us();
    if (rc == 0)
        rc = check_owner(&hs);
    if (rc == 0 && (rc = state_write(cfg, &hs.s)) < 0)
        snprintf(why, whylen, "cannot record the home of %s: %s", user, strerror(-rc));
    if (rc < 0) {
        home_setup_undo(&hs);
        return rc;
    }
    log_info("home of %s prepared on %s (%s) in %.1f ms: attach %.1f, check %.1f, mount %.1f", user,
             hs.s.stage, hs.s.device, (double)(clock_us() - t[0]) / 1000,
             (double)(t[1] - t[0]) / 1000, (double)(t[2] - t[1]) / 1000,
             (double)(t[3] - t[2]) / 1000);
    return 0;
}

/* The home dir of a prepared home s can take it: a directory (made when
 * missing), not a symlink, nothing mounted on it in table.  0 or -errno
 * with why. */
static int enter_check(const struct home_state *s, const char *table, char *why, size_t whylen)
{
    struct stat st;
    int rc = tree_mkdirs(s->mountpoint, 0755);

    if (rc == 0 && (lstat(s->mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)))
        rc = -ENOTDIR; /* a symlink there would be followed by mount(2) */
    if (rc < 0) {
        snprintf(why, whylen, "home dir %s of %s: %s", s->mountpoint, s->user, strerror(-rc));
        return rc;
    }
    if (mounted_in(table, s->mountpoint, NULL)) {
        snprintf(why, whylen,
                 "something else is mounted on %s already: not mounting the home of %s over it",
                 s->mountpoint, s->user);
        return -EBUSY;
    }
    return 0;
}

/* Put the stage mount of s on its home dir, with no I/O: the filesystem
 * stays mounted throughout.  Moved in one mount(2) when the stage dir's
 * mount is private (home_stage_private); else (MS_MOVE refuses a mount
 * whose parent is shared, as /run is under systemd) bound there and the
 * stage unmounted, which waits for an RCU grace period. */
static int move_stage(const struct home_state *s)
{
    if (mount(s->stage, s->mountpoint, NULL, MS_MOVE, NULL) == 0)
        return 0;
    if (errno != EINVAL)
        return -errno;
    if (mount(s->stage, s->mountpoint, NULL, MS_BIND, NULL) < 0)
        return -errno;
    if (umount2(s->stage, UMOUNT_NOFOLLOW) < 0)
        umount2(s->stage, MNT_DETACH | UMOUNT_NOFOLLOW);
    return 0;
}

/* How many mounts are below dir (1 or more), or -errno. */
static long stage_busy(const char *dir)
{
    struct hp_mount_table t;
    const struct hp_mount **below = NULL;
    long n;
    int rc = mounts_read("/proc/self/mountinfo", &t);

    if (rc < 0)
        return rc;
    n = mounts_below(&t, dir, &below);
    free(below);
    mounts_free(&t);
    return n;
}

int home_stage_private(const struct hp_config *cfg)
{
    char dir[PATH_MAX];
    int rc;

    if (snprintf(dir, sizeof dir, "%s/stage", cfg->run_dir) >= (int)sizeof dir)
        return -ENAMETOOLONG;
    if ((rc = tree_mkdirs(dir, 0700)) < 0)
        return rc;
    /* A mount point already (an earlier agent's): private again. */
    if (mount(NULL, dir, NULL, MS_PRIVATE, NULL) == 0)
        return 0;
    if (errno != EINVAL)
        return -errno;
    /* Homes prepared on it by an agent from before this: a bind over them
     * would hide them from home_enter and home_umount. */
    long below = stage_busy(dir);
    if (below != 0)
        return below < 0 ? (int)below : -EBUSY;
    return mounts_bind_private(dir);
}

int home_enter(const struct hp_config *cfg, const char *user, const struct home_state *known,
               int sessions, char *mountpoint, size_t mplen, char *why, size_t whylen)
{
    struct home_state s;
    char small[16384], *table = NULL;
    bool staged;
    int rc;

    if (!user_name_valid(user)) {
        snprintf(why, whylen, "invalid user name '%s': it %s", user, user_name_problem(user));
        return -EINVAL;
    }
    /* One read of the mount table for both of its checks. */
    if (known && strcmp(known->user, user) == 0)
        s = *known;
    else if (state_read(cfg, user, &s) < 0)
        s.phase = HOME_NONE;
    if (s.phase == HOME_PREPARED)
        table = mounts_table("/proc/self/mountinfo", small, sizeof small, &rc);
    staged = table && mounted_in(table, s.stage, s.device) && worker_alive(s.worker);
    rc = staged ? enter_check(&s, table, why, whylen) : -ENOENT;
    if (table && table != small)
        free(table);
    if (!staged)
        snprintf(why, whylen, "no prepared home of %s", user);
    if (rc < 0)
        return rc;
    if ((rc = move_stage(&s)) < 0) {
        snprintf(why, whylen, "cannot mount the home of %s on %s: %s", user, s.mountpoint,
                 strerror(-rc));
        return rc;
    }
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
               progress_fn progress, void *ctx, char *why, size_t whylen)
{
    char more[HP_WHY_MAX], mountpoint[PATH_MAX];
    int rc = home_prepare(cfg, user, srv, NULL, progress, ctx, why, whylen);

    if (rc < 0)
        return rc;
    rc = home_enter(cfg, user, NULL, 0, mountpoint, sizeof mountpoint, why, whylen);
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
    int64_t t[5] = {clock_us()};
    /* This filesystem only: a global sync() would wait on every other one,
     * a dead FUSE or NFS mount included. */
    int tfd = open(target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (tfd >= 0) {
        syncfs(tfd);
        close(tfd);
    }
    t[1] = clock_us();
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
    t[2] = clock_us();
    rc = release_device(&s);
    if (rc < 0) {
        snprintf(why, whylen, "cannot release %s: %s", s.device, strerror(-rc));
        return rc;
    }
    t[3] = clock_us();
    stop_worker(&s);
    if (s.stage[0])
        rmdir(s.stage);
    state_remove(cfg, user);
    t[4] = clock_us();
    log_info("home of %s released in %.1f ms: sync %.1f, unmount %.1f, device %.1f, worker %.1f",
             user, (double)(t[4] - t[0]) / 1000, (double)(t[1] - t[0]) / 1000,
             (double)(t[2] - t[1]) / 1000, (double)(t[3] - t[2]) / 1000,
             (double)(t[4] - t[3]) / 1000);
    return 0;
}

int home_record(const struct hp_config *cfg, const char *user, struct home_state *s)
{
    return state_read(cfg, user, s) < 0 ? -ENOENT : 0;
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

/* A worker's counters (worker.h), as status shows them. */
struct stats {
    char state[32], err[256];
    unsigned long long rd, wr, rec;
};

static void stats_field(void *ctx, const char *key, const char *v)
{
    struct stats *st = ctx;

    if (!strcmp(key, "state"))
        copy_field(st->state, sizeof st->state, v);
    else if (!strcmp(key, "bytes_read"))
        st->rd = strtoull(v, NULL, 10);
    else if (!strcmp(key, "bytes_written"))
        st->wr = strtoull(v, NULL, 10);
    else if (!strcmp(key, "reconnects"))
        st->rec = strtoull(v, NULL, 10);
    else if (!strcmp(key, "last_error"))
        copy_field(st->err, sizeof st->err, v);
}

static void read_stats(const struct hp_config *cfg, const char *user, struct stats *st)
{
    char path[PATH_MAX];

    *st = (struct stats){.state = "unknown"};
    state_path(cfg, user, ":stats", path, sizeof path);
    textfile_kv_read(path, STATS_LINE_MAX, stats_field, st);
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
        char path[PATH_MAX + 300];
        struct stats st;
        struct home_state s;
        if (de->d_name[0] == '.' || strchr(de->d_name, ':'))
            continue; /* USER:stats, USER:tmp (':' is never in a user name) */
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (state_read_file(path, de->d_name, &s) < 0)
            continue;
        bool alive = worker_alive(s.worker);
        bool mounted = is_mountpoint_of(current_target(&s), s.device);
        read_stats(cfg, s.user, &st);
        if (!strcmp(s.attach, "kernel")) {
            /* the kernel counts: /sys/block/nbdN/stat, sectors read (3rd) and written (7th) */
            char sp[sizeof s.device + 32], line[256];
            unsigned long long f[7] = {0};
            snprintf(sp, sizeof sp, "/sys/block/%.58s/stat", s.device + 5);
            if (textfile_read_line(sp, line, sizeof line, 0) == 0 &&
                sscanf(line, "%llu %llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3],
                       &f[4], &f[5], &f[6]) == 7) {
                st.rd = f[2] * 512;
                st.wr = f[6] * 512;
            }
        }
        if (!alive)
            snprintf(st.state, sizeof st.state, "worker-gone");
        else if (!mounted)
            snprintf(st.state, sizeof st.state, "not-mounted");
        bool bad = strcmp(st.state, "connected") != 0;
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
            json_str(out, st.state);
            fprintf(out, ", \"phase\": \"%s\", \"sessions\": %d", phase, s.sessions);
            fprintf(out,
                    ", \"size\": %llu, \"direct_io\": %s, \"read_only\": %s, \"reconnects\": %llu, "
                    "\"bytes_read\": %llu, \"bytes_written\": %llu, \"worker\": %d, "
                    "\"last_error\": ",
                    (unsigned long long)s.size, s.direct_io ? "true" : "false",
                    s.read_only ? "true" : "false", st.rec, st.rd, st.wr, (int)s.worker);
            json_str(out, st.err);
            fputc('}', out);
        } else {
            fprintf(out,
                    "%s %s on %s (%s): %s export '%s' via %s (%s%s), %s, sessions %d, "
                    "reconnects %llu, read %llu bytes, written %llu bytes%s%s\n",
                    s.user, s.device, current_target(&s), phase, s.server, s.export, s.attach,
                    s.direct_io ? "direct I/O" : "buffered", s.read_only ? ", read-only" : "",
                    st.state, s.sessions, st.rec, st.rd, st.wr, st.err[0] ? ", last error: " : "",
                    st.err);
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
    spare_status(cfg->run_dir, out, json);
    if (json)
        fprintf(out, "}\n");
    return troubled;
}
