/* sign: the reference deployment's request signature, and its secret.
 *
 * A signed request carries data (a JSON text) and hmac = "<ts>:<hex>",
 * where ts is the Unix time in seconds and hex the lowercase HMAC-SHA256 of
 * data immediately followed by the decimal ts, keyed with the site's
 * shared secret.  Servers accept a signature for 120 s, so the clocks of
 * the client and the servers must agree within that.
 */
#ifndef HOMEPORT_SIGN_H
#define HOMEPORT_SIGN_H

#include <stddef.h>

/* "<ts>:<64 hex digits>" and its NUL */
#define SIGN_MAX 96

/* Sign data at time ts into out (SIGN_MAX bytes).  0 or -EINVAL. */
int sign_request(const void *key, size_t keylen, const char *data, long long ts,
                 char out[SIGN_MAX]);

/* Read the secret from path: a regular file that neither group nor others
 * may read or write (it grants the right to log anyone in or out), not
 * empty, at most 4 KiB; one trailing newline is not part of it.  *key is
 * malloc'ed (wipe and free it with sign_secret_free).  0 or -errno, with
 * the reason in why. */
int sign_secret_load(const char *path, char **key, size_t *len, char *why, size_t whylen);
void sign_secret_free(char *key, size_t len);

#endif
