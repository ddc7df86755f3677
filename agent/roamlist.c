/* roamlist: see roamlist.h. */
#include "roamlist.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "textfile.h"
#include "tree.h"
#include "user.h"

/* RUN_DIR/roam/USER.SUFFIX */
static int path_of(const struct hp_config *cfg, const char *user, const char *suffix, char *out,
                   size_t len)
{
    if (!user_name_valid(user))
        return -EINVAL;
    return (size_t)snprintf(out, len, "%s/roam/%s.%s", cfg->run_dir, user, suffix) >= len
               ? -ENAMETOOLONG
               : 0;
}

/* The control socket's path: ssh binds PATH.RANDOM (17 more bytes) first. */
static int control_path(const struct hp_config *cfg, const char *user, char *out, size_t len)
{
    int rc = path_of(cfg, user, "ssh", out, len);

    if (rc == 0 && strlen(out) + 17 >= sizeof((struct sockaddr_un *)0)->sun_path)
        rc = -ENAMETOOLONG;
    return rc;
}

void roamlist_mount(const struct hp_config *cfg, const char *user, const char *remote_dir,
                    char *opts, size_t len)
{
    char cp[PATH_MAX], rec[PATH_MAX], dir[PATH_MAX];
    size_t used = strlen(opts);
    int rc;

    if (cfg->sync_mount != HP_SYNC_SSHFS || !*cfg->sync_server_homeport)
        return;
    snprintf(dir, sizeof dir, "%s/roam", cfg->run_dir);
    if ((rc = control_path(cfg, user, cp, sizeof cp)) < 0 ||
        (rc = path_of(cfg, user, "list", rec, sizeof rec)) < 0 ||
        (rc = tree_mkdirs(dir, 0700)) < 0 || (rc = textfile_write(rec, remote_dir, 0600)) < 0) {
        log_info("sync %s: passes will read the server home through sshfs (no shared ssh "
                 "connection under %s: %s)",
                 user, dir, strerror(-rc));
        return;
    }
    unlink(cp); /* a dead master's */
    if ((size_t)snprintf(opts + used, len - used, ",ControlMaster=auto,ControlPath=%s", cp) >=
        len - used) {
        opts[used] = '\0';
        unlink(rec);
    }
}

int roamlist_get(const struct hp_config *cfg, const char *user, struct roamlist *l)
{
    char rec[PATH_MAX], at[300];
    struct stat st;
    size_t n = 0;

    if (cfg->sync_mount != HP_SYNC_SSHFS || !*cfg->sync_server_homeport ||
        path_of(cfg, user, "list", rec, sizeof rec) < 0 ||
        config_expand(cfg->sshfs_user, user, at, sizeof at) < 0)
        return -ENOENT;
    l->dir[0] = '\0';
    if (textfile_read_line(rec, l->dir, sizeof l->dir, 1) < 0 && access(rec, F_OK) < 0) {
        log_debug("sync %s: no %s: the mount has no shared ssh connection", user, rec);
        return -ENOENT; /* (an empty record is the login's home) */
    }
    if (!strcmp(l->dir, "none")) {
        log_debug("sync %s: the server cannot list (%s): the mount is walked", user, rec);
        return -ENOENT;
    }
    /* ssh may make its control socket after sshfs has mounted (seen up to
     * seconds later; not understood): the login's pass, right after a
     * mount (a record younger than 30 s), waits for it up to 1 s, then
     * walks the mount */
    struct stat rs;
    bool fresh = stat(rec, &rs) == 0 && time(NULL) - rs.st_mtime < 30;
    if (control_path(cfg, user, l->control, sizeof l->control) < 0)
        return -ENOENT;
    int waited = 0;
    for (; fresh && waited < 20 && stat(l->control, &st) < 0; waited++)
        clock_sleep_ms(50);
    if (waited)
        log_debug("sync %s: waited %d ms for the shared ssh connection", user, waited * 50);
    if (stat(l->control, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        log_debug("sync %s: no shared ssh connection at %s: the mount is walked", user, l->control);
        return -ENOENT;
    }
    snprintf(l->words[1], sizeof l->words[1], "ControlPath=%s", l->control);
    snprintf(l->words[2], sizeof l->words[2], "UserKnownHostsFile=%s", cfg->sync_known_hosts);
    snprintf(l->words[3], sizeof l->words[3], "ConnectTimeout=%u",
             cfg->sync_mount_timeout_ms / 1000 + 1);
    snprintf(l->words[4], sizeof l->words[4], "%u", cfg->sshfs_port);
    snprintf(l->words[5], sizeof l->words[5], "%s", at);
    const char *argv[] = {"ssh",
                          "-F",
                          "/dev/null",
                          "-o",
                          "ControlMaster=no",
                          "-o",
                          l->words[1],
                          "-o",
                          "BatchMode=yes",
                          "-o",
                          l->words[2],
                          "-o",
                          "GlobalKnownHostsFile=/dev/null",
                          "-o",
                          "StrictHostKeyChecking=yes",
                          "-o",
                          l->words[3],
                          "-p",
                          l->words[4],
                          "-l",
                          l->words[5],
                          "--",
                          cfg->sshfs_host,
                          cfg->sync_server_homeport,
                          "sync-list",
                          NULL};
    _Static_assert(sizeof argv / sizeof *argv <= ROAMLIST_ARGV + 1, "ROAMLIST_ARGV is too small");
    for (; n < sizeof argv / sizeof *argv; n++) /* the NULL too */
        l->argv[n] = (char *)argv[n];
    return 0;
}

void roamlist_result(const struct hp_config *cfg, const char *user, const struct sync_stats *st)
{
    char rec[PATH_MAX];

    if (st->listed >= 0 || path_of(cfg, user, "list", rec, sizeof rec) < 0)
        return;
    if (st->listed != -EPROTO && st->listed != -EBADMSG) { /* the connection's trouble */
        log_warn("sync %s: the server's listing failed (%s): this pass read the server home "
                 "through sshfs",
                 user, st->list_why);
        return;
    }
    log_warn("sync %s: the server cannot list the home itself (%s): this pass and the next ones "
             "read every directory through sshfs, which is slower; install homeport on the "
             "server (server_homeport = %s) to list it there",
             user, st->list_why, cfg->sync_server_homeport);
    textfile_write(rec, "none", 0600);
}

void roamlist_forget(const struct hp_config *cfg, const char *user)
{
    char p[PATH_MAX];

    if (path_of(cfg, user, "list", p, sizeof p) == 0)
        unlink(p);
    if (control_path(cfg, user, p, sizeof p) == 0)
        unlink(p);
}
