/* proto: the control socket's wire format, spoken by the agent and its
 * clients (`homeport pam`).
 *
 * The socket is SOCK_SEQPACKET: one message is one datagram of at most
 * PROTO_MAX bytes, so there is no framing to get wrong.  All text, no NUL
 * and no control characters but the newlines that separate lines.
 *
 *   request:  "homeport 1 VERB\n" then "key=value\n" lines (user, service;
 *             auth only: secret, the password in hex, for home_mode = sync)
 *   replies:  any number of "progress TEXT", then one "ok TEXT" or
 *             "error ERRNO TEXT" (ERRNO a positive errno value)
 *
 * A request the agent cannot parse gets an error reply and the connection
 * is closed.
 */
#ifndef HOMEPORT_PROTO_H
#define HOMEPORT_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "user.h"

#define PROTO_VERSION 1
#define PROTO_MAX 4096

#define PROTO_SECRET_MAX 255 /* bytes of a password */

/* PV_RELEASE, PV_CACHE and PV_SYNC are the agent's own, never accepted from
 * a client. */
enum proto_verb {
    PV_PING,
    PV_ACCOUNT,
    PV_OPEN_SESSION,
    PV_CLOSE_SESSION,
    PV_AUTH, /* the password from pam_exec expose_authtok, kept for the mount */
    PV_RELEASE,
    PV_CACHE,
    PV_SYNC, /* a pass during the session (home_mode = sync) */
};

struct proto_request {
    enum proto_verb verb;
    char user[HP_USER_NAME_MAX + 1];   /* empty for ping */
    char service[64];                  /* PAM_SERVICE, may be empty */
    char secret[PROTO_SECRET_MAX + 1]; /* auth: the password (decoded), else empty */
};

enum proto_reply { PR_PROGRESS, PR_OK, PR_ERROR };

/* "account", ...; NULL for a value that is not a verb. */
const char *proto_verb_name(enum proto_verb v);

/* Map a PAM_TYPE ("auth", "account", "open_session", "close_session") to a verb.
 * -1 when it is none of those. */
int proto_verb_from_pam(const char *pam_type);

/* Parse a request.  0, or -EPROTO / -EINVAL with the reason in why.
 * The agent's own verbs are never accepted here.  An auth request must
 * carry a secret, and only an auth request may. */
int proto_parse_request(const char *buf, size_t len, struct proto_request *r, char *why,
                        size_t whylen);

/* Format a request into buf.  Returns the length, or -ENAMETOOLONG. */
int proto_format_request(const struct proto_request *r, char *buf, size_t len);

/* Format a reply; err is used by PR_ERROR only.  Control characters in
 * text become spaces.  Returns the length (text is cut to fit). */
size_t proto_format_reply(enum proto_reply kind, int err, const char *text, char *buf, size_t len);

/* Parse a reply in place (buf is NUL-terminated by the call, so it needs
 * len + 1 bytes).  0 or -EPROTO. */
int proto_parse_reply(char *buf, size_t len, enum proto_reply *kind, int *err, const char **text);

#endif
