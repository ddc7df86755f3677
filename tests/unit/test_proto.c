/* The control socket's wire format: what the agent accepts and refuses. */
#include <errno.h>

#include "proto.h"
#include "tap.h"

static int parse(const char *s, struct proto_request *r, char *why, size_t len)
{
    return proto_parse_request(s, strlen(s), r, why, len);
}

int main(void)
{
    struct proto_request r, back;
    char why[256], buf[PROTO_MAX + 1];
    int n;

    ok(parse("homeport 1 account\nuser=alice\nservice=login\n", &r, why, sizeof why) == 0,
       "a full request parses");
    ok(r.verb == PV_ACCOUNT, "verb account");
    is_str(r.user, "alice", "user");
    is_str(r.service, "login", "service");
    ok(parse("homeport 1 ping\n", &r, why, sizeof why) == 0 && r.verb == PV_PING,
       "ping needs no user");
    ok(parse("homeport 1 close_session\nuser=bob\n", &r, why, sizeof why) == 0 &&
           r.verb == PV_CLOSE_SESSION && r.service[0] == '\0',
       "service is optional");

    static const struct {
        const char *req, *why;
        int rc;
    } bad[] = {
        {"", "malformed request (empty", -EPROTO},
        {"hello\n", "expected 'homeport VERSION VERB'", -EPROTO},
        {"homeport 2 account\nuser=a\n", "unsupported protocol version 2", -EPROTO},
        {"homeport 1 format_disk\nuser=a\n", "unknown verb", -EPROTO},
        {"homeport 1 release\nuser=a\n", "unknown verb", -EPROTO}, /* the agent's own */
        {"homeport 1 cache\nuser=a\n", "unknown verb", -EPROTO},   /* the agent's own */
        {"homeport 1 account extra\nuser=a\n", "unknown verb", -EPROTO},
        {"homeport 1 account\nuser=a", "does not end with a newline", -EPROTO},
        {"homeport 1 account\nuser\n", "expected key=value", -EPROTO},
        {"homeport 1 account\nuser=a\x01\n", "expected key=value", -EPROTO},
        {"homeport 1 account\nshell=/bin/sh\n", "unknown key 'shell'", -EPROTO},
        {"homeport 1 account\nuser=a\nuser=b\n", "duplicate key 'user'", -EPROTO},
        {"homeport 1 account\nuser=\n", "empty or too long value for 'user'", -EPROTO},
        {"homeport 1 account\nservice=x\n", "invalid user name '': it is missing", -EINVAL},
        {"homeport 1 account\nuser=../etc\n", "invalid user name '../etc'", -EINVAL},
        {"homeport 1 account\nuser=a b\n", "invalid user name 'a b'", -EINVAL},
        {"homeport 1 sync\nuser=a\n", "unknown verb", -EPROTO}, /* the agent's own */
        {"homeport 1 auth\nuser=a\n", "a secret goes with auth", -EPROTO},
        {"homeport 1 account\nuser=a\nsecret=41\n", "a secret goes with auth", -EPROTO},
        {"homeport 1 auth\nuser=a\nsecret=4\n", "malformed or duplicate secret", -EPROTO},
        {"homeport 1 auth\nuser=a\nsecret=4G\n", "malformed or duplicate secret", -EPROTO},
        {"homeport 1 auth\nuser=a\nsecret=4100\n", "malformed or duplicate secret", -EPROTO},
        {"homeport 1 auth\nuser=a\nsecret=41\nsecret=41\n", "malformed or duplicate", -EPROTO},
        /* the first line exactly: one space each, one way to write the version */
        {"homeport\t1\tping\n", "expected 'homeport VERSION VERB'", -EPROTO},
        {"homeport  1 ping\n", "expected 'homeport VERSION VERB'", -EPROTO},
        {"homeport1  ping\n", "expected 'homeport VERSION VERB'", -EPROTO},
        {"homeport +1 ping\n", "expected 'homeport VERSION VERB'", -EPROTO},
        {"homeport 01 ping\n", "expected 'homeport VERSION VERB'", -EPROTO},
        {"homeport 1 Ping\n", "expected 'homeport VERSION VERB'", -EPROTO},
        {"homeport 1\n", "expected 'homeport VERSION VERB'", -EPROTO},
        {"homeport 99999999999999999999 ping\n", "unsupported protocol version 999999", -EPROTO},
        {"homeport 1 pingpong\n", "unknown verb", -EPROTO},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        ok(parse(bad[i].req, &r, why, sizeof why) == bad[i].rc, "bad request #%zu refused", i);
        ok(strstr(why, bad[i].why) != NULL, "reason for #%zu: '%s'", i, why);
    }
    ok(proto_parse_request("homeport 1 ping\n\0x", 18, &r, why, sizeof why) == -EPROTO,
       "a NUL byte is refused");
    memset(buf, 'a', sizeof buf);
    ok(proto_parse_request(buf, PROTO_MAX + 1, &r, why, sizeof why) == -EPROTO,
       "more than PROTO_MAX bytes is refused");
    /* A datagram is not NUL-terminated: only its bytes are read (the
     * sanitizer build reports a read past this exact-size copy). */
    static const char dgram[] = "homeport 1 account\nuser=alice\n";
    char *exact = malloc(sizeof dgram - 1);
    if (exact) {
        memcpy(exact, dgram, sizeof dgram - 1);
        ok(proto_parse_request(exact, sizeof dgram - 1, &r, why, sizeof why) == 0 &&
               !strcmp(r.user, "alice"),
           "a request is read within its length");
        ok(proto_parse_request(exact, 12, &r, why, sizeof why) == -EPROTO,
           "a first line cut short is refused");
        free(exact);
    }
    memset(buf, 'a', sizeof buf);
    memcpy(buf, "homeport 1 account\nuser=", 24);
    buf[PROTO_MAX - 1] = '\n';
    ok(proto_parse_request(buf, PROTO_MAX, &r, why, sizeof why) == -EPROTO &&
           strstr(why, "too long value for 'user'"),
       "a PROTO_MAX-byte request with a long user: refused, '%s'", why);
    memcpy(buf, "homeport 1 account\nuser=alice\nservice=", 38);
    ok(proto_parse_request(buf, PROTO_MAX, &r, why, sizeof why) == -EPROTO &&
           strstr(why, "too long value for 'service'"),
       "a service longer than 63 bytes: refused, '%s'", why);

    r = (struct proto_request){.verb = PV_OPEN_SESSION};
    snprintf(r.user, sizeof r.user, "carol");
    snprintf(r.service, sizeof r.service, "lightdm");
    n = proto_format_request(&r, buf, sizeof buf);
    ok(n > 0 && proto_parse_request(buf, (size_t)n, &back, why, sizeof why) == 0 &&
           back.verb == PV_OPEN_SESSION && !strcmp(back.user, "carol") &&
           !strcmp(back.service, "lightdm"),
       "format then parse gives the request back");
    ok(proto_format_request(&r, buf, 10) == -ENAMETOOLONG, "a short buffer is reported");

    /* a password: any bytes but NUL, hex on the wire, back whole */
    r = (struct proto_request){.verb = PV_AUTH};
    snprintf(r.user, sizeof r.user, "carol");
    snprintf(r.secret, sizeof r.secret, "p\xc3\xa9 ss\nw=rd\x7f\\");
    n = proto_format_request(&r, buf, sizeof buf);
    ok(n > 0 && strstr(buf, "secret=70c3a92073730a773d72647f5c\n") != NULL,
       "a secret goes out in hex");
    ok(proto_parse_request(buf, (size_t)n, &back, why, sizeof why) == 0 && back.verb == PV_AUTH &&
           !strcmp(back.secret, r.secret),
       "and comes back whole");
    memset(r.secret, 'x', PROTO_SECRET_MAX);
    r.secret[PROTO_SECRET_MAX] = '\0';
    n = proto_format_request(&r, buf, sizeof buf);
    ok(n > 0 && proto_parse_request(buf, (size_t)n, &back, why, sizeof why) == 0 &&
           strlen(back.secret) == PROTO_SECRET_MAX,
       "a %d-byte password fits", PROTO_SECRET_MAX);

    enum proto_reply kind;
    const char *text;
    int err;
    n = (int)proto_format_reply(PR_PROGRESS, 0, "Checking\nuser...", buf, sizeof buf);
    ok(proto_parse_reply(buf, (size_t)n, &kind, &err, &text) == 0 && kind == PR_PROGRESS,
       "progress reply");
    is_str(text, "Checking user...", "control characters become spaces");
    n = (int)proto_format_reply(PR_ERROR, EBUSY, "busy home", buf, sizeof buf);
    ok(proto_parse_reply(buf, (size_t)n, &kind, &err, &text) == 0 && kind == PR_ERROR &&
           err == EBUSY,
       "error reply carries the errno");
    is_str(text, "busy home", "error text");
    n = (int)proto_format_reply(PR_OK, 0, "", buf, sizeof buf);
    ok(proto_parse_reply(buf, (size_t)n, &kind, &err, &text) == 0 && kind == PR_OK && !*text,
       "ok with no text");
    static const char *const bad_replies[] = {
        "", "ok", "fine thanks", "error x msg", "error 0 m", "error 99999 m"};
    for (size_t i = 0; i < sizeof bad_replies / sizeof bad_replies[0]; i++) {
        snprintf(buf, sizeof buf, "%s", bad_replies[i]);
        ok(proto_parse_reply(buf, strlen(buf), &kind, &err, &text) == -EPROTO,
           "malformed reply #%zu refused", i);
    }
    is_str(proto_verb_name(PV_CACHE), "cache", "every verb has a name");
    ok(proto_verb_name((enum proto_verb)99) == NULL, "no name for a non-verb");
    ok(proto_verb_from_pam("open_session") == PV_OPEN_SESSION &&
           proto_verb_from_pam("auth") == PV_AUTH && proto_verb_from_pam("password") == -1 &&
           proto_verb_from_pam(NULL) == -1,
       "PAM_TYPE mapping");
    return tap_done();
}
