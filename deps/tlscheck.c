/* deps/tlscheck.c -- one TLS connection with the static libnbd (GnuTLS).
 * Built and run by deps/tlscheck.sh against a captive nbdkit:
 *
 *   tlscheck SOCKET psk USERNAME PSKFILE
 *   tlscheck SOCKET x509 CERTDIR
 *
 * Connects to the Unix socket with TLS required, checks that TLS was
 * negotiated, writes a 4 KiB block at offset 4096 and reads it back.
 * Exit status: 0 all well, 3 the connection (TLS handshake) failed,
 * 1 anything else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>

#define BLOCK 4096

static int fail(struct nbd_handle *h, const char *what, int rc)
{
    fprintf(stderr, "tlscheck: %s: %s\n", what, nbd_get_error());
    nbd_close(h);
    return rc;
}

int main(int argc, char **argv)
{
    if (!((argc == 5 && strcmp(argv[2], "psk") == 0) ||
          (argc == 4 && strcmp(argv[2], "x509") == 0))) {
        fprintf(stderr, "usage: tlscheck SOCKET psk USERNAME PSKFILE\n"
                        "       tlscheck SOCKET x509 CERTDIR\n");
        return 1;
    }
    struct nbd_handle *h = nbd_create();
    if (!h) {
        fprintf(stderr, "tlscheck: nbd_create: %s\n", nbd_get_error());
        return 1;
    }
    if (nbd_supports_tls(h) != 1)
        return fail(h, "libnbd has no TLS support", 1);
    if (nbd_set_tls(h, LIBNBD_TLS_REQUIRE) == -1)
        return fail(h, "nbd_set_tls", 1);
    if (strcmp(argv[2], "psk") == 0) {
        if (nbd_set_tls_username(h, argv[3]) == -1 || nbd_set_tls_psk_file(h, argv[4]) == -1)
            return fail(h, "nbd_set_tls_username/psk_file", 1);
    } else {
        if (nbd_set_tls_certificates(h, argv[3]) == -1 || nbd_set_tls_verify_peer(h, true) == -1)
            return fail(h, "nbd_set_tls_certificates/verify_peer", 1);
    }
    if (nbd_connect_unix(h, argv[1]) == -1)
        return fail(h, "nbd_connect_unix", 3);
    if (nbd_get_tls_negotiated(h) != 1)
        return fail(h, "connected, but TLS was not negotiated", 1);

    static char out[BLOCK], in[BLOCK];
    for (int i = 0; i < BLOCK; i++)
        out[i] = (char)(i * 7 + 1);
    if (nbd_pwrite(h, out, BLOCK, BLOCK, 0) == -1)
        return fail(h, "nbd_pwrite", 1);
    if (nbd_pread(h, in, BLOCK, BLOCK, 0) == -1)
        return fail(h, "nbd_pread", 1);
    if (memcmp(in, out, BLOCK) != 0) {
        fprintf(stderr, "tlscheck: the block read back differs from the one written\n");
        nbd_close(h);
        return 1;
    }
    int64_t size = nbd_get_size(h);
    if (nbd_shutdown(h, 0) == -1)
        return fail(h, "nbd_shutdown", 1);
    nbd_close(h);
    printf("tlscheck: %s: TLS negotiated, export size %lld, %d bytes written and read back\n",
           argv[2], (long long)size, BLOCK);
    return 0;
}
