/* Signing, the secret file, and reading the services' answers. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "json.h"
#include "sign.h"
#include "tap.h"

static char dir[] = "/tmp/homeport-remote-XXXXXX";

/* A secret file with content and mode; returns its path (static). */
static const char *secret_file(const char *content, mode_t mode)
{
    static char path[128];
    FILE *f;

    snprintf(path, sizeof path, "%s/secret", dir);
    unlink(path);
    f = fopen(path, "w");
    if (!f)
        return path;
    fputs(content, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

int main(void)
{
    char sig[SIGN_MAX], why[512];
    char *key;
    size_t len;
    unsigned long v;

    /* the reference format; the expected values come from Python's
     * hmac.new(key, data + str(ts), sha256).hexdigest() */
    ok(sign_request("secret", 6, "{\"login\": \"alice\", \"hostname\": \"pc1\"}", 1700000000,
                    sig) == 0,
       "signing works");
    is_str(sig, "1700000000:a410533b0d43e55ca09faad09ce59c5494d5f1878febe9ae0776f8b5d5d44b59",
           "ts:hex over data followed by the decimal ts");
    char longkey[100];
    memset(longkey, 'k', sizeof longkey);
    ok(sign_request(longkey, sizeof longkey, "x", 0, sig) == 0, "a key longer than a block");
    is_str(sig, "0:ee241f7794ecfd2b0fdac6f263293e4513040b3bed29a58b07593f69ebe86d47",
           "long keys are hashed first, as HMAC says");
    ok(sign_request("k", 1, "x", -1, sig) == -EINVAL, "a negative time is refused");

    /* the secret file */
    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return tap_done();
    }
    ok(sign_secret_load(secret_file("s3cret\n", 0600), &key, &len, why, sizeof why) == 0,
       "mode 600 is accepted");
    ok(key && len == 6 && memcmp(key, "s3cret", 6) == 0, "one trailing newline is dropped");
    sign_secret_free(key, len);
    ok(sign_secret_load(secret_file("s3cret\n\n", 0400), &key, &len, why, sizeof why) == 0 &&
           len == 7,
       "only one newline is dropped");
    sign_secret_free(key, len);
    ok(sign_secret_load(secret_file("s3cret", 0640), &key, &len, why, sizeof why) == -EPERM,
       "group-readable is refused");
    ok(strstr(why, "has mode 0640") && strstr(why, "chmod 600"),
       "the message says the mode and "
       "the fix: %s",
       why);
    ok(sign_secret_load(secret_file("s3cret", 0604), &key, &len, why, sizeof why) == -EPERM,
       "other-readable is refused");
    ok(sign_secret_load(secret_file("\n", 0600), &key, &len, why, sizeof why) == -EINVAL &&
           strstr(why, "is empty"),
       "an empty secret is refused: %s", why);
    ok(sign_secret_load("/nonexistent/secret", &key, &len, why, sizeof why) == -ENOENT &&
           strstr(why, "/nonexistent/secret"),
       "a missing file is named: %s", why);
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ok(sign_secret_load(secret_file(big, 0600), &key, &len, why, sizeof why) == -EFBIG,
       "more than 4 KiB is refused");
    unlink(secret_file("", 0600));
    rmdir(dir);

    /* the HFS's answer */
    ok(json_get_uint("{\"port\": 10809}", "port", 65535, &v) == 0 && v == 10809, "port read");
    ok(json_get_uint(" {\"a\": \"x,}\", \"b\": true, \"port\":1 } ", "port", 65535, &v) == 0 &&
           v == 1,
       "other keys skipped, strings with , and } inside");
    ok(json_get_uint("{\"a\": \"q\\\"\", \"port\": 7}", "port", 65535, &v) == 0 && v == 7,
       "escaped quotes skipped");
    ok(json_get_uint("{\"port\": 70000}", "port", 65535, &v) == -EINVAL, "out of range");
    ok(json_get_uint("{\"port\": -1}", "port", 65535, &v) == -EINVAL, "negative");
    ok(json_get_uint("{\"port\": 1.5}", "port", 65535, &v) == -EINVAL, "not whole");
    ok(json_get_uint("{\"port\": \"10809\"}", "port", 65535, &v) == -EINVAL, "a string");
    ok(json_get_uint("{\"ports\": 1}", "port", 65535, &v) == -EINVAL, "another key");
    ok(json_get_uint("{\"port\": 1} x", "port", 65535, &v) == -EINVAL, "junk after");
    ok(json_get_uint("port: 1", "port", 65535, &v) == -EINVAL, "not an object");
    ok(json_get_uint("{\"port\": 1", "port", 65535, &v) == -EINVAL, "not closed");
    ok(json_get_uint("", "port", 65535, &v) == -EINVAL, "empty");

    /* json_str: what is not UTF-8 by RFC 3629 is escaped byte by byte */
    static const struct {
        const char *in, *out, *what;
    } strs[] = {
        {"caf\xc3\xa9", "\"caf\xc3\xa9\"", "2-byte UTF-8 kept"},
        {"\xef\xbf\xbf\xf0\x90\x80\x80", "\"\xef\xbf\xbf\xf0\x90\x80\x80\"",
         "U+FFFF, U+10000 kept"},
        {"\xe0\x80\xaf", "\"\\u00e0\\u0080\\u00af\"", "overlong 3-byte form escaped"},
        {"\xf0\x80\x80\xaf", "\"\\u00f0\\u0080\\u0080\\u00af\"", "overlong 4-byte form escaped"},
        {"\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\"", "a UTF-16 surrogate escaped"},
        {"\xf4\x90\x80\x80", "\"\\u00f4\\u0090\\u0080\\u0080\"", "past U+10FFFF escaped"},
        {"a\"\\\n\x01", "\"a\\\"\\\\\\n\\u0001\"", "quote, backslash, controls"},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        char *out = NULL;
        size_t olen = 0;
        FILE *f = open_memstream(&out, &olen);
        if (!f)
            break;
        json_str(f, strs[i].in);
        fclose(f);
        is_str(out, strs[i].out, "json_str: %s", strs[i].what);
        free(out);
    }

    /* an answer's body: 1023 bytes are kept, in as many pieces as curl likes */
    struct http_reply r;
    size_t blen = 0;
    char piece[700];
    memset(piece, 'b', sizeof piece);
    r.body[0] = '\0';
    http_body_add(&r, &blen, "x\r\n", 3);
    http_body_add(&r, &blen, piece, sizeof piece);
    http_body_add(&r, &blen, piece, sizeof piece);
    ok(blen == sizeof r.body - 1 && strlen(r.body) == blen && r.body[0] == 'x',
       "a body of 1403 bytes keeps its first 1023");
    http_body_tidy(&r);
    ok(!strncmp(r.body, "x  b", 4), "newlines become spaces");
    blen = 0;
    http_body_add(&r, &blen, "{\"port\": 1}\n\t \n", 16);
    http_body_tidy(&r);
    is_str(r.body, "{\"port\": 1}", "trailing blanks dropped");
    return tap_done();
}
