/* worker: the process that holds a home's connection to its server.
 *
 * One per home, so that a stuck server freezes no one else.  It connects
 * (on a warm connection when there is one), then either serves the export
 * as DIR/disk on a private FUSE mount (fusedisk.h), or hands the socket to
 * nbd.ko and watches for a dead link, giving the kernel a new connection
 * until it works again.  It outlives the command that started it: its
 * stdio goes to /dev/null and its log to syslog or the kernel log.
 *
 * Its counters go to a stats file of key=value lines (state, reconnects,
 * last_error; FUSE adds bytes_read and bytes_written), rewritten whole.
 * On start it reports on a SOCK_SEQPACKET socket: "ok [DEVICE]" or "err
 * ERRNO REASON".  A FUSE worker then gives its verdict on the filesystem
 * when the superblock it fetches ahead for the mount is in: "clean" (e2fsck
 * -p would find nothing to do) or "unknown".  "ok" does not wait for it,
 * so that the starter binds its loop device while the head is fetched.
 */
#ifndef HOMEPORT_WORKER_H
#define HOMEPORT_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

struct nbd_handle;

struct worker_params {
    const struct hp_config *cfg;
    const struct hp_server *srv;
    const char *export;
    const char *fuse_dir;    /* FUSE attach: the (empty) mount dir; NULL: kernel attach */
    const char *stats;       /* the stats file */
    const char *layout;      /* FUSE: the layout hint file (fusedisk.h), or NULL */
    struct nbd_handle *warm; /* a warm connection to srv (warm.h) or NULL */
};

/* Start the worker and wait (connect_timeout + 5 s) until it serves.
 * *pid is the worker's (also on failure, when it was started: the caller
 * stops it), dev the device it attached (kernel: /dev/nbdN; FUSE: left
 * alone), *verdict_fd where its verdict comes (worker_verdict; -1 on
 * failure).  0, or -errno with why. */
int worker_start(const struct worker_params *p, pid_t *pid, char *dev, size_t devlen,
                 int *verdict_fd, char *why, size_t whylen);

/* Wait (up to timeout_ms) for the verdict on fd, and close it: true when
 * the worker found the filesystem clean, false when not known (a kernel
 * worker gives none). */
bool worker_verdict(int fd, unsigned timeout_ms);

/* Spares: FUSE workers started ahead of need by the agent (spare.h), with
 * their FUSE mount on ROOT/PID (empty until taken) and a warm connection (or
 * none: they connect at the take).  *ctl is the agent's end of a
 * SOCK_SEQPACKET pair: the spare says "spare" on it once mounted (or "err
 * ..." and ends).  Closing it ends an untaken spare, which unmounts;
 * until taken it also ends with the agent (SIGTERM).  0 or -errno. */
int worker_spare_start(const struct hp_config *cfg, const struct hp_server *srv, const char *root,
                       struct nbd_handle *warm, pid_t *pid, int *ctl);
/* Hand a spare its home: it opens the export and serves it as
 * worker_start's FUSE worker does (layout: NULL for none).  Sent without
 * waiting: the spare's answer, as worker_start's, comes on ctl to
 * whoever waits with worker_spare_ready.  0 or -errno. */
int worker_spare_take(int ctl, const char *export, const char *stats, const char *layout);
/* Wait (up to timeout_ms) for a taken spare's "ok" or "err ...".  0 or
 * -errno with why; *answered: the spare said it (an "err" is then the
 * server's or the export's verdict, which another worker would get too),
 * rather than ending or not answering.  After "ok", its verdict comes on
 * ctl (worker_verdict). */
int worker_spare_ready(int ctl, unsigned timeout_ms, bool *answered, char *why, size_t whylen);

/* Whether pid is a live homeport process (not a zombie). */
bool worker_alive(pid_t pid);

#endif
