/* proto request: a control-socket datagram as the agent reads it
 * (proto_parse_request on exactly the bytes received, not NUL-terminated).
 *
 * Checked: the reason is set on every refusal; an accepted request has
 * NUL-terminated fields, a valid user name (but for ping) and a secret
 * only with auth; formatting it and parsing that again gives the same
 * request (what `homeport pam` sends is what the agent reads). */
#include "fuzz.h"
#include "proto.h"
#include "user.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_request r, back;
    char why[256] = "", buf[PROTO_MAX + 1], why2[256];
    /* exactly size bytes on the heap: a read past them is an ASan report */
    char *msg = malloc(size ? size : 1);
    int rc, n;

    if (!msg)
        return 0;
    memcpy(msg, data, size);
    rc = proto_parse_request(msg, size, &r, why, sizeof why);
    free(msg);
    FZ_CHECK(rc == 0 || rc == -EPROTO || rc == -EINVAL, "rc %d", rc);
    if (rc < 0) {
        FZ_CHECK(why[0] && memchr(why, '\0', sizeof why), "refused without a reason");
        return 0;
    }
    FZ_CHECK(memchr(r.user, '\0', sizeof r.user) && memchr(r.service, '\0', sizeof r.service) &&
                 memchr(r.secret, '\0', sizeof r.secret),
             "a field not terminated");
    FZ_CHECK(r.verb <= PV_AUTH, "an agent's own verb accepted: %d", (int)r.verb);
    FZ_CHECK(r.verb == PV_PING || user_name_valid(r.user), "bad user '%s' accepted", r.user);
    FZ_CHECK((r.verb == PV_AUTH) == (r.secret[0] != '\0'), "secret without auth or auth without");
    FZ_CHECK(strlen(r.secret) <= PROTO_SECRET_MAX, "secret too long");

    n = proto_format_request(&r, buf, sizeof buf);
    FZ_CHECK(n > 0 && (size_t)n <= PROTO_MAX, "an accepted request does not format: %d", n);
    rc = proto_parse_request(buf, (size_t)n, &back, why2, sizeof why2);
    FZ_CHECK(rc == 0, "formatted request refused: %s", why2);
    FZ_CHECK(back.verb == r.verb && !strcmp(back.user, r.user) &&
                 !strcmp(back.service, r.service) && !strcmp(back.secret, r.secret),
             "round trip changed the request");
    /* a PAM type maps to a verb that parses back */
    FZ_CHECK(proto_verb_from_pam(proto_verb_name(r.verb)) == (r.verb == PV_PING ? -1 : (int)r.verb),
             "verb name and PAM type disagree");
    return 0;
}
