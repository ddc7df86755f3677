/* nbd: talk to NBD servers (libnbd).
 *
 * The boot-time check: every configured server is probed at the
 * same time in one poll loop (libnbd's async API), so N servers cost one
 * timeout, not N: connect (non-blocking, own socket), newstyle handshake in
 * option mode, NBD_OPT_LIST where the server allows it, NBD_OPT_INFO for the
 * probe export, then a polite NBD_OPT_ABORT.
 *
 * And the connection to a user's export, for the attach paths.
 *
 * A server with TLS (srv->tls) is connected by libnbd itself, which does
 * the STARTTLS and the handshake; one in clear by our own socket, which
 * can then be handed to nbd.ko.
 */
#ifndef HOMEPORT_NBD_H
#define HOMEPORT_NBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct nbd_handle;

struct nbd_probe {
    const struct hp_server *server;
    int err;             /* 0, or -errno: ETIMEDOUT, ECONNREFUSED, ENOENT, EPROTO... */
    const char *phase;   /* where it ended: "resolve", "connect", "handshake", ... */
    char message[256];   /* why, for people */
    char protocol[32];   /* "newstyle-fixed", ... */
    double connect_ms;   /* socket connected; -1: not measured (TLS: libnbd connects) */
    double handshake_ms; /* from start until the server's options phase */
    double rtt_ms;       /* one option round trip (NBD_OPT_LIST) */
    int list_err;        /* 0 = listed; else the server's refusal as -errno */
    char **exports;
    size_t nexports;
    int64_t probe_size;  /* -1 unless the probe export was found with a size */
    int probe_err;       /* -errno when the probe export failed; 0 otherwise */
    char probe_msg[256]; /* why it failed; or, size -1 without an error, why no size */
    int tls;             /* 1: TLS negotiated; 0: in clear; -1: not that far */
    char tls_info[400];  /* libnbd's words: version, cipher, kx, mac, server certificate */
};

/* Probe n servers within timeout_ms (total, all of them in parallel).
 * probe_export may be "" (no size check).  out has n entries.  Returns the
 * number of servers that failed (err != 0 or probe_err != 0). */
size_t nbd_probe_servers(const struct hp_server *servers, size_t n, const char *probe_export,
                         unsigned timeout_ms, struct nbd_probe *out);
void nbd_probe_free(struct nbd_probe *p, size_t n);

/* TCP_NODELAY and keepalive (10 s idle, 3 probes 5 s apart) on a TCP
 * socket of ours. */
void nbd_tune_socket(int fd);

/* Start h's connection to srv under srv->tls (tls.h): libnbd connects by
 * host name, so that it checks the server's certificate.  0, or -1 with
 * libnbd's error. */
int nbd_connect_tls(struct nbd_handle *h, const struct hp_server *srv);

/* An export, negotiated and ready for I/O. */
struct nbd_export {
    struct nbd_handle *h;
    int64_t size;
    bool read_only;
    bool can_flush;
    bool multi_conn; /* the server advertised NBD_FLAG_CAN_MULTI_CONN */
};

/* Connect to srv (TCP with keepalive, or a unix socket) and negotiate
 * export `name`, all within timeout_ms.  Returns 0, or -errno with a reason
 * for people in why (-ENOENT: no such export; -ETIMEDOUT). */
int nbd_export_open(const struct hp_server *srv, const char *name, unsigned timeout_ms,
                    struct nbd_export *ex, char *why, size_t whylen);
/* The same on a warm connection (see warm.h): h is in the options phase,
 * only NBD_OPT_GO is left, or it was sent already by nbd_warm_go for the
 * same name.  h is taken over (closed on failure).  -ENOTCONN: the
 * connection had died, connect afresh; else as above. */
int nbd_export_open_warm(struct nbd_handle *h, const struct hp_server *srv, const char *name,
                         unsigned timeout_ms, struct nbd_export *ex, char *why, size_t whylen);
/* Send NBD_OPT_GO for export name on warm connection h and return
 * without its answer: the agent does it as a login comes in, so that the
 * round trip (and the server's start of the connection's threads) runs
 * while the job and its worker start; the worker, which inherits h, reads
 * the answer (nbd_export_open_warm; libnbd reads it here when it is in
 * before this returns).  0, or -errno: h is not usable. */
int nbd_warm_go(struct nbd_handle *h, const char *name);

/* Ask the server to cache the first bytes of the export (NBD_CMD_CACHE,
 * 4 MiB a request), so that the next reads come from its memory.  done
 * says how far it got.  -EOPNOTSUPP when the server cannot cache. */
int nbd_export_cache(struct nbd_export *ex, uint64_t bytes, uint64_t *done);
void nbd_export_close(struct nbd_export *ex);

#endif
