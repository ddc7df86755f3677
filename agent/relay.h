/* relay: nbd.ko over a TLS connection.
 *
 * nbd.ko reads and writes its socket in clear, and libnbd keeps its TLS
 * session to itself, so a TLS connection cannot be handed to the kernel.
 * Instead the kernel gets one end of a socketpair, and a thread of the
 * home's worker relays its requests (the NBD transmission phase, simple
 * replies) onto the libnbd handle, which does the TLS to the server.  The
 * same way nbd-client does TLS.
 *
 * When the server's connection dies the relay ends and closes its end:
 * the kernel then sees its link die, holds the I/O, and the worker's
 * watcher hands it a new relay (NBD_CMD_RECONFIGURE) on a new TLS
 * connection.  Requests the relay had not answered are not failed: the
 * kernel sends them again on the new link.
 */
#ifndef HOMEPORT_RELAY_H
#define HOMEPORT_RELAY_H

#include "nbd.h"

/* Start relaying for ex (negotiated, ready, nothing in flight): ex->h is
 * taken over by the relay thread (ex->h is NULL after).  Returns the
 * kernel's end of the socketpair (blocking, close-on-exec), or -errno. */
int relay_start(struct nbd_export *ex);

#endif
