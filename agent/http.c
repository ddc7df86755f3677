#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "sign.h"

int http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -ENOMEM;
}

struct sink {
    struct http_reply *r;
    size_t len;
};

void http_body_add(struct http_reply *r, size_t *len, const char *p, size_t n)
{
    size_t room = sizeof r->body - 1 - *len, take = n < room ? n : room;

    memcpy(r->body + *len, p, take);
    *len += take;
    r->body[*len] = '\0';
}

void http_body_tidy(struct http_reply *r)
{
    for (char *p = r->body; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    size_t bl = strlen(r->body);
    while (bl > 0 && r->body[bl - 1] == ' ')
        r->body[--bl] = '\0';
}

static size_t on_body(char *p, size_t size, size_t n, void *v)
{
    struct sink *s = v;

    http_body_add(s->r, &s->len, p, size * n);
    return size * n; /* the rest is dropped, not an error */
}

struct ticker {
    const struct http_opts *o;
    int64_t t0;
    unsigned next_ms;
};

static unsigned elapsed_ms(int64_t t0)
{
    return (unsigned)(clock_ms() - t0);
}

static int on_progress(void *v, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct ticker *t = v;
    unsigned ms = elapsed_ms(t->t0);

    (void)dt, (void)dn, (void)ut, (void)un;
    if (ms >= t->next_ms) {
        t->o->tick(t->o->ctx, ms);
        t->next_ms = ms + t->o->tick_ms;
    }
    return 0;
}

/* curl's failure as an errno */
static int curl_errno(CURLcode c)
{
    switch (c) {
    case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST: return -EHOSTUNREACH;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE: return -EPROTO;
    case CURLE_OUT_OF_MEMORY: return -ENOMEM;
    default: return -EIO;
    }
}

/* One attempt.  CURLE_OK with r filled, or curl's error (in err, CURL_ERROR_SIZE
 * bytes). */
static CURLcode attempt(CURL *c, const char *url, const char *data, const struct http_opts *o,
                        unsigned timeout_ms, struct http_reply *r, char *err)
{
    char hmac[SIGN_MAX];
    struct sink sink = {r, 0};
    struct ticker t = {o, 0, o->tick_ms};
    CURLcode rc;

    r->status = 0;
    r->body[0] = '\0';
    err[0] = '\0';
    /* signed afresh for each attempt: a retry may come after the window */
    if (sign_request(o->key, o->keylen, data, (long long)time(NULL), hmac) < 0)
        return CURLE_BAD_FUNCTION_ARGUMENT;
    char *d = curl_easy_escape(c, data, 0), *h = curl_easy_escape(c, hmac, 0);
    if (!d || !h) {
        curl_free(d);
        curl_free(h);
        return CURLE_OUT_OF_MEMORY;
    }
    size_t n = strlen(d) + strlen(h) + 16;
    char body[n];
    snprintf(body, n, "data=%s&hmac=%s", d, h);
    curl_free(d);
    curl_free(h);

    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "homeport");
    if (o->ca_file && *o->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
    if (o->tick && o->tick_ms) {
        t.t0 = clock_ms();
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    }
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    else if (!err[0])
        snprintf(err, CURL_ERROR_SIZE, "%s", curl_easy_strerror(rc));
    http_body_tidy(r); /* one line, for logs and greeters */
    return rc;
}

int http_post_signed(const char *url, const char *data, const struct http_opts *o,
                     struct http_reply *r, char *why, size_t whylen)
{
    char err[CURL_ERROR_SIZE];
    CURL *c = curl_easy_init();
    CURLcode rc = CURLE_OK;
    unsigned backoff = 500, tries = 0;
    int64_t t0;

    if (!c) {
        snprintf(why, whylen, "cannot start an HTTP request: out of memory");
        return -ENOMEM;
    }
    t0 = clock_ms();
    for (;;) {
        unsigned spent = elapsed_ms(t0);
        rc = attempt(c, url, data, o, o->timeout_ms > spent ? o->timeout_ms - spent : 1, r, err);
        tries++;
        if (rc == CURLE_OK && r->status < 500)
            break;
        if (rc == CURLE_BAD_FUNCTION_ARGUMENT || rc == CURLE_OUT_OF_MEMORY ||
            rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
            break; /* retrying would change nothing */
        if (tries > o->retries || elapsed_ms(t0) + backoff >= o->timeout_ms)
            break;
        log_debug("%s: %s; attempt %u in %u ms", url, rc == CURLE_OK ? "server error" : err,
                  tries + 1, backoff);
        clock_sleep_ms(backoff);
        backoff = clock_doubled(backoff, 8000);
    }
    curl_easy_cleanup(c);
    if (rc == CURLE_OK)
        return 0;
    snprintf(why, whylen, "%s (%u attempt%s)", err, tries, tries > 1 ? "s" : "");
    return curl_errno(rc);
}
