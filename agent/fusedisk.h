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
    int ready_fd;            /* "ok\n" or "ok clean\n" (report_ready) written here once
                              * mounted; -1 for none */
};

/* Serve until SIGTERM/SIGINT/SIGHUP or an unmount of dir.  ex is taken
 * over (closed on return).  Returns 0 or -errno. */
int fusedisk_serve(const struct fusedisk_params *p, struct nbd_export *ex);

#endif
