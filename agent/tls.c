#include "tls.h"

#include "textfile.h"
#include "tree.h"

#include <ctype.h>
#include <errno.h>
#include <libnbd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PEM_MAX (256u << 10) /* a certificate chain, a key: far less */

#ifdef HP_GNUTLS_STATIC
#include <gnutls/gnutls.h>

/* GnuTLS initialises itself in a constructor, in every process that links
 * it, TLS or not: in the static binary that was 0.7 ms of CPU and 86 page
 * faults at each start (`homeport --version`: 0.82 ms against 0.11 without
 * GnuTLS), paid by every `homeport pam` of every login, and a third of the
 * idle agent's resident code.  GnuTLS asks this weak hook whether to skip
 * it; homeport initialises it itself before its first TLS connection. */
int _gnutls_global_init_skip(void);
int _gnutls_global_init_skip(void)
{
    return 1;
}

static void gnutls_init_once(void)
{
    (void)gnutls_global_init(); /* a failure shows as libnbd's error at the handshake */
}

/* Once a process; forks inherit it. */
static void tls_lib_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, gnutls_init_once);
}
#else
static void tls_lib_init(void)
{
    /* a shared GnuTLS initialises itself */
}
#endif

/* Whether path is a readable file holding a PEM block "BEGIN <kind>". */
static int check_pem(const char *path, const char *what, const char *kind, char *why, size_t whylen)
{
    char marker[64];
    char *buf = malloc(PEM_MAX);
    FILE *f;
    size_t n;

    if (!buf)
        return -ENOMEM;
    f = fopen(path, "re");
    if (!f) {
        int e = errno;
        free(buf);
        snprintf(why, whylen, "cannot read the %s %s: %s", what, path, strerror(e));
        return -e;
    }
    n = fread(buf, 1, PEM_MAX - 1, f);
    fclose(f);
    buf[n] = '\0';
    snprintf(marker, sizeof marker, "-----BEGIN %s-----", kind);
    bool found = strstr(buf, marker) != NULL;
    free(buf);
    if (!found) {
        snprintf(why, whylen, "%s %s: no PEM certificate in it (expected a line %s)", what, path,
                 marker);
        return -EINVAL;
    }
    return 0;
}

/* The machine's key: private, and a PEM private key. */
static int check_key(const char *path, char *why, size_t whylen)
{
    char *buf = malloc(PEM_MAX);
    size_t n;
    int rc;

    if (!buf)
        return -ENOMEM;
    rc = textfile_read_private(path, "TLS key", buf, PEM_MAX, &n, why, whylen);
    if (rc == 0 && !strstr(buf, "PRIVATE KEY-----")) {
        snprintf(why, whylen, "TLS key %s: no PEM private key in it", path);
        rc = -EINVAL;
    }
    explicit_bzero(buf, PEM_MAX);
    free(buf);
    return rc;
}

/* The PSK file: private, "identity:hexkey" lines (nbdkit's and libnbd's
 * format), one of them for identity. */
static int check_psk(const char *path, const char *identity, char *why, size_t whylen)
{
    char *buf = malloc(PEM_MAX);
    size_t n, idlen = strlen(identity);
    unsigned line = 0;
    bool found = false;
    int rc;

    if (!buf)
        return -ENOMEM;
    rc = textfile_read_private(path, "TLS PSK file", buf, PEM_MAX, &n, why, whylen);
    for (char *s = buf; rc == 0 && *s; line++) {
        size_t len = strcspn(s, "\n");
        char *colon = memchr(s, ':', len);
        size_t hex = colon ? len - (size_t)(colon + 1 - s) : 0;
        bool ok = colon && colon > s && hex > 0 && hex % 2 == 0;
        for (size_t i = 0; ok && i < hex; i++)
            ok = isxdigit((unsigned char)colon[1 + i]);
        if (len && !ok) {
            snprintf(why, whylen, "TLS PSK file %s: line %u: expected IDENTITY:HEXKEY", path,
                     line + 1);
            rc = -EINVAL;
        }
        if (ok && (size_t)(colon - s) == idlen && memcmp(s, identity, idlen) == 0)
            found = true;
        s += len + (s[len] == '\n');
    }
    if (rc == 0 && !found) {
        snprintf(why, whylen,
                 "TLS PSK file %s has no key for identity '%s' (tls_psk_identity; the host "
                 "name by default)",
                 path, identity);
        rc = -ENOENT;
    }
    explicit_bzero(buf, PEM_MAX);
    free(buf);
    return rc;
}

int tls_check(const struct hp_config *cfg, char *why, size_t whylen)
{
    const struct hp_tls *t = cfg->tls;
    int rc;

    if (!t)
        return 0;
    struct nbd_handle *h = nbd_create();
    bool supported = h && nbd_supports_tls(h) == 1;
    if (h)
        nbd_close(h);
    if (!supported) {
        /* what asked for TLS: tls = on/require, or (tls = auto) the files */
        const char *key = cfg->tls_mode == HP_TLS_ON        ? "tls = on"
                          : cfg->tls_mode == HP_TLS_REQUIRE ? "tls = require"
                          : *t->psk_file                    ? "tls_psk_file"
                                                            : "tls_ca_file";
        snprintf(why, whylen,
                 "[nbd] %s in %s asks for TLS, but this homeport was built without TLS (its "
                 "libnbd has no GnuTLS): set tls = off, or install a homeport built with TLS "
                 "(homeport version says \"TLS for NBD\")",
                 key, cfg->source ? cfg->source : "the configuration");
        return -EPROTONOSUPPORT;
    }
    if (!t->psk_identity) {
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    if (*t->psk_file)
        return check_psk(t->psk_file, t->psk_identity, why, whylen);
    rc = check_pem(t->ca_file, "TLS CA certificate", "CERTIFICATE", why, whylen);
    if (rc == 0 && *t->cert_file)
        rc = check_pem(t->cert_file, "TLS certificate", "CERTIFICATE", why, whylen);
    if (rc == 0 && *t->key_file)
        rc = check_key(t->key_file, why, whylen);
    return rc;
}

/* dir/name -> target, replaced atomically; no target: none. */
static int place_link(const char *dir, const char *name, const char *target)
{
    char path[4400], tmp[4450];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!*target)
        return unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    unlink(tmp);
    if (symlink(target, tmp) < 0)
        return -errno;
    if (rename(tmp, path) < 0) {
        int e = -errno;
        unlink(tmp);
        return e;
    }
    return 0;
}

int tls_setup(const struct hp_config *cfg, char *why, size_t whylen)
{
    struct hp_tls *t = cfg->tls;
    int rc = tls_check(cfg, why, whylen);

    if (rc < 0 || !t || *t->psk_file)
        return rc;
    if ((size_t)snprintf(t->cert_dir, sizeof t->cert_dir, "%s/tls", cfg->run_dir) >=
        sizeof t->cert_dir) {
        snprintf(why, whylen, "run_dir %s is too long", cfg->run_dir);
        return -ENAMETOOLONG;
    }
    rc = tree_mkdirs(t->cert_dir, 0700);
    if (rc == 0 && chmod(t->cert_dir, 0700) < 0)
        rc = -errno;
    if (rc == 0)
        rc = place_link(t->cert_dir, "ca-cert.pem", t->ca_file);
    if (rc == 0)
        rc = place_link(t->cert_dir, "client-cert.pem", t->cert_file);
    if (rc == 0)
        rc = place_link(t->cert_dir, "client-key.pem", t->key_file);
    if (rc == 0)
        rc = place_link(t->cert_dir, "ca-crl.pem", "");
    if (rc < 0)
        snprintf(why, whylen, "cannot lay out the TLS files in %s: %s", t->cert_dir, strerror(-rc));
    return rc;
}

int tls_apply(struct nbd_handle *h, const struct hp_tls *t)
{
    tls_lib_init();
    if (nbd_set_tls(h, t->mode == HP_TLS_ON ? LIBNBD_TLS_ALLOW : LIBNBD_TLS_REQUIRE) < 0)
        return -1;
    if (*t->psk_file)
        return nbd_set_tls_psk_file(h, t->psk_file) < 0 ||
                       nbd_set_tls_username(h, t->psk_identity) < 0
                   ? -1
                   : 0;
    return nbd_set_tls_certificates(h, t->cert_dir) < 0 || nbd_set_tls_verify_peer(h, true) < 0 ? -1
                                                                                                : 0;
}

const char *tls_describe(const struct hp_tls *t, char *buf, size_t len)
{
    if (*t->psk_file)
        snprintf(buf, len, "PSK as %s", t->psk_identity);
    else
        snprintf(buf, len, "X.509%s", *t->cert_file ? " with this machine's certificate" : "");
    return buf;
}

const char *tls_hint(const struct hp_tls *t, const char *e, bool closed)
{
    if (!t || t->mode == HP_TLS_OFF)
        return e && strstr(e, "requires TLS")
                   ? "the server requires TLS: set the tls_* keys of [nbd] (homeport.conf(5))"
                   : "";
    if (closed || (e && strstr(e, "server refused TLS")))
        return t->mode == HP_TLS_REQUIRE ? "the server does not offer TLS, and tls = require" : "";
    /* A server that refuses the machine in the handshake closes the
     * connection: libnbd says so in GnuTLS's words or, when the close
     * comes first, as a plain disconnect. */
    if (!e || (!strstr(e, "gnutls") && !strstr(e, "TLS") &&
               !strstr(e, "server disconnected unexpectedly")))
        return "";
    if (strstr(e, "certificate verification") || strstr(e, "certificate is"))
        return "the server's certificate is not signed by tls_ca_file's CA, or not for that "
               "host name";
    if (*t->psk_file)
        return "TLS handshake failed: the server does not accept this machine's pre-shared key "
               "(tls_psk_file, tls_psk_identity)";
    return *t->cert_file ? "TLS handshake failed: the server does not accept this machine's "
                           "certificate (tls_cert_file)"
                         : "TLS handshake failed: the server may want a machine certificate "
                           "(tls_cert_file, tls_key_file)";
}
