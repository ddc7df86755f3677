/* warm: NBD connections opened ahead of need ([nbd] warm_connections).
 *
 * Each is connected and through the newstyle handshake, then left waiting
 * in the options phase (libnbd option mode), before any export is chosen:
 * a login then costs one round trip (NBD_OPT_GO for the user's export)
 * instead of connect + handshake + go.  Simple replies only, so a warm
 * connection can also be handed to nbd.ko.
 *
 * The pool lives in the agent's event loop: warm_poll() says what to wait
 * for, warm_events() reacts.  A connection taken is replaced 100 ms later
 * (after the login that took it), in the background.  The first fill, and
 * a refill after the server closed an idle connection, happen at a random
 * moment within 4 s, so that many agents starting together, or seeing
 * their server restart, do not connect in the same second.  Failures back
 * off (1 s doubling up to 60 s; each wait from half that, at random over
 * that or 4 s, whichever is longer)
 * while connections keep failing or dying young; meanwhile only the first
 * slot of that server tries, the others follow once it got through.
 *
 * A server that closes idle connections in the options phase (qemu's NBD
 * server does) is recognised when two connections in a row of one slot
 * are closed after about the same idle time: the pool keeps 1 connection
 * to it instead of per, opens it again no sooner than that time after the
 * last one closed, says so once in the log, and forgets it when a
 * connection outlives twice that time.  warm_take never hands out one
 * that the server has closed, nor one about to reach that time.
 *
 * The agent keeps RUN_DIR/warm up to date for homeport status.
 */
#ifndef HOMEPORT_WARM_H
#define HOMEPORT_WARM_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

struct nbd_handle;
struct warm_pool;

/* A pool of per connections to each server of cfg ([nbd] servers and the
 * home server); per == 0 gives an empty pool.  The pool keeps pointers into
 * cfg's servers: build a new pool when cfg is replaced.  NULL: no memory. */
struct warm_pool *warm_new(const struct hp_config *cfg, unsigned per);
void warm_free(struct warm_pool *p);

/* Fill up to max pollfds (returns how many) and lower *timeout_ms to the
 * next timer of the pool (now_ms: CLOCK_MONOTONIC in ms). */
size_t warm_poll(struct warm_pool *p, struct pollfd *fds, size_t max, int64_t now_ms,
                 int64_t *next_ms);

/* React to the revents of the n pollfds that warm_poll filled, and to
 * timers. */
void warm_events(struct warm_pool *p, const struct pollfd *fds, size_t n, int64_t now_ms);

/* A warm connection to srv (matched by label), or NULL when none is ready.
 * The caller owns it (nbd_close, or nbd_export_open_warm). */
struct nbd_handle *warm_take(struct warm_pool *p, const struct hp_server *srv, int64_t now_ms);

/* How many are ready, for the log and tests. */
size_t warm_ready(const struct warm_pool *p);

/* Print what the running agent's pool holds (from RUN_DIR/warm), a line a
 * server; json: as ', "warm": [...]' for the end of a JSON object.
 * Returns the number of servers printed (0 when no agent runs). */
int warm_status(const char *run_dir, FILE *out, bool json);

#endif
