#include "sign.h"

#include "textfile.h"

#include <errno.h>
#include <mbedtls/md.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_MAX 4096

int sign_request(const void *key, size_t keylen, const char *data, long long ts, char out[SIGN_MAX])
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    mbedtls_md_context_t ctx;
    unsigned char mac[32];
    char tsbuf[24];
    int n = snprintf(tsbuf, sizeof tsbuf, "%lld", ts), rc;

    if (!md || ts < 0)
        return -EINVAL;
    mbedtls_md_init(&ctx);
    rc = mbedtls_md_setup(&ctx, md, 1);
    if (rc == 0)
        rc = mbedtls_md_hmac_starts(&ctx, key, keylen);
    if (rc == 0)
        rc = mbedtls_md_hmac_update(&ctx, (const unsigned char *)data, strlen(data));
    if (rc == 0)
        rc = mbedtls_md_hmac_update(&ctx, (const unsigned char *)tsbuf, (size_t)n);
    if (rc == 0)
        rc = mbedtls_md_hmac_finish(&ctx, mac);
    mbedtls_md_free(&ctx);
    if (rc != 0)
        return -EINVAL;
    char *p = out + snprintf(out, SIGN_MAX, "%s:", tsbuf);
    for (size_t i = 0; i < sizeof mac; i++)
        p += snprintf(p, 3, "%02x", mac[i]);
    return 0;
}

int sign_secret_load(const char *path, char **key, size_t *len, char *why, size_t whylen)
{
    char *buf = malloc(SECRET_MAX + 1);
    size_t n;
    int rc;

    *key = NULL;
    *len = 0;
    if (!buf)
        return -ENOMEM;
    rc = textfile_read_private(path, "secret", buf, SECRET_MAX + 1, &n, why, whylen);
    if (rc < 0) {
        sign_secret_free(buf, SECRET_MAX + 1);
        return rc;
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n == 0) {
        sign_secret_free(buf, SECRET_MAX + 1);
        snprintf(why, whylen, "secret %s is empty", path);
        return -EINVAL;
    }
    *key = buf;
    *len = n;
    return 0;
}

void sign_secret_free(char *key, size_t len)
{
    if (!key)
        return;
    /* the compiler may not drop this: key is freed just after */
    volatile char *p = key;
    for (size_t i = 0; i < len; i++)
        p[i] = 0;
    free(key);
}
