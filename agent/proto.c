#include "proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "user.h"

static const char *const verbs[] = {"ping", "account", "open_session", "close_session",
                                    "auth", "release", "cache",        "sync"};

const char *proto_verb_name(enum proto_verb v)
{
    return (unsigned)v < sizeof verbs / sizeof verbs[0] ? verbs[v] : NULL;
}

int proto_verb_from_pam(const char *pam_type)
{
    for (int v = PV_ACCOUNT; v <= PV_AUTH; v++)
        if (pam_type && strcmp(pam_type, verbs[v]) == 0)
            return v;
    return -1;
}

/* Text a person may read: printable ASCII or UTF-8 bytes, no controls. */
static bool clean_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* n hex digits into out (n/2 bytes and a NUL): no NUL byte in the result. */
static int unhex(const char *h, size_t n, char *out)
{
    if (n == 0 || n % 2 || n / 2 > PROTO_SECRET_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i += 2) {
        int v = 0;
        for (size_t k = i; k < i + 2; k++) {
            char c = h[k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return -EINVAL;
            v = v * 16 + d;
        }
        if (v == 0)
            return -EINVAL;
        out[i / 2] = (char)v;
    }
    out[n / 2] = '\0';
    return 0;
}

/* The first line, p..nl: "homeport VERSION VERB" with single spaces, read
 * within its bytes (a datagram is not NUL-terminated).  The verb, or -1
 * with the reason in why. */
static int parse_first_line(const char *p, const char *nl, char *why, size_t whylen)
{
    static const char magic[] = "homeport ";
    const size_t mlen = sizeof magic - 1, line = (size_t)(nl - p);
    const char *q = p + mlen, *name;
    int version = 0;

    if (line <= mlen || memcmp(p, magic, mlen) != 0 || *q < '0' || *q > '9')
        goto malformed;
    if (*q == '0' && q + 1 < nl && q[1] >= '0' && q[1] <= '9')
        goto malformed; /* one way to write a version */
    for (; q < nl && *q >= '0' && *q <= '9'; q++)
        version = version > 99999 ? 999999 : version * 10 + (*q - '0');
    if (q == nl || *q++ != ' ' || q == nl || *q < 'a' || *q > 'z')
        goto malformed;
    if (version != PROTO_VERSION) {
        snprintf(why, whylen, "unsupported protocol version %d (this agent speaks %d)", version,
                 PROTO_VERSION);
        return -1;
    }
    name = q;
    for (int v = PV_PING; v < PV_RELEASE; v++)
        if ((size_t)(nl - name) == strlen(verbs[v]) &&
            memcmp(name, verbs[v], strlen(verbs[v])) == 0)
            return v;
    snprintf(why, whylen, "unknown verb in '%.*s'", (int)(line > 60 ? 60 : line), p);
    return -1;
malformed:
    snprintf(why, whylen, "malformed request: expected 'homeport VERSION VERB' first");
    return -1;
}

int proto_parse_request(const char *buf, size_t len, struct proto_request *r, char *why,
                        size_t whylen)
{
    const char *p = buf, *end = buf + len, *nl;
    int verb;

    memset(r, 0, sizeof *r);
    if (len == 0 || len > PROTO_MAX || memchr(buf, '\0', len)) {
        snprintf(why, whylen, "malformed request (empty, too long or binary)");
        return -EPROTO;
    }
    nl = memchr(p, '\n', len);
    if (!nl) {
        snprintf(why, whylen, "malformed request: expected 'homeport VERSION VERB' first");
        return -EPROTO;
    }
    if ((verb = parse_first_line(p, nl, why, whylen)) < 0)
        return -EPROTO;
    r->verb = (enum proto_verb)verb;
    for (p = nl + 1; p < end; p = nl + 1) {
        const char *eq;
        nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            snprintf(why, whylen, "malformed request: last line does not end with a newline");
            return -EPROTO;
        }
        eq = memchr(p, '=', (size_t)(nl - p));
        if (!eq || !clean_text(p, (size_t)(nl - p))) {
            snprintf(why, whylen, "malformed request: expected key=value lines");
            return -EPROTO;
        }
        size_t klen = (size_t)(eq - p), vlen = (size_t)(nl - eq - 1);
        char *dst = NULL;
        size_t cap = 0;
        if (klen == 4 && !memcmp(p, "user", 4)) {
            dst = r->user;
            cap = sizeof r->user;
        } else if (klen == 7 && !memcmp(p, "service", 7)) {
            dst = r->service;
            cap = sizeof r->service;
        } else if (klen == 6 && !memcmp(p, "secret", 6)) {
            if (r->secret[0] || unhex(eq + 1, (size_t)(nl - eq - 1), r->secret) < 0) {
                snprintf(why, whylen, "malformed or duplicate secret in request");
                return -EPROTO;
            }
            continue;
        } else {
            snprintf(why, whylen, "unknown key '%.*s' in request", (int)(klen > 32 ? 32 : klen), p);
            return -EPROTO;
        }
        if (dst[0]) {
            snprintf(why, whylen, "duplicate key '%.*s' in request", (int)klen, p);
            return -EPROTO;
        }
        if (vlen == 0 || vlen >= cap) {
            snprintf(why, whylen, "empty or too long value for '%.*s'", (int)klen, p);
            return -EPROTO;
        }
        memcpy(dst, eq + 1, vlen);
        dst[vlen] = '\0';
    }
    if ((r->verb == PV_AUTH) != (r->secret[0] != '\0')) {
        snprintf(why, whylen, "a secret goes with auth, and only with auth");
        return -EPROTO;
    }
    if (r->verb != PV_PING) {
        const char *problem = r->user[0] ? user_name_problem(r->user) : "is missing";
        if (problem) {
            snprintf(why, whylen, "invalid user name '%s': it %s", r->user, problem);
            return -EINVAL;
        }
    }
    return 0;
}

int proto_format_request(const struct proto_request *r, char *buf, size_t len)
{
    const char *name = proto_verb_name(r->verb);
    int n = snprintf(buf, len, "homeport %d %s\n", PROTO_VERSION, name ? name : "?");

    if (n >= 0 && r->user[0])
        n += snprintf(buf + n, len > (size_t)n ? len - (size_t)n : 0, "user=%s\n", r->user);
    if (n >= 0 && r->service[0])
        n += snprintf(buf + n, len > (size_t)n ? len - (size_t)n : 0, "service=%s\n", r->service);
    if (n >= 0 && r->secret[0]) {
        n += snprintf(buf + n, len > (size_t)n ? len - (size_t)n : 0, "secret=");
        for (const char *c = r->secret; *c && n >= 0; c++)
            n +=
                snprintf(buf + n, len > (size_t)n ? len - (size_t)n : 0, "%02x", (unsigned char)*c);
        n += snprintf(buf + n, len > (size_t)n ? len - (size_t)n : 0, "\n");
    }
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : n;
}

size_t proto_format_reply(enum proto_reply kind, int err, const char *text, char *buf, size_t len)
{
    int n;

    if (kind == PR_ERROR)
        n = snprintf(buf, len, "error %d %s", err > 0 ? err : EIO, text);
    else
        n = snprintf(buf, len, "%s %s", kind == PR_OK ? "ok" : "progress", text);
    if (n < 0)
        n = 0;
    if ((size_t)n >= len)
        n = (int)len - 1;
    for (int i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
            buf[i] = ' ';
    return (size_t)n;
}

int proto_parse_reply(char *buf, size_t len, enum proto_reply *kind, int *err, const char **text)
{
    char *sp;

    buf[len] = '\0';
    *err = 0;
    if (strlen(buf) != len || !clean_text(buf, len))
        return -EPROTO;
    sp = strchr(buf, ' ');
    if (!sp)
        return -EPROTO;
    *sp = '\0';
    *text = sp + 1;
    if (!strcmp(buf, "progress"))
        *kind = PR_PROGRESS;
    else if (!strcmp(buf, "ok"))
        *kind = PR_OK;
    else if (!strcmp(buf, "error")) {
        char *end;
        long e = strtol(sp + 1, &end, 10);
        if (end == sp + 1 || e <= 0 || e > 4095 || (*end != ' ' && *end))
            return -EPROTO;
        *kind = PR_ERROR;
        *err = (int)e;
        *text = *end ? end + 1 : end;
    } else
        return -EPROTO;
    return 0;
}
