/* roam: home_mode = sync, the roaming profile (the home mounted with sshfs
 * and kept in step with a local copy by the sync engine).
 *
 * The user's home on the server is mounted (sshfs, or the site's mount
 * command) on the staging dir, STAGING/USER, and synced both ways with a
 * local copy (LOCAL: [sync] local_dir), which is the home the session uses.
 * A pass is sync/engine.h's, with the state database
 * STATE_DIR/sync/USER.db and the site's exclusion list.
 *
 *   login (account, or open_session without one): mount, create the local
 *     home if new, the links to the server's big folders, then the first
 *     pass: waited for (login_sync = blocking, the greeter shows progress),
 *     or in the background; the flag file exists while it runs
 *   session: a pass every sync_interval (inotify does not see sshfs)
 *   last close_session: the user's processes stopped, a last pass, unmount
 *
 * What is held is recorded under RUN_DIR/roam/USER (sessions=N), so that a
 * restarted agent and `homeport status` know it.
 */
#ifndef HOMEPORT_ROAM_H
#define HOMEPORT_ROAM_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "log.h"
#include "sync/engine.h"

struct roam_paths {
    char local[PATH_MAX];  /* the local copy, the session's home */
    char stage[PATH_MAX];  /* where the server's home is mounted */
    char state[PATH_MAX];  /* the sync state database */
    char flag[PATH_MAX];   /* exists while a login's pass runs */
    char record[PATH_MAX]; /* RUN_DIR/roam/USER */
};

/* Where user's things are.  0, -EINVAL (a bad user name), -ENAMETOOLONG. */
int roam_paths(const struct hp_config *cfg, const char *user, struct roam_paths *p);

/* One pass for user between the local home and the mounted server home
 * (which must be mounted: -ENOTCONN otherwise).  report: one line an action
 * (engine.h); stop: when set, the pass ends after the current path (NULL:
 * never).  flags: ROAM_DRY_RUN, ROAM_ALLOW_DELETES.  0 or -errno with
 * why; per-path trouble is in st. */
#define ROAM_DRY_RUN 1
#define ROAM_ALLOW_DELETES 2
int roam_pass(const struct hp_config *cfg, const char *user, int flags,
              void (*report)(void *ctx, const char *line), void *ctx, volatile sig_atomic_t *stop,
              struct sync_stats *st, char *why, size_t whylen);

/* Mount user's server home on the staging dir.  password: for auth =
 * password (sshfs reads it on its stdin), else NULL.  0; -EALREADY when it
 * is mounted already; -EACCES when the server refused the credentials;
 * another -errno.  why says it. */
int roam_mount(const struct hp_config *cfg, const char *user, const char *password, char *why,
               size_t whylen);

/* Unmount it (lazily when busy: the sshfs process then ends with its last
 * user).  0, -ENOENT when it was not mounted. */
int roam_umount(const struct hp_config *cfg, const char *user, char *why, size_t whylen);

/* Whether user's server home is mounted on the staging dir now. */
bool roam_mounted(const struct hp_config *cfg, const char *user);

/* The local home: created (owned by the user, 0700) when missing, with the
 * links to server_links and file_server_link pointing into the staging
 * mount.  0 or -errno with why. */
int roam_prepare_local(const struct hp_config *cfg, const char *user, char *why, size_t whylen);

/* The held-session record: sessions, or -ENOENT when there is none. */
int roam_get_sessions(const struct hp_config *cfg, const char *user);
int roam_set_sessions(const struct hp_config *cfg, const char *user, int sessions);
void roam_forget(const struct hp_config *cfg, const char *user);

/* The login's part: mount the server home (-EALREADY is fine), prepare the
 * local home, and the first pass: waited for, with progress lines, or in a
 * process of its own (login_sync = background).  The flag file exists
 * while the pass runs.  0 with a closing message in msg (a pass that fails
 * leaves the local home as it was and says so: the login goes on), or
 * -errno when the server home cannot be had. */
int roam_login(const struct hp_config *cfg, const char *user, progress_fn progress, void *ctx,
               char *msg, size_t msglen);

/* The last logout's part: a last pass (waiting up to wait_ms for a pass
 * still running; the flag file exists meanwhile), then the unmount.  0 with
 * msg saying how the pass went (the unmount is done even when the pass
 * fails: the local copy keeps the changes, the next login here sends them);
 * -EBUSY when the unmount failed. */
int roam_logout(const struct hp_config *cfg, const char *user, unsigned wait_ms, char *msg,
                size_t msglen);

/* A pass during the session, logged.  -EBUSY when one is running. */
int roam_periodic(const struct hp_config *cfg, const char *user);

/* Call fn for each roaming home recorded here (a restarted agent re-adopts
 * them): its sessions, and whether its server home is still mounted. */
void roam_foreach(const struct hp_config *cfg,
                  void (*fn)(void *ctx, const char *user, int sessions, bool mounted), void *ctx);

/* The roaming homes held here, for `homeport status`.  Number in trouble. */
int roam_status(const struct hp_config *cfg, FILE *out, bool json);

#endif
