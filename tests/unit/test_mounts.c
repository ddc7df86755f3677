/* mountinfo analysis on fixture files, with a fake sysfs made here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mounts.h"
#include "tap.h"

static char sysfs[64];

static void put(const char *rel, const char *content)
{
    char path[256], cmd[512];
    snprintf(path, sizeof path, "%s/%s", sysfs, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    if (system(cmd) != 0)
        abort();
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fprintf(f, "%s\n", content);
    fclose(f);
}

static void link_dev(const char *majmin, const char *name)
{
    char path[256], target[256];
    snprintf(path, sizeof path, "%s/dev/block/%s", sysfs, majmin);
    snprintf(target, sizeof target, "../../devices/virtual/block/%s", name);
    if (symlink(target, path) < 0)
        abort();
}

static const struct hp_mount *find(const struct hp_mount_table *t, const char *target)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].target, target))
            return &t->v[i];
    return NULL;
}

/* mounts_source_of: the topmost mount's source, escapes, a table bigger
 * than the first read, a target reached through a symlink.  dir is a
 * scratch directory. */
static void source_of(const char *fixtures, const char *dir)
{
    char info[256], real[256], link[256], src[64];
    FILE *f;

    snprintf(info, sizeof info, "%s/mountinfo-homes.txt", fixtures);
    ok(mounts_source_of(info, "/home/bob", src, sizeof src) == 1 && !strcmp(src, "/dev/nbd0"),
       "source of a mount: /dev/nbd0");
    ok(mounts_source_of(info, "/home/profiletemp/with space", src, sizeof src) == 1 &&
           !strcmp(src, "tmpfs"),
       "a mount point with an escaped space");
    ok(mounts_source_of(info, "/home/nobody", src, sizeof src) == 0, "nothing mounted: 0");
    ok(mounts_source_of(info, "/home/profiletemp/alice", src, 4) == -ENAMETOOLONG,
       "a source longer than the buffer: -ENAMETOOLONG");
    ok(mounts_source_of("/nonexistent/mountinfo", "/", src, sizeof src) == -ENOENT,
       "missing table: -ENOENT");

    snprintf(real, sizeof real, "%s/real", dir);
    snprintf(link, sizeof link, "%s/link", dir);
    snprintf(info, sizeof info, "%s/mountinfo", dir);
    if (mkdir(real, 0755) < 0 || symlink("real", link) < 0 || !(f = fopen(info, "w")))
        abort();
    for (int i = 0; i < 600; i++) /* 60 KiB: more than the first read */
        fprintf(f, "%d 22 0:%d / /srv/filler/%d rw,relatime shared:%d - tmpfs tmpfs rw\n", 100 + i,
                100 + i, i, i);
    fprintf(f, "900 22 7:0 / %s rw shared:7 master:3 - ext4 /dev/loop0 rw\n", real);
    fprintf(f, "901 900 7:1 / %s rw - ext4 /dev/odd\\040name rw\n", real);
    fprintf(f, "902 22 0:90 / /srv/last rw - tmpfs last rw");
    fclose(f);
    ok(mounts_source_of(info, real, src, sizeof src) == 1 && !strcmp(src, "/dev/odd name"),
       "the topmost of two mounts, its escaped source decoded");
    ok(mounts_source_of(info, link, src, sizeof src) == 1 && !strcmp(src, "/dev/odd name"),
       "a target reached through a symlink");
    ok(mounts_source_of(info, "/srv/filler/599", src, sizeof src) == 1 && !strcmp(src, "tmpfs"),
       "a line past the first read");
    ok(mounts_source_of(info, "/srv/last", src, sizeof src) == 1 && !strcmp(src, "last"),
       "a last line without a newline");
    ok(mounts_source_of(info, "/srv/filler/6", src, sizeof src) == 1 &&
           mounts_source_of(info, "/srv/filler", src, sizeof src) == 0,
       "a mount point is matched whole, not as a prefix");
}

int main(int argc, char **argv)
{
    const char *fixtures = argc > 1 ? argv[1] : "tests/fixtures";
    char path[256], name[32], detail[256];
    struct hp_mount_table t;
    const struct hp_mount **v;
    const struct hp_mount *m;
    struct hp_dev_problem probs[8];
    long n;

    snprintf(sysfs, sizeof sysfs, "/tmp/homeport-sysfs-XXXXXX");
    if (!mkdtemp(sysfs))
        return 1;
    put("block/nbd0/pid", "1234");
    put("block/nbd0/size", "2097152");
    put("block/nbd1/size", "2097152"); /* no pid: the connection died */
    put("block/nbd2/size", "0");       /* unused device */
    put("block/loop3/loop/backing_file", "/srv/homes/carol.img (deleted)");
    put("block/loop4/size", "0"); /* no loop/ directory: unbound */
    put("block/loop5/loop/backing_file", "/srv/homes/ok.img");
    snprintf(path, sizeof path, "mkdir -p '%s/dev/block'", sysfs);
    if (system(path) != 0)
        return 1;
    link_dev("43:0", "nbd0");
    link_dev("43:32", "nbd1");
    link_dev("7:3", "loop3");

    ok(mounts_read("/nonexistent/mountinfo", &t) == -ENOENT, "missing file: -ENOENT");

    snprintf(path, sizeof path, "%s/mountinfo-homes.txt", fixtures);
    ok(mounts_read(path, &t) == 0, "fixture parsed");
    ok(t.n == 12, "12 entries (%zu)", t.n);
    ok(find(&t, "/home/profiletemp/with space") != NULL, "octal escape \\040 decoded");
    m = find(&t, "/home/profiletemp/alice");
    ok(m && !strcmp(m->fstype, "fuse.sshfs") && !strcmp(m->source, "alice@server:"),
       "fstype and source of the sshfs mount");
    ok(m && m->id == 40 && m->parent_id == 30, "mount ids");

    n = mounts_below(&t, "/home/profiletemp", &v);
    ok(n == 4, "4 mounts at or below /home/profiletemp (%ld); profiletemp2 is not", n);
    if (n == 4) {
        is_str(v[0]->target, "/home/profiletemp/alice/inner", "deepest first");
        is_str(v[1]->target, "/home/profiletemp/with space", "then later siblings");
        is_str(v[2]->target, "/home/profiletemp/alice", "then earlier siblings");
        is_str(v[3]->target, "/home/profiletemp", "the dir itself last");
    }
    free(v);
    n = mounts_below(&t, "/home/profiletemp/", &v);
    ok(n == 4, "trailing slash in the dir is ignored");
    free(v);
    n = mounts_below(&t, "/srv", &v);
    ok(n == 0, "nothing below /srv");
    free(v);
    n = mounts_below(&t, "/", &v);
    ok(n == 12, "everything below /");
    free(v);

    m = find(&t, "/home/bob");
    ok(m && mounts_backing(m, sysfs, name, sizeof name) == BK_NBD && !strcmp(name, "nbd0"),
       "nbd0 found through /sys/dev/block");
    ok(m && mounts_health(m, sysfs, 500, detail, sizeof detail) == MH_LIVE,
       "connected nbd0 is live");
    m = find(&t, "/home/erin");
    ok(m && mounts_backing(m, sysfs, name, sizeof name) == BK_NBD && !strcmp(name, "nbd1"),
       "nbd1 (minor 32) through /sys/dev/block");
    ok(m && mounts_health(m, sysfs, 500, detail, sizeof detail) == MH_NBD_DEAD,
       "nbd1 without a connection is stale");
    is_str(detail, "nbd1 has no connection to its server", "its detail");
    m = find(&t, "/home/carol");
    ok(m && mounts_health(m, sysfs, 500, detail, sizeof detail) == MH_LOOP_DELETED,
       "loop3 with a deleted backing file is an orphan");
    is_str(detail, "loop3 backing file /srv/homes/carol.img (deleted)", "its detail");
    m = find(&t, "/home/dave");
    ok(m && mounts_backing(m, sysfs, name, sizeof name) == BK_LOOP && !strcmp(name, "loop4"),
       "loop4 found from the source name when sysfs has no link");
    ok(m && mounts_health(m, sysfs, 500, detail, sizeof detail) == MH_LOOP_UNBOUND,
       "loop4 without backing is stale");
    m = find(&t, "/home/profiletemp2");
    ok(m && mounts_backing(m, sysfs, name, sizeof name) == BK_NONE, "tmpfs has no backing");
    m = find(&t, "/home/profiletemp/alice");
    ok(m && mounts_health(m, sysfs, 500, detail, sizeof detail) == MH_LIVE,
       "a FUSE mount whose target is not reachable here counts as live");

    ok(mount_health_detachable(MH_NOTCONN) && mount_health_detachable(MH_STALE_HANDLE) &&
           mount_health_detachable(MH_NBD_DEAD) && mount_health_detachable(MH_LOOP_UNBOUND),
       "stale kinds are detachable");
    ok(!mount_health_detachable(MH_LIVE) && !mount_health_detachable(MH_LOOP_DELETED) &&
           !mount_health_detachable(MH_UNRESPONSIVE),
       "live, orphan and unresponsive are not");
    is_str(mount_health_name(MH_LOOP_DELETED), "orphan", "orphan name");

    n = mounts_scan_devices(sysfs, probs, 8);
    ok(n == 2, "two device problems (%ld)", n);
    {
        int saw_nbd = 0, saw_loop = 0;
        for (long i = 0; i < n; i++) {
            saw_nbd += !strcmp(probs[i].name, "nbd1") && probs[i].health == MH_NBD_DEAD;
            saw_loop += !strcmp(probs[i].name, "loop3") && probs[i].health == MH_LOOP_DELETED;
        }
        ok(saw_nbd == 1 && saw_loop == 1, "nbd1 dead and loop3 deleted");
    }
    ok(mounts_scan_devices("/nonexistent", probs, 8) == 0, "no sysfs: nothing");

    mounts_free(&t);
    source_of(fixtures, sysfs);
    snprintf(path, sizeof path, "rm -rf '%s'", sysfs);
    if (system(path) != 0)
        return 1;
    return tap_done();
}
