#include "mounts.h"

#include "textfile.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libmount.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define NBD_MAJOR 43
#define LOOP_MAJOR 7

static char *dup_or_none(const char *s)
{
    return strdup(s ? s : "none");
}

int mounts_read(const char *mountinfo, struct hp_mount_table *t)
{
    struct libmnt_table *tb;
    struct libmnt_iter *it;
    struct libmnt_fs *fs;
    int rc;

    memset(t, 0, sizeof *t);
    tb = mnt_new_table();
    it = mnt_new_iter(MNT_ITER_FORWARD);
    if (!tb || !it) {
        rc = -ENOMEM;
        goto out;
    }
    rc = mnt_table_parse_file(tb, mountinfo);
    if (rc < 0)
        goto out;
    t->v = calloc((size_t)mnt_table_get_nents(tb) + 1, sizeof *t->v);
    if (!t->v) {
        rc = -ENOMEM;
        goto out;
    }
    while (mnt_table_next_fs(tb, it, &fs) == 0) {
        struct hp_mount *m = &t->v[t->n];
        dev_t dev = mnt_fs_get_devno(fs);

        m->id = mnt_fs_get_id(fs);
        m->parent_id = mnt_fs_get_parent_id(fs);
        m->dev_major = major(dev);
        m->dev_minor = minor(dev);
        m->source = dup_or_none(mnt_fs_get_source(fs));
        m->target = dup_or_none(mnt_fs_get_target(fs));
        m->fstype = dup_or_none(mnt_fs_get_fstype(fs));
        m->order = t->n;
        t->n++;
        if (!m->source || !m->target || !m->fstype) {
            rc = -ENOMEM;
            goto out;
        }
    }
    rc = 0;
out:
    mnt_free_iter(it);
    mnt_unref_table(tb);
    if (rc < 0)
        mounts_free(t);
    return rc;
}

/* A /proc file's size is not known ahead: read until EOF, growing. */
char *mounts_table(const char *path, char *buf, size_t cap, int *err)
{
    char *heap = NULL;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *err = -errno;
    if (fd < 0)
        return NULL;
    for (;;) {
        ssize_t n;
        if (cap - len < 4096) {
            char *bigger = realloc(heap, cap * 2);
            *err = -ENOMEM;
            if (!bigger)
                goto fail;
            if (!heap)
                memcpy(bigger, buf, len);
            heap = buf = bigger;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        *err = -errno;
        if (n < 0)
            goto fail;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *err = 0;
    return buf;
fail:
    close(fd);
    free(heap);
    return NULL;
}

/* The space-ended field at p, with the kernel's octal escapes (\040 for a
 * space) undone, into out.  The field's end, or NULL when it does not fit. */
static const char *field(const char *p, char *out, size_t outlen)
{
    size_t n = 0;

    while (*p && *p != ' ' && *p != '\n') {
        char c = *p++;
        if (c == '\\' && p[0] >= '0' && p[0] <= '3' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' &&
            p[2] <= '7') {
            c = (char)((p[0] - '0') << 6 | (p[1] - '0') << 3 | (p[2] - '0'));
            p += 3;
        }
        if (n + 1 >= outlen)
            return NULL;
        out[n++] = c;
    }
    out[n] = '\0';
    return p;
}

/* The line's field number i (0-based), or NULL past its end. */
static const char *skip_fields(const char *p, int i)
{
    for (; i > 0; i--) {
        while (*p && *p != ' ' && *p != '\n')
            p++;
        if (*p != ' ')
            return NULL;
        p++;
    }
    return p;
}

/* Whether the mountinfo line [line, end) mounts on target: 1 with its
 * source in src, 0 when not, -ENAMETOOLONG.
 * The line: id parent major:minor root MOUNT-POINT options [optional…] -
 * type SOURCE superoptions. */
static int line_source(const char *line, const char *end, const char *target, char *src,
                       size_t srclen)
{
    char mp[PATH_MAX];
    const char *p = skip_fields(line, 4), *sep;

    if (!p || !field(p, mp, sizeof mp) || strcmp(mp, target) != 0)
        return 0;
    sep = strstr(p, " - ");
    p = sep && sep < end ? skip_fields(sep + 3, 1) : NULL;
    if (!p || p >= end)
        return 0;
    return field(p, src, srclen) ? 1 : -ENAMETOOLONG;
}

/* The last (topmost) mount on target in table: 1, 0 or -ENAMETOOLONG. */
static int scan_for(const char *table, const char *target, char *src, size_t srclen)
{
    int found = 0;

    for (const char *line = table; *line;) {
        const char *end = strchrnul(line, '\n');
        int rc = line_source(line, end, target, src, srclen);
        if (rc < 0)
            return rc;
        found |= rc;
        line = *end ? end + 1 : end;
    }
    return found;
}

int mounts_table_source(const char *table, const char *target, char *src, size_t srclen)
{
    char real[PATH_MAX];
    int rc = scan_for(table, target, src, srclen);

    if (rc == 0 && realpath(target, real) && strcmp(real, target) != 0)
        rc = scan_for(table, real, src, srclen);
    return rc;
}

int mounts_source_of(const char *mountinfo, const char *target, char *src, size_t srclen)
{
    char small[16384]; /* a machine's table fits, mostly */
    int rc;
    char *table = mounts_table(mountinfo, small, sizeof small, &rc);

    if (!table)
        return rc;
    rc = mounts_table_source(table, target, src, srclen);
    if (table != small)
        free(table);
    return rc;
}

void mounts_free(struct hp_mount_table *t)
{
    if (!t->v)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].source);
        free(t->v[i].target);
        free(t->v[i].fstype);
    }
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

static bool path_at_or_below(const char *path, const char *dir)
{
    size_t len = strlen(dir);

    while (len > 1 && dir[len - 1] == '/')
        len--;
    if (strncmp(path, dir, len) != 0)
        return false;
    return path[len] == '\0' || path[len] == '/' || (len == 1 && dir[0] == '/');
}

static size_t depth(const char *path)
{
    size_t d = 0;
    for (; *path; path++)
        if (*path == '/')
            d++;
    return d;
}

static int cmp_unmount_order(const void *a, const void *b)
{
    const struct hp_mount *x = *(const struct hp_mount *const *)a;
    const struct hp_mount *y = *(const struct hp_mount *const *)b;
    size_t dx = depth(x->target), dy = depth(y->target);

    if (dx != dy)
        return dx > dy ? -1 : 1;
    return x->order > y->order ? -1 : (x->order < y->order ? 1 : 0);
}

long mounts_below(const struct hp_mount_table *t, const char *dir, const struct hp_mount ***out)
{
    /* An array of pointers, sorted without moving the table's entries. */
    const struct hp_mount **v = calloc(t->n + 1, sizeof *v); // NOLINT(bugprone-sizeof-expression)
    size_t n = 0;

    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < t->n; i++)
        if (path_at_or_below(t->v[i].target, dir))
            v[n++] = &t->v[i];
    qsort(v, n, sizeof *v, cmp_unmount_order); // NOLINT(bugprone-sizeof-expression)
    *out = v;
    return (long)n;
}

/* "nbd0p1" -> "nbd0"; copies the whole-disk name of a partition. */
static void whole_disk(const char *name, char *out, size_t outlen)
{
    size_t i = 0;

    while (name[i] && !isdigit((unsigned char)name[i]))
        i++;
    while (isdigit((unsigned char)name[i]))
        i++;
    snprintf(out, outlen, "%.*s", (int)i, name);
}

enum mount_backing mounts_backing(const struct hp_mount *m, const char *sysfs, char *name,
                                  size_t namelen)
{
    char link[PATH_MAX], target[PATH_MAX];
    const char *base = NULL;
    ssize_t n;

    if (m->dev_major != NBD_MAJOR && m->dev_major != LOOP_MAJOR)
        return BK_NONE;
    /* /sys/dev/block/MAJ:MIN links to the device, partitions included. */
    snprintf(link, sizeof link, "%s/dev/block/%u:%u", sysfs, m->dev_major, m->dev_minor);
    n = readlink(link, target, sizeof target - 1);
    if (n > 0) {
        target[n] = '\0';
        base = strrchr(target, '/');
        base = base ? base + 1 : target;
    } else if (strncmp(m->source, "/dev/", 5) == 0) {
        base = m->source + 5;
    }
    if (!base)
        return BK_NONE;
    whole_disk(base, name, namelen);
    if (m->dev_major == NBD_MAJOR && strncmp(name, "nbd", 3) == 0)
        return BK_NBD;
    if (m->dev_major == LOOP_MAJOR && strncmp(name, "loop", 4) == 0)
        return BK_LOOP;
    return BK_NONE;
}

/* Read a small sysfs attribute, newline stripped.  0 or -errno. */
static int read_attr(const char *sysfs, const char *dev, const char *attr, char *buf, size_t len)
{
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/block/%s/%s", sysfs, dev, attr);
    return textfile_read_line(path, buf, len, 0);
}

/* An NBD device is connected when the kernel has a receiver task for it
 * (the "pid" attribute exists) and it has a size. */
static bool nbd_connected(const char *sysfs, const char *dev)
{
    char buf[64];

    if (read_attr(sysfs, dev, "pid", buf, sizeof buf) < 0)
        return false;
    if (read_attr(sysfs, dev, "size", buf, sizeof buf) < 0)
        return false;
    return strcmp(buf, "0") != 0;
}

static enum mount_health loop_health(const char *sysfs, const char *dev, char *detail, size_t len)
{
    char buf[PATH_MAX + 16];
    int rc = read_attr(sysfs, dev, "loop/backing_file", buf, sizeof buf);
    size_t blen;

    if (rc == -ENOENT) {
        snprintf(detail, len, "%s has no backing file", dev);
        return MH_LOOP_UNBOUND;
    }
    if (rc < 0)
        return MH_LIVE;
    blen = strlen(buf);
    if (blen > 10 && strcmp(buf + blen - 10, " (deleted)") == 0) {
        snprintf(detail, len, "%s backing file %s", dev, buf);
        return MH_LOOP_DELETED;
    }
    return MH_LIVE;
}

/* FUSE and network filesystems can block a stat() forever (a hung NFS
 * server, a stuck FUSE daemon).  Probe those in a child with a deadline. */
static bool may_hang(const char *fstype)
{
    static const char *const prefixes[] = {"fuse", "nfs",  "cifs",      "smb",
                                           "9p",   "ceph", "glusterfs", "afs"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(fstype, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* statfs(), not stat(): FUSE answers stat() of its root from cached
 * attributes even when its daemon is gone, while statfs() always makes a
 * request, which fails with ENOTCONN on a dead connection.
 * Returns 0, -errno from statfs(), or -ETIMEDOUT. */
static int statfs_bounded(const char *path, bool bounded, unsigned timeout_ms)
{
    struct statfs st;
    int pfd[2], err = 0;
    pid_t pid;

    if (!bounded)
        return statfs(path, &st) == 0 ? 0 : -errno;
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    pid = fork();
    if (pid < 0) {
        err = -errno;
        close(pfd[0]);
        close(pfd[1]);
        return err;
    }
    if (pid == 0) {
        int e = statfs(path, &st) == 0 ? 0 : errno;
        (void)!write(pfd[1], &e, sizeof e);
        _exit(0);
    }
    close(pfd[1]);
    struct pollfd p = {.fd = pfd[0], .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, (int)timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r == 1 && read(pfd[0], &err, sizeof err) == (ssize_t)sizeof err) {
        close(pfd[0]);
        waitpid(pid, NULL, 0);
        return err ? -err : 0;
    }
    close(pfd[0]);
    /* The child may sit in uninterruptible sleep; don't wait for it. */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, WNOHANG);
    return -ETIMEDOUT;
}

enum mount_health mounts_health(const struct hp_mount *m, const char *sysfs,
                                unsigned stat_timeout_ms, char *detail, size_t len)
{
    char dev[64];
    int rc;

    snprintf(detail, len, "ok");
    switch (mounts_backing(m, sysfs, dev, sizeof dev)) {
    case BK_NBD:
        if (!nbd_connected(sysfs, dev)) {
            snprintf(detail, len, "%s has no connection to its server", dev);
            return MH_NBD_DEAD;
        }
        break;
    case BK_LOOP: {
        enum mount_health h = loop_health(sysfs, dev, detail, len);
        if (h != MH_LIVE)
            return h;
        break;
    }
    case BK_NONE: break;
    }
    rc = statfs_bounded(m->target, may_hang(m->fstype), stat_timeout_ms);
    switch (rc) {
    case -ENOTCONN:
        snprintf(detail, len, "transport endpoint is not connected (its daemon is gone)");
        return MH_NOTCONN;
    case -ESTALE: snprintf(detail, len, "stale file handle"); return MH_STALE_HANDLE;
    case -ETIMEDOUT:
        snprintf(detail, len, "did not answer statfs() within %u ms", stat_timeout_ms);
        return MH_UNRESPONSIVE;
    default: return MH_LIVE;
    }
}

const char *mount_health_name(enum mount_health h)
{
    switch (h) {
    case MH_LIVE: return "live";
    case MH_NOTCONN:
    case MH_STALE_HANDLE:
    case MH_NBD_DEAD:
    case MH_LOOP_UNBOUND: return "stale";
    case MH_LOOP_DELETED: return "orphan";
    case MH_UNRESPONSIVE: return "unresponsive";
    }
    return "unknown";
}

bool mount_health_detachable(enum mount_health h)
{
    return h == MH_NOTCONN || h == MH_STALE_HANDLE || h == MH_NBD_DEAD || h == MH_LOOP_UNBOUND;
}

int mounts_detach(const char *target)
{
    return umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) == 0 ? 0 : -errno;
}

int mounts_bind_private(const char *dir)
{
    int rc;

    if (mount(dir, dir, NULL, MS_BIND, NULL) < 0)
        return -errno;
    if (mount(NULL, dir, NULL, MS_PRIVATE, NULL) < 0) {
        rc = -errno;
        umount2(dir, MNT_DETACH);
        return rc;
    }
    return 0;
}

long mounts_scan_devices(const char *sysfs, struct hp_dev_problem *out, size_t max)
{
    char path[PATH_MAX];
    struct dirent *de;
    DIR *d;
    size_t n = 0;

    snprintf(path, sizeof path, "%s/block", sysfs);
    d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    while ((de = readdir(d)) && n < max) {
        const char *name = de->d_name;
        char buf[64];
        struct hp_dev_problem *p = &out[n];

        size_t nlen = strlen(name);
        if (nlen >= sizeof p->name)
            continue;
        if (strncmp(name, "nbd", 3) == 0 && isdigit((unsigned char)name[3])) {
            /* A device with a size but no receiver: its connection died. */
            if (read_attr(sysfs, name, "size", buf, sizeof buf) < 0 || strcmp(buf, "0") == 0)
                continue;
            if (read_attr(sysfs, name, "pid", buf, sizeof buf) == 0)
                continue;
            memcpy(p->name, name, nlen + 1);
            p->health = MH_NBD_DEAD;
            snprintf(p->detail, sizeof p->detail, "%s has a size but no connection", name);
            n++;
        } else if (strncmp(name, "loop", 4) == 0 && isdigit((unsigned char)name[4])) {
            if (loop_health(sysfs, name, p->detail, sizeof p->detail) != MH_LOOP_DELETED)
                continue;
            memcpy(p->name, name, nlen + 1);
            p->health = MH_LOOP_DELETED;
            n++;
        }
    }
    closedir(d);
    return (long)n;
}
