/* nbdkernel: hand a negotiated NBD socket to the kernel's nbd driver over
 * generic netlink (family "nbd"), and take it back.
 *
 * The socket must have been negotiated for the kernel: simple replies only
 * (nbd.ko cannot parse structured replies).  Under TLS, which nbd.ko
 * cannot do, the kernel gets the socket of a relay thread instead
 * (relay.h).  The kernel keeps its own reference to the socket; the caller
 * closes its copy.  With a dead
 * connection timeout the kernel holds I/O when the link dies and announces
 * it (NBD_CMD_LINK_DEAD on the "nbd_mc_group" multicast group) so that a
 * watcher can give it a new socket (NBD_CMD_RECONFIGURE).
 */
#ifndef HOMEPORT_NBDKERNEL_H
#define HOMEPORT_NBDKERNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "nbd.h"

/* Is nbd.ko loaded (after trying modprobe once)? */
bool nbdkernel_available(void);

/* Give the export's socket to a free nbd device; *index receives N of
 * /dev/nbdN.  ex is closed (its socket now belongs to the kernel).  Returns
 * 0 or -errno.
 *
 * io_timeout_s: a request unanswered this long marks the link dead and is
 * sent again on the next connection.  0 means never, and then a request
 * that was on the wire when the link died waits for a blk-mq timer tick
 * (30 s) after a reconnect, and forever when the server does not come back
 * (the driver only warns "Possible stuck request"). */
int nbdkernel_connect(struct nbd_export *ex, unsigned dead_timeout_s, unsigned io_timeout_s,
                      int *index);

/* Give device index a new, negotiated connection after its link died. */
int nbdkernel_reconfigure(int index, struct nbd_export *ex);

/* Disconnect /dev/nbdN (never while its filesystem is mounted): netlink,
 * or the NBD_DISCONNECT ioctl where the kernel has no netlink nbd. */
int nbdkernel_disconnect(int index);

/* The ioctl interface, for kernels without netlink nbd: configure a free
 * device with the export's socket (ex is closed) and return an open
 * descriptor of it; *index receives N.  Then nbdkernel_ioctl_run() must be
 * called on it: it serves until the device is disconnected (NBD_DO_IT).
 * This interface cannot replace a dead connection. */
int nbdkernel_ioctl_attach(struct nbd_export *ex, unsigned io_timeout_s, int *index);
int nbdkernel_ioctl_run(int devfd);

/* A socket that receives the driver's announcements; poll it for POLLIN,
 * then nbdkernel_watch_read() returns the index of a dead link, or -1 when
 * the message was about something else.  Returns the fd or -errno. */
int nbdkernel_watch_open(void);
int nbdkernel_watch_read(int fd);

#endif
