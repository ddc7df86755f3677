/* mounts: read the mount table (libmount) and judge the health of mounts.
 *
 * A mount is *stale* when nothing can ever answer for it again: a FUSE
 * mount whose daemon died (ENOTCONN), a network mount with a stale handle
 * (ESTALE), a filesystem on an NBD device whose connection is gone or on a
 * loop device that lost its backing.  Stale mounts may be detached without
 * losing anything that was still reachable.  A loop device whose backing
 * file was deleted still holds live data: it is an *orphan*, reported and
 * never detached by us.  A network mount that does not answer statfs() in
 * time is *unresponsive*: also never touched.
 */
#ifndef HOMEPORT_MOUNTS_H
#define HOMEPORT_MOUNTS_H

#include <stdbool.h>
#include <stddef.h>

struct hp_mount {
    int id, parent_id;
    unsigned dev_major, dev_minor; /* st_dev of the mounted filesystem */
    char *source, *target, *fstype;
    size_t order; /* position in the table: later mounts stack on earlier ones */
};

struct hp_mount_table {
    struct hp_mount *v;
    size_t n;
};

enum mount_health {
    MH_LIVE,
    MH_NOTCONN,      /* FUSE daemon gone */
    MH_STALE_HANDLE, /* ESTALE */
    MH_NBD_DEAD,     /* on an NBD device without a connection */
    MH_LOOP_UNBOUND, /* on a loop device with no backing file at all */
    MH_LOOP_DELETED, /* orphan: the loop's backing file was deleted */
    MH_UNRESPONSIVE, /* statfs() on it did not return in time */
};

enum mount_backing { BK_NONE, BK_NBD, BK_LOOP };

/* Read a mountinfo file (normally /proc/self/mountinfo).  0 or -errno. */
int mounts_read(const char *mountinfo, struct hp_mount_table *t);
void mounts_free(struct hp_mount_table *t);

/* The source of the topmost mount on target ("/dev/loop0", as the table
 * names it) in src: 1, or 0 when nothing is mounted on target, or -errno.
 * target is compared as given, then as its realpath(3).  For the login's
 * path: one read of the table and a scan of each line's mount point, less
 * than half the time of libmount's full parse; it never stats the mounts,
 * so a hung network or FUSE filesystem cannot hold it up. */
int mounts_source_of(const char *mountinfo, const char *target, char *src, size_t srclen);

/* The same in two steps, for several targets on one read: the table
 * (mountinfo whole, NUL-ended) in buf (cap bytes) while it fits, else in a
 * malloc'd buffer to free (the result is not buf); NULL with -errno in
 * *err.  Then mounts_source_of's answer for one target. */
char *mounts_table(const char *mountinfo, char *buf, size_t cap, int *err);
int mounts_table_source(const char *table, const char *target, char *src, size_t srclen);

/* Mounts whose target is dir or below it, ordered so that each comes before
 * anything it is mounted on (deepest and most recent first).  *out is an
 * allocated array of pointers into t; returns the count or -ENOMEM. */
long mounts_below(const struct hp_mount_table *t, const char *dir, const struct hp_mount ***out);

/* Which kind of block device the mount sits on, and its kernel name
 * ("nbd0", "loop3") in name.  sysfs is normally "/sys". */
enum mount_backing mounts_backing(const struct hp_mount *m, const char *sysfs, char *name,
                                  size_t namelen);

/* Judge m.  detail receives a human explanation ("transport endpoint is not
 * connected", "backing file /x (deleted)").  stat_timeout_ms bounds the probe
 * of network and FUSE filesystems, which may hang. */
enum mount_health mounts_health(const struct hp_mount *m, const char *sysfs,
                                unsigned stat_timeout_ms, char *detail, size_t detaillen);

const char *mount_health_name(enum mount_health h);
bool mount_health_detachable(enum mount_health h);

/* Lazily detach the mount at target (MNT_DETACH, never following a
 * symlink).  0 or -errno. */
int mounts_detach(const char *target);

/* Make dir a private mount of its own: bound onto itself, then MS_PRIVATE
 * (undone when that fails).  For a dir that is not a mount point yet: the
 * caller tries MS_PRIVATE alone first.  0 or -errno. */
int mounts_bind_private(const char *dir);

/* Block devices not (necessarily) mounted: NBD devices with a size but no
 * connection, loop devices whose backing file was deleted. */
struct hp_dev_problem {
    char name[32];
    enum mount_health health; /* MH_NBD_DEAD or MH_LOOP_DELETED */
    char detail[4200];
};
/* Returns the count found (at most max) or -errno. */
long mounts_scan_devices(const char *sysfs, struct hp_dev_problem *out, size_t max);

#endif
