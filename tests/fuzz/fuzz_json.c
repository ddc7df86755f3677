/* json: the services' answers.  The input is an HTTP body, handed to the
 * code in pieces the way curl does (http_body_add, split where the first
 * byte says), made one line (http_body_tidy), then read as the home file
 * server's answer and the presence service's (remote_hfs_answer,
 * remote_presence_answer) under the status the second byte picks; and
 * json_get_uint on the whole input with a key from it.  Also json_str,
 * which must always print one valid JSON string (checked strictly here:
 * RFC 8259, UTF-8 without overlong forms or surrogates).
 *
 * Checked: an answer taken has a port of 1 to 65535 and a label; every
 * message is NUL-terminated and cut to its buffer; json_get_uint only
 * says yes with a value within max that the text holds. */
#include "config.h"
#include "fuzz.h"
#include "http.h"
#include "json.h"
#include "remote.h"

static struct hp_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (config_defaults(&cfg) < 0)
        abort();
    return 0;
}

static void check_str(const char *s)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    if (!f)
        abort();
    json_str(f, s);
    fclose(f);
    FZ_CHECK(fz_json_string_valid(out, len), "json_str printed invalid JSON: %s", out);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 200, 200, 423, 403, 404, 500, 502, 0, 301};
    static const char *const urls[] = {"http://hfs3.example.org:20100/get_hfs",
                                       "https://[fd00::1]:443/get_hfs", "http://h/get_hfs"};
    struct http_reply r;
    struct hp_server srv;
    char why[600];
    unsigned long v;
    size_t len = 0;

    if (size < 2)
        return 0;
    const char *body = (const char *)data + 2;
    size_t blen = size - 2;

    /* json_get_uint: the text is the body, the key what follows its first NUL */
    char *text = fz_str(data + 2, blen);
    const char *nul = memchr(text, '\0', blen),
               *key = nul && nul + 1 < text + blen ? nul + 1 : "port";
    unsigned long max = data[0] & 1 ? 65535 : ~0UL;
    if (json_get_uint(text, key, max, &v) == 0) {
        FZ_CHECK(v <= max, "%lu above max %lu", v, max);
        FZ_CHECK(strstr(text, key), "found a key the text does not hold");
    }
    check_str(text);
    if (nul)
        check_str(nul + 1);
    free(text);

    /* the body as curl hands it over */
    memset(&r, 0xa5, sizeof r);
    r.body[0] = '\0';
    r.status = statuses[data[1] % 10];
    size_t cut = data[0] % 8 * 128 + (size_t)data[0] / 8;
    cut = cut < blen ? cut : blen;
    http_body_add(&r, &len, body, cut);
    http_body_add(&r, &len, body + cut, blen - cut);
    FZ_CHECK(len == (blen < sizeof r.body ? blen : sizeof r.body - 1), "kept %zu of %zu", len,
             blen);
    http_body_tidy(&r);
    FZ_CHECK(strlen(r.body) <= len && !strpbrk(r.body, "\n\r\t"), "body not one line");

    for (size_t u = 0; u < 3; u++) {
        memset(&srv, 0, sizeof srv);
        why[0] = '\0';
        int rc = remote_hfs_answer(&cfg, "alice", urls[u], &r, &srv, why, sizeof why);
        if (rc == 0) {
            unsigned long port = strtoul(srv.port, NULL, 10);
            FZ_CHECK(r.status == 200 && port >= 1 && port <= 65535 && srv.host[0] && srv.label[0],
                     "bad server %s from '%s'", srv.label, r.body);
        } else {
            FZ_CHECK(rc == -EPROTO || rc == -EPERM || rc == -EREMOTEIO, "rc %d", rc);
            FZ_CHECK(why[0] && strlen(why) < sizeof why, "no reason");
        }
    }
    cfg.presence_fail_open = data[1] / 10 % 2;
    for (int op = PRESENCE_LOGIN; op <= PRESENCE_LOGOUT; op++) {
        bool open = op == PRESENCE_LOGIN && cfg.presence_fail_open && r.status >= 500;
        why[0] = '\0';
        int rc = remote_presence_answer(&cfg, (enum presence_op)op, "alice",
                                        "http://presence:20132/login", &r, why, sizeof why);
        FZ_CHECK(rc == 0 || rc == -EACCES || rc == -EPERM || rc == -EREMOTEIO, "rc %d", rc);
        FZ_CHECK(rc == 0 ? r.status == 200 || (open && why[0]) : why[0] != '\0', "rc %d, why '%s'",
                 rc, why);
    }
    return 0;
}
