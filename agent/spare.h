/* spare: FUSE workers started ahead of need ([nbd] spare_workers).
 *
 * A spare (worker.h) is forked by the agent with its FUSE mount already
 * made on RUN_DIR/spare/PID and a warm connection to the home server
 * (warm.h) in the options phase.  A login that must prepare a home takes
 * one: the agent sends it the user's export as the job starts, so the
 * spare's NBD_OPT_GO and the fetch of what the mount reads run while the
 * job does its checks; the job then moves the FUSE mount onto the home's
 * FUSE dir (RUN_DIR/spare is a private mount of its own: MS_MOVE refuses a
 * mount under a shared one) and the spare is that home's worker.  The
 * fork, the FUSE mount and its threads are off the login's path.
 *
 * A spare taken is replaced 30 ms later (by then the account stage that
 * took it is mostly done).  One that ends untaken (its mount failed, it
 * was killed) is replaced after 1 s, doubling up to 60 s while they keep
 * ending young.
 * One whose warm connection the server closed stays, and connects at the
 * take.
 * Spares end with the agent; a new agent unmounts what is left under
 * RUN_DIR/spare.  Only for attach = fuse (or auto without nbd.ko), homes
 * on NBD, and the static locator (the home server known in advance).
 */
#ifndef HOMEPORT_SPARE_H
#define HOMEPORT_SPARE_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "config.h"
#include "home.h"

struct spare_pool;
struct warm_pool;

/* A pool of want spares for cfg's home server; NULL when there is none to
 * keep (want 0, or spares do not apply, or RUN_DIR/spare cannot be a
 * private mount: logged).  clean: unmount what an earlier agent's spares
 * left there (at the agent's start).  The pool keeps pointers into cfg. */
struct spare_pool *spare_new(const struct hp_config *cfg, unsigned want, bool clean);
/* Ends every untaken spare (they unmount). */
void spare_free(struct spare_pool *p);

/* As warm_poll and warm_events (warm.h); spare_events starts the spares
 * that are due, each on a connection from warm when it has one. */
size_t spare_poll(struct spare_pool *p, struct pollfd *fds, size_t max, int64_t now_ms,
                  int64_t *next_ms);
void spare_events(struct spare_pool *p, const struct pollfd *fds, size_t n, int64_t now_ms,
                  struct warm_pool *warm);

/* Take a ready spare: 0 with *out filled (the caller owns its control
 * socket), or -ENOENT when none is ready.  Then spare_send. */
int spare_take(struct spare_pool *p, struct home_ahead *out, int64_t now_ms);
/* Send the spare taken into a user's export and files: it opens the
 * export and fetches what the mount reads while the login's job starts.
 * The agent sends it just before forking the job (sending it after the
 * fork measured no better, bench/README.md).  0 or -errno (the caller
 * then lets the spare go: it ends on EOF). */
int spare_send(const struct hp_config *cfg, const struct home_ahead *a, const char *user);

/* Print the spares of the running agent (from RUN_DIR/spare: a live
 * homeport per PID dir), a line, or as ', "spare_workers": [PIDS]' for
 * the end of a JSON object.  Returns how many. */
int spare_status(const char *run_dir, FILE *out, bool json);

/* How many are ready, for the log and tests. */
size_t spare_ready(const struct spare_pool *p);

#endif
