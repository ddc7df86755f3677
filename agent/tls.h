/* tls: TLS on the NBD connections ([nbd] tls and tls_* in homeport.conf(5)).
 *
 * libnbd does the TLS itself (GnuTLS): NBD_OPT_STARTTLS, the handshake,
 * then the rest of the negotiation and all I/O inside TLS.  This module
 * checks the machine's TLS files and tells a libnbd handle to use them.
 *
 * libnbd reads X.509 material from one directory under fixed names
 * (ca-cert.pem, client-cert.pem, client-key.pem), so tls_setup() lays the
 * configured files out there as symbolic links, in run_dir/tls.
 *
 * libnbd 1.14 checks a server's certificate (CA and host name) only when
 * it connected the socket itself by host name: TLS connections are
 * therefore always made by libnbd (nbd.c), and X.509 needs TCP servers
 * (the configuration refuses a unix socket without PSK).  A connection
 * under TLS cannot be handed to nbd.ko, which reads and writes the socket
 * in clear: the kernel attach relays it (relay.h).
 */
#ifndef HOMEPORT_TLS_H
#define HOMEPORT_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct nbd_handle;

/* Check the files of cfg->tls (nothing to do when TLS is off): the CA and
 * the machine's certificate readable PEM certificates, the key and the
 * PSK file root's with mode 0600, the PSK file holding a key for the
 * identity.  0, or -errno with the file at fault and the fix in why. */
int tls_check(const struct hp_config *cfg, char *why, size_t whylen);

/* tls_check, then (re)make cfg->tls->cert_dir, run_dir/tls, for libnbd
 * (X.509 only).  Every process that connects with cfg calls it once
 * before (forked ones inherit it). */
int tls_setup(const struct hp_config *cfg, char *why, size_t whylen);

/* Have h (not yet connected) use t: TLS required (or allowed, tls = on),
 * the certificates or the PSK, the server's certificate checked.
 * Returns 0, or -1 with libnbd's error (nbd_get_error). */
int tls_apply(struct nbd_handle *h, const struct hp_tls *t);

/* What to check, for people, when a connection under t (NULL: no TLS)
 * failed with libnbd's error e (closed: libnbd closed the connection
 * during the handshake, which it does when the server refuses STARTTLS
 * and TLS is required).  "" when e does not look like TLS. */
const char *tls_hint(const struct hp_tls *t, const char *e, bool closed);

/* "X.509", "X.509 with this machine's certificate", "PSK as IDENTITY"
 * into buf, for logs and reports. */
const char *tls_describe(const struct hp_tls *t, char *buf, size_t len);

#endif
