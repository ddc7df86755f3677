/* fusedisk: serve an NBD export as one file, DIR/disk, on a private FUSE
 * mount, so that a loop device can stand on it where the kernel has no
 * nbd.ko (containers, stripped kernels).
 *
 * I/O goes to libnbd from FUSE's worker threads.  The export may be served
 * over several connections (params.connections, when the server advertises
 * multi-conn; else one): the one handed to fusedisk_serve, in use at once,
 * and the others opened after the mount, in the background.  Requests go
 * round-robin over the open ones; a flush goes to one (with multi-conn it
 * covers the writes completed on all); a server back without multi-conn
 * leaves the home on the first alone.  When a connection dies the first
 * request to notice reconnects it (backoff 100 ms doubling to 2 s, each
 * wait at random from half to one and a half times it) while the others
 * on it wait, for up to dead_timeout; after that its requests fail with
 * EIO at once, and a reconnect is tried again at most every 5 s, so a
 * server that comes back is picked up.  Nothing hangs forever.
 */
#ifndef HOMEPORT_FUSEDISK_H
#define HOMEPORT_FUSEDISK_H

#include <stdint.h>

#include "config.h"
#include "nbd.h"

struct fusedisk_params {
    const char *dir; /* mount point, an existing empty directory */
    const struct hp_server *server;
    const char *export;
    unsigned connect_timeout_ms;
    unsigned dead_timeout_ms;
    unsigned connections;    /* [nbd] connections: used only when the server has multi-conn */
    const char *stats_path;  /* rewritten (atomically) when the numbers change */
    const char *layout_path; /* the ranges the last mount read, fetched with the
                              * first read (a hint, kept per home); NULL: none */
    int ready_fd;            /* a SOCK_SEQPACKET socket: "ok\n" once the FUSE loop
                              * serves, then "clean\n" or "unknown\n" (worker.h) once
                              * the superblock is in; then closed.  -1 for none */
};

/* Serve until SIGTERM/SIGINT/SIGHUP or an unmount of dir.  ex is taken
 * over (closed on return).  Returns 0 or -errno. */
int fusedisk_serve(const struct fusedisk_params *p, struct nbd_export *ex);

/* A spare (worker.h): the FUSE mount made, and its loop serving an empty
 * dir, before the export is known, so that a login finds them ready.
 * FUSE_INIT is answered for `connections` connections per home (a server
 * without multi-conn then gets smaller requests than it could take).  The
 * calling thread must not be the one to take SIGTERM/SIGINT/SIGHUP: they
 * go to the loop's thread (and end it).  0 or -errno. */
struct fusedisk_spare;
int fusedisk_spare_mount(const char *dir, unsigned connections, struct fusedisk_spare **out);
/* Readable once the spare's loop has ended (a stop signal, an unmount). */
int fusedisk_spare_ended_fd(const struct fusedisk_spare *sp);
/* Serve ex on the spare as fusedisk_serve does (p->dir is where the mount
 * is now: it may have been moved).  sp is freed on return. */
int fusedisk_spare_serve(struct fusedisk_spare *sp, const struct fusedisk_params *p,
                         struct nbd_export *ex);
/* Unmount and free a spare that serves nothing. */
void fusedisk_spare_drop(struct fusedisk_spare *sp);

#endif
