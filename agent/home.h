/* home: a user's home, attached, checked and mounted, and taken away.
 *
 * prepare: connect to the user's export, attach it (nbd.ko, or a file on a
 * private FUSE mount with a loop device on it; a worker process per home,
 * so a stuck server cannot freeze anyone else), e2fsck -p, mount it on a
 * private stage dir (RUN_DIR/stage/USER) and check that the filesystem's
 * root belongs to the user.  Everything that can fail has then been tried,
 * at the PAM stage that can still tell the user.
 * enter: bind the prepared mount onto the home dir and drop the stage
 * mount: the home appears at once, with no I/O to the server.
 * umount: unmount (reporting the processes that keep it busy), release the
 * device, stop the worker.  Never in the other order.
 *
 * What is mounted is recorded under RUN_DIR/homes/USER, so that umount and
 * status work from any process and after a restart: key=value lines (user,
 * attach, device, server, export, mountpoint, fuse_dir, worker, size,
 * direct_io, read_only, phase, stage, sessions, closing), values cut to
 * their field; the worker's counters in USER:stats.  When they are read
 * back, a line longer than 4199 bytes (511 in USER:stats) is ignored whole,
 * and a record whose user= is not the name of its file, or without a
 * mountpoint, is not a record (status skips it; for its user it is none).
 */
#ifndef HOMEPORT_HOME_H
#define HOMEPORT_HOME_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "config.h"
#include "log.h"
#include "user.h"

struct nbd_handle;

/* Where a user's home is: none here, prepared on its stage dir (the
 * login's account stage), or mounted on the home dir.  A record is
 * prepared or mounted; a session (session.h) may have none. */
enum home_phase { HOME_NONE, HOME_PREPARED, HOME_MOUNTED };

struct home_state {
    char user[HP_USER_NAME_MAX + 1];
    char attach[8];   /* "fuse" */
    char device[64];  /* /dev/loopN */
    char server[300]; /* label */
    char export[256];
    char mountpoint[4096];
    char fuse_dir[4096];
    pid_t worker;
    uint64_t size;
    bool direct_io;
    bool read_only; /* the server exports it read-only: mounted ro */
    enum home_phase phase;
    char stage[4096]; /* where a prepared home is mounted */
    int sessions;     /* open PAM sessions (kept by the agent) */
    bool closing;     /* the last session ended but the unmount failed: retry it */
};

/* What the agent got ready for a login's home before its job started:
 * a warm connection to the home server (warm.h) for the worker to use, or
 * a spare worker (spare.h) already sent the user's export, or neither. */
struct home_ahead {
    struct nbd_handle *warm;
    pid_t spare; /* > 0: the spare's pid */
    int spare_ctl;
    char spare_dir[4096]; /* its FUSE mount, moved onto the home's */
    bool adopted;         /* home_prepare made it the home's worker, or stopped it */
};

/* The files a home's FUSE worker keeps: its stats file and its layout
 * hint (the paths only: home_prepare makes state_dir/layout, not the
 * agent on the login's path).  0 or -ENAMETOOLONG. */
int home_worker_files(const struct hp_config *cfg, const char *user, char *stats, size_t statslen,
                      char *layout, size_t layoutlen);

/* Stop a spare that was taken but not adopted (the login ended before it
 * needed it). */
void home_ahead_drop(struct home_ahead *a);

/* Prepare user's home (see above) from srv (NULL: the configured home
 * server; see remote_locate).  ahead: what the agent readied for it (for
 * srv), or NULL.  Returns 0; -EALREADY
 * when it is prepared or mounted already; -EUCLEAN when the filesystem
 * needs a manual repair; -EPERM when its root belongs to someone else; or
 * another -errno.  why says it for people.  On failure nothing is left
 * attached. */
int home_prepare(const struct hp_config *cfg, const char *user, const struct hp_server *srv,
                 struct home_ahead *ahead, progress_fn progress, void *ctx, char *why,
                 size_t whylen);

/* Make RUN_DIR/stage a mount of its own, private, so that home_enter
 * moves a prepared home in one mount(2) instead of a bind and an unmount.
 * The agent calls it at start, before any job (a second call keeps the
 * first's mount).  0 or -errno; without it home_enter still works. */
int home_stage_private(const struct hp_config *cfg);

/* Move a prepared home onto its home dir, recorded as mounted with that
 * many open sessions (in one write: the login waits for it); the home dir
 * goes to mountpoint.  known: the home's record as the caller has just
 * read it (home_record), or NULL to read it here.  -ENOENT when none is
 * prepared, or when it is not whole (its worker gone, or not mounted on
 * its stage dir). */
int home_enter(const struct hp_config *cfg, const char *user, const struct home_state *known,
               int sessions, char *mountpoint, size_t mplen, char *why, size_t whylen);

/* prepare + enter: the admin's `homeport mount`. */
int home_mount(const struct hp_config *cfg, const char *user, const struct hp_server *srv,
               progress_fn progress, void *ctx, char *why, size_t whylen);

/* Unmount user's home, prepared or mounted, and release it.  -ENOENT when
 * there is none; -EBUSY when processes keep it busy (listed in why). */
int home_umount(const struct hp_config *cfg, const char *user, char *why, size_t whylen);

/* The record of user's home, checked against the system: 0 when it is
 * there and whole (worker alive, mounted where the record says); -ENOENT
 * when there is no record; -ESTALE when the record is stale (s filled). */
int home_lookup(const struct hp_config *cfg, const char *user, struct home_state *s);

/* The record of user's home as written, not checked against the system
 * (for a caller that checks next, as home_enter does): 0 or -ENOENT. */
int home_record(const struct hp_config *cfg, const char *user, struct home_state *s);

/* Record the number of open sessions, and whether the home waits for an
 * unmount that failed.  0 or -errno. */
int home_set_sessions(const struct hp_config *cfg, const char *user, int sessions, bool closing);

/* Call fn for each home recorded here (a restarted agent re-adopts them). */
void home_foreach(const struct hp_config *cfg, void (*fn)(void *ctx, const char *user), void *ctx);

/* Print every home this machine has mounted (text or JSON). Returns the
 * number of homes in trouble (worker gone, disconnected, not mounted). */
int home_status(const struct hp_config *cfg, FILE *out, bool json);

#endif
