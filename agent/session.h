/* session: what the agent does for one user at each PAM stage.
 *
 * The agent runs each stage in a job process, one at a time per user, and
 * keeps the result (where the home is, how many sessions are open):
 *
 *   account        exempt users pass; else the home is prepared (attached,
 *                  checked, test-mounted) and held for the lease
 *   open_session   the prepared home is moved onto the home dir (preparing
 *                  it first if the lease ran out); a second session of the
 *                  same user shares the mount
 *   close_session  one session less; at zero the user's processes get
 *                  SIGTERM, then SIGKILL after kill_grace, and the home is
 *                  unmounted and released
 *   release        (the agent's own: an expired lease, a retried unmount)
 *   cache          (the agent's own, at start: NBD_CMD_CACHE for the first
 *                  cache_size of the expected user's export)
 *
 * What the agent believes is checked against the system first: a home that
 * went away behind its back is prepared again, not trusted.
 */
#ifndef HOMEPORT_SESSION_H
#define HOMEPORT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "home.h"
#include "proto.h"
#include "user.h"

struct session_user {
    char name[HP_USER_NAME_MAX + 1];
    enum home_phase home;
    int sessions;
    bool presence; /* logged in at the presence service from here (remote.h) */
};

/* Why user passes untouched (uid below min_uid, listed, in an exempt group,
 * an exempt PAM service), written to buf and returned; NULL when the user
 * is handled.  Unknown users are not exempt. */
const char *session_exempt(const struct hp_config *cfg, const char *user, const char *service,
                           char *buf, size_t len);

/* Run one stage for u (updated in place); ahead: what the agent readied
 * for a home that must be prepared (home.h), or NULL.  Returns 0 with the closing
 * message in msg (may be empty), or -errno with the reason in msg: -EBUSY
 * from close_session/release means the home stays mounted and should be
 * retried. */
int session_run(const struct hp_config *cfg, enum proto_verb verb, const char *service,
                struct home_ahead *ahead, struct session_user *u, progress_fn progress, void *ctx,
                char *msg, size_t msglen);

/* open_session of a home that is prepared or mounted already: a bind
 * mount (or one more session) and a record write, nothing asked of a
 * server, so quick enough for the agent's own process.  -EAGAIN when the
 * stage needs more (no prepared home, an exempt user or service, sync
 * mode): run it with session_run.  Else as session_run. */
int session_open_prepared(const struct hp_config *cfg, const char *service, struct session_user *u,
                          char *msg, size_t msglen);

/* What a stage leaves to do once its answer is out: record the last user
 * after a first open_session. */
void session_after(const struct hp_config *cfg, enum proto_verb verb, int rc,
                   const struct session_user *u);

/* The expected user ([nbd] expected_user: a name, or "last": the last user
 * whose home was mounted here, from STATE_DIR/last_user), in buf; NULL
 * when there is none. */
const char *session_expected_user(const struct hp_config *cfg, char *buf, size_t len);

/* SIGTERM every process whose real or saved uid is uid (those uid itself
 * may signal: not a root daemon acting as uid for a moment), wait up to
 * grace_ms for them to end, SIGKILL the rest.  Refuses uid 0 (-EPERM).
 * Returns the number of processes signalled; report says what happened.
 * It reads every /proc/PID/status (about 5 us a process) only when
 * session_uid_has_tasks says 1: a process whose saved uid alone is uid is
 * stopped only along with one whose real uid is. */
int session_kill_user(uid_t uid, unsigned grace_ms, char *report, size_t len);

/* Whether some task has uid as its real uid (1: maybe only zombies not yet
 * reaped; 0: none; -errno: cannot tell), from the kernel's count of each
 * uid's tasks (RLIMIT_NPROC), not from /proc: a child takes uid, lowers
 * its RLIMIT_NPROC to 2 and forks, which fails with EAGAIN exactly when
 * another task of uid exists (the child drops every capability: one
 * would pass over the limit).  (kill(-1, 0) cannot tell: it succeeds when
 * any other process exists, one it may not signal too.)  Needs root. */
int session_uid_has_tasks(uid_t uid);

#endif
