/* http: signed POSTs to the site's services (home file servers, presence)
 * with libcurl.
 *
 * The body is a form: data=<json>&hmac=<ts>:<hex> (sign.h).  Connection
 * failures and 5xx answers are retried with backoff (0.5 s, 1 s, 2 s...);
 * 4xx answers are final.  No proxy is used (the environment's *_proxy
 * variables are ignored: these services are on the site's network).
 * HTTPS verifies the peer and its host name, against ca_file or the
 * system's bundle.
 */
#ifndef HOMEPORT_HTTP_H
#define HOMEPORT_HTTP_H

#include <stddef.h>

struct http_opts {
    unsigned connect_timeout_ms;
    unsigned timeout_ms; /* the whole call, retries included */
    unsigned retries;    /* attempts after the first, while time is left */
    const char *ca_file; /* NULL or "": the default bundle */
    const void *key;     /* the signing secret */
    size_t keylen;
    /* Called about every tick_ms while an attempt waits for its answer
     * (a home file server may take minutes to move an image), with the
     * time spent so far; NULL for none. */
    void (*tick)(void *ctx, unsigned elapsed_ms);
    void *ctx;
    unsigned tick_ms;
};

struct http_reply {
    long status; /* 0: no answer */
    char body[1024];
};

/* How an answer's body is kept (curl hands it over in pieces): append the
 * n bytes at p to r->body, which holds *len bytes so far; what does not fit
 * in it is dropped.  r->body stays NUL-terminated (a NUL in the body cuts
 * it there for its readers). */
void http_body_add(struct http_reply *r, size_t *len, const char *p, size_t n);

/* The whole body made one line, for logs and greeters: newlines, CRs and
 * tabs become spaces, trailing spaces are dropped. */
void http_body_tidy(struct http_reply *r);

/* Once, before any thread or fork that may use curl. */
int http_global_init(void);

/* POST the signed data to url.  Returns 0 when the server answered (any
 * status: see r), or -errno when it could not be reached after the retries
 * (-ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH, -EPROTO for TLS trouble), with
 * curl's reason in why. */
int http_post_signed(const char *url, const char *data, const struct http_opts *o,
                     struct http_reply *r, char *why, size_t whylen);

#endif
