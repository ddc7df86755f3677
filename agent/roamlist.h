/* roamlist: a roaming home's remote walk done on the server (sync/listing.h)
 * over the sshfs mount's own ssh connection.
 *
 * roam_mount gives sshfs's ssh ControlMaster=auto and a ControlPath,
 * RUN_DIR/roam/USER.ssh, so that ssh is the master of a shared connection;
 * and records the tree's directory on the server in RUN_DIR/roam/USER.list.
 * A pass then runs `ssh -o ControlPath=... HOST homeport sync-list` through
 * that connection (no new login, no password needed again) and walks the
 * listing instead of every directory of the mount.  The remote command is
 * a fixed line ([sync] server_homeport, checked to be a plain word, and
 * "sync-list"); the directory goes on its stdin.
 *
 * When the server cannot list (no homeport there, an older one, a listing
 * refused), the pass walks the mount as before; that is logged once, and
 * the record says so (RUN_DIR/roam/USER.list: "none"), so that the next
 * passes of the mount do not try again.  A new mount tries again.
 */
#ifndef HOMEPORT_ROAMLIST_H
#define HOMEPORT_ROAMLIST_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "sync/engine.h"

#define ROAMLIST_ARGV 32

struct roamlist {
    char *argv[ROAMLIST_ARGV + 1];
    char dir[PATH_MAX]; /* on the server, relative to the login's home ("" = it) */
    char control[108];  /* the socket's path (sun_path) */
    char words[6][PATH_MAX + 32];
};

/* Before the mount: when the listing may be used (sync mount = sshfs,
 * server_homeport set), append ",ControlMaster=auto,ControlPath=..." to
 * the sshfs options opts (len bytes in all) and record remote_dir.
 * Nothing when not (logged at debug). */
void roamlist_mount(const struct hp_config *cfg, const char *user, const char *remote_dir,
                    char *opts, size_t len);

/* For a pass: the lister's argv and directory, when the mount has a live
 * shared connection and the server was not found unable.  0, or -ENOENT
 * (the pass walks the mount). */
int roamlist_get(const struct hp_config *cfg, const char *user, struct roamlist *l);

/* After a pass that asked (st->listed): a failure is logged, once a mount,
 * and recorded. */
void roamlist_result(const struct hp_config *cfg, const char *user, const struct sync_stats *st);

/* The mount is gone: its record and socket too. */
void roamlist_forget(const struct hp_config *cfg, const char *user);

#endif
