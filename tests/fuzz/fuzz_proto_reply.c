/* proto reply: an agent's answer as `homeport pam` reads it
 * (proto_parse_reply in place, in a buffer of len + 1 bytes).
 *
 * Checked: an accepted reply has a known kind, an errno of 1 to 4095 for
 * an error, a text inside the buffer without control characters; and
 * formatting that reply again parses to the same thing.  Also: any text,
 * control characters and all, formats to a reply that parses. */
#include "fuzz.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), out[PROTO_MAX + 1];
    enum proto_reply kind, kind2;
    const char *text, *text2;
    int err, err2, rc;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    rc = proto_parse_reply(buf, size, &kind, &err, &text);
    FZ_CHECK(rc == 0 || rc == -EPROTO, "rc %d", rc);
    if (rc == 0) {
        FZ_CHECK(kind == PR_PROGRESS || kind == PR_OK || kind == PR_ERROR, "kind %d", (int)kind);
        FZ_CHECK(kind == PR_ERROR ? err > 0 && err <= 4095 : err == 0, "err %d", err);
        FZ_CHECK(text >= buf && text <= buf + size && text + strlen(text) <= buf + size,
                 "text outside the buffer");
        for (const char *c = text; *c; c++)
            FZ_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f, "control character in text");
        size_t n = proto_format_reply(kind, err, text, out, sizeof out);
        if (n < PROTO_MAX) { /* not cut */
            char *copy = strdup(text);
            rc = proto_parse_reply(out, n, &kind2, &err2, &text2);
            FZ_CHECK(rc == 0 && kind2 == kind && err2 == err && copy && !strcmp(text2, copy),
                     "round trip changed the reply");
            free(copy);
        }
    }
    free(buf);

    /* the agent side: whatever the text, the reply is one clean datagram */
    char *s = fz_str(data, size);
    for (int k = PR_PROGRESS; k <= PR_ERROR; k++) {
        size_t n =
            proto_format_reply((enum proto_reply)k, size > 0 ? data[0] : 0, s, out, sizeof out);
        FZ_CHECK(n < sizeof out && strlen(out) == n, "reply length %zu", n);
        rc = proto_parse_reply(out, n, &kind2, &err2, &text2);
        FZ_CHECK(rc == 0 && (int)kind2 == k, "a formatted reply does not parse: '%s'", out);
    }
    free(s);
    return 0;
}
