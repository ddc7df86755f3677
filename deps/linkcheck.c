/* deps/linkcheck.c -- proves the static musl dependencies link and work.
 * Built and run by deps/linkcheck.sh; exits non-zero on any failure.
 * With -DNOTLS: the libraries of the homeport without TLS (no GnuTLS;
 * libnbd must then say it has no TLS). */
#define FUSE_USE_VERSION 35

#include <stdio.h>
#include <string.h>

#include <blkid.h>
#include <curl/curl.h>
#include <fuse_lowlevel.h>
#ifndef NOTLS
#include <gnutls/gnutls.h>
#endif
#include <libmount.h>
#include <libnbd.h>
#include <mbedtls/md.h>
#include <mbedtls/version.h>

static int passes, failures;

static void check(int ok, const char *what)
{
    printf("%-6s %s\n", ok ? "ok" : "FAIL", what);
    if (ok)
        passes++;
    else
        failures++;
}

int main(void)
{
    /* libmount + libblkid */
    struct libmnt_table *tb = mnt_new_table();
    check(tb != NULL, "mnt_new_table");
    if (tb) {
        /* Parsing mountinfo exercises the real parser (Linux only). */
        if (mnt_table_parse_file(tb, "/proc/self/mountinfo") == 0)
            printf("       libmount: %d entries in /proc/self/mountinfo\n",
                   mnt_table_get_nents(tb));
        mnt_free_table(tb);
    }
    const char *mntver = NULL;
    mnt_get_library_version(&mntver);
    printf("       libmount version %s\n", mntver ? mntver : "?");

    blkid_probe pr = blkid_new_probe();
    check(pr != NULL, "blkid_new_probe");
    if (pr)
        blkid_free_probe(pr);

    /* libnbd */
    struct nbd_handle *nbd = nbd_create();
    check(nbd != NULL, "nbd_create");
    if (nbd) {
        const char *v = nbd_get_version(nbd);
        check(v != NULL, "nbd_get_version");
        printf("       libnbd version %s\n", v ? v : "?");
        /* 1 only when libnbd was built with GnuTLS. */
#ifndef NOTLS
        check(nbd_supports_tls(nbd) == 1, "nbd_supports_tls");
#else
        check(nbd_supports_tls(nbd) == 0, "nbd_supports_tls is 0 (libnbd without TLS)");
#endif
        nbd_close(nbd);
    }

#ifndef NOTLS
    /* gnutls (libnbd's TLS): the library that was linked in */
    const char *gv = gnutls_check_version(NULL);
    printf("       gnutls %s\n", gv ? gv : "?");
    check(gnutls_check_version("3.7.0") != NULL, "gnutls_check_version >= 3.7.0");
#endif

    /* curl + mbedtls backend */
    check(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK, "curl_global_init");
    curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    int https = 0;
    for (const char *const *p = cv->protocols; p && *p; p++)
        if (strcmp(*p, "https") == 0)
            https = 1;
    printf("       curl %s, ssl %s, protocols:", cv->version,
           cv->ssl_version ? cv->ssl_version : "(none)");
    for (const char *const *p = cv->protocols; p && *p; p++)
        printf(" %s", *p);
    printf("\n");
    check(https, "curl supports https");
    check(cv->ssl_version && strstr(cv->ssl_version, "mbedTLS") != NULL,
          "curl ssl_version is mbedTLS");
    CURL *easy = curl_easy_init();
    check(easy != NULL, "curl_easy_init");
    if (easy)
        curl_easy_cleanup(easy);
    curl_global_cleanup();

    /* mbedtls HMAC-SHA256, RFC 4231 test case 2 */
    static const char want[] = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    const char *key = "Jefe", *data = "what do ya want for nothing?";
    unsigned char mac[32];
    char hex[65];
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    int rc = md ? mbedtls_md_hmac(md, (const unsigned char *)key, strlen(key),
                                  (const unsigned char *)data, strlen(data), mac)
                : -1;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    check(rc == 0 && strcmp(hex, want) == 0, "mbedtls HMAC-SHA256 (RFC 4231 #2)");
    printf("       mbedtls %s\n", MBEDTLS_VERSION_STRING);

    /* libfuse3 */
    printf("       fuse %s (API version %d)\n", fuse_pkgversion(), fuse_version());
    check(fuse_version() >= 30, "fuse_version");
    printf("       ");
    fflush(stdout);
    fuse_lowlevel_version(); /* prints the kernel interface version */

    printf("linkcheck: %d passed, %d failed\n", passes, failures);
    return failures ? 1 : 0;
}
