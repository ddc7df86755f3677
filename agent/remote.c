#include "remote.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "http.h"
#include "json.h"
#include "log.h"
#include "sign.h"

static struct {
    char *key;
    size_t len;
} secret;

bool remote_presence_on(const struct hp_config *cfg)
{
    return cfg->presence != 0;
}

static bool uses_services(const struct hp_config *cfg)
{
    return cfg->locator == HP_LOCATOR_HFS || remote_presence_on(cfg);
}

int remote_setup(const struct hp_config *cfg, char *why, size_t whylen)
{
    char *key = NULL;
    size_t len = 0;

    if (uses_services(cfg)) {
        int rc = sign_secret_load(cfg->secret_file, &key, &len, why, whylen);
        if (rc < 0)
            return rc;
    }
    remote_cleanup();
    secret.key = key;
    secret.len = len;
    return 0;
}

void remote_cleanup(void)
{
    sign_secret_free(secret.key, secret.len);
    secret.key = NULL;
    secret.len = 0;
}

static void opts_for(const struct hp_config *cfg, struct http_opts *o, unsigned timeout_ms)
{
    memset(o, 0, sizeof *o);
    o->connect_timeout_ms = cfg->http_connect_timeout_ms;
    o->timeout_ms = timeout_ms;
    o->retries = cfg->http_retries;
    o->ca_file = cfg->ca_file;
    o->key = secret.key;
    o->keylen = secret.len;
}

/* base (a template) expanded, without a trailing slash, then path */
static int service_url(const struct hp_config *cfg, const char *base, const char *path, char *out,
                       size_t len)
{
    int n = config_url_expand(base, cfg->hfs_number, out, len);
    if (n < 0)
        return n;
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
    if ((size_t)n + strlen(path) >= len)
        return -ENAMETOOLONG;
    memcpy(out + n, path, strlen(path) + 1);
    return 0;
}

/* The host of an http(s) URL, into srv (IPv6 brackets dropped). */
static int url_host(const char *url, struct hp_server *srv)
{
    const char *h = strstr(url, "://"), *end;

    if (!h)
        return -EINVAL;
    h += 3;
    if (*h == '[') {
        end = strchr(++h, ']');
        if (!end)
            return -EINVAL;
    } else {
        end = h + strcspn(h, ":/");
    }
    if (end == h || (size_t)(end - h) >= sizeof srv->host)
        return -EINVAL;
    memcpy(srv->host, h, (size_t)(end - h));
    srv->host[end - h] = '\0';
    return 0;
}

const char *remote_host_name(const struct hp_config *cfg, char *buf, size_t len)
{
    struct utsname u;

    if (*cfg->hostname)
        return cfg->hostname;
    if (uname(&u) < 0)
        return "localhost";
    snprintf(buf, len, "%s", u.nodename);
    return buf;
}

/* {"k1": "v1", "k2": N or "v2", ...} into a malloc'ed string.  Values with
 * is_num set are written bare. */
static char *json_object(const char *const *keys, const char *const *vals, const bool *is_num,
                         size_t n)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);

    if (!f)
        return NULL;
    fputc('{', f);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputs(", ", f);
        json_str(f, keys[i]);
        fputs(": ", f);
        if (is_num[i])
            fputs(vals[i], f);
        else
            json_str(f, vals[i]);
    }
    fputc('}', f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* A failed call as one sentence for people, from the step down to the
 * cause ("While WHAT: SERVICE URL: 404: reason").  Returns its -errno:
 * the transport's, -EPERM for a refused signature, else -EREMOTEIO. */
static int explain(const struct hp_config *cfg, const char *what, const char *service,
                   const char *url, int rc, const char *detail, const struct http_reply *r,
                   char *why, size_t whylen)
{
    if (rc < 0) {
        snprintf(why, whylen, "While %s: cannot reach the %s %s: %s", what, service, url, detail);
        return rc;
    }
    if (r->status == 403) {
        snprintf(why, whylen,
                 "While %s: the %s %s refused our signature (403%s%s): configuration error: "
                 "check that %s holds the site's secret and that the clock of this machine is "
                 "right",
                 what, service, url, r->body[0] ? ": " : "", r->body, cfg->secret_file);
        return -EPERM;
    }
    snprintf(why, whylen, "While %s: %s %s: %ld: %s", what, service, url, r->status,
             r->body[0] ? r->body : "(no reason given)");
    return -EREMOTEIO;
}

struct wait_ctx {
    const char *user;
    progress_fn progress;
    void *ctx;
};

static void migration_tick(void *v, unsigned elapsed_ms)
{
    struct wait_ctx *w = v;
    char msg[200];

    if (elapsed_ms < 1000) /* not at the start: only when it takes a while */
        return;
    snprintf(msg, sizeof msg,
             "The home of %s is being moved to its file server, please wait (%u s)...", w->user,
             elapsed_ms / 1000);
    log_info("%s", msg);
    if (w->progress)
        w->progress(w->ctx, msg);
}

int remote_locate(const struct hp_config *cfg, const char *user, struct hp_server *srv,
                  progress_fn progress, void *ctx, char *why, size_t whylen)
{
    char url[1100], num[16], detail[600], what[100];
    struct http_opts o;
    struct http_reply r;
    struct wait_ctx w = {user, progress, ctx};
    int rc;

    if (cfg->locator != HP_LOCATOR_HFS) {
        const struct hp_server *s = config_home_server(cfg);
        if (!s) {
            snprintf(why, whylen, "no home server configured ([home] server or [nbd] servers)");
            return -ENOENT;
        }
        *srv = *s;
        return 0;
    }
    if (service_url(cfg, cfg->hfs_url, "/get_hfs", url, sizeof url) < 0) {
        snprintf(why, whylen, "hfs_url %s: cannot make a URL of it", cfg->hfs_url);
        return -EINVAL;
    }
    snprintf(num, sizeof num, "%u", cfg->hfs_number);
    const char *keys[] = {"user", "hfs", "utype"}, *vals[] = {user, num, cfg->hfs_utype};
    const bool is_num[] = {false, true, false};
    char *data = json_object(keys, vals, is_num, 3);
    if (!data)
        return -ENOMEM;
    opts_for(cfg, &o, cfg->hfs_timeout_ms);
    o.tick = migration_tick;
    o.ctx = &w;
    o.tick_ms = cfg->progress_interval_ms;
    rc = http_post_signed(url, data, &o, &r, detail, sizeof detail);
    free(data);
    if (rc < 0) {
        snprintf(what, sizeof what, "retrieving the home of %s", user);
        return explain(cfg, what, "home file server", url, rc, detail, &r, why, whylen);
    }
    return remote_hfs_answer(cfg, user, url, &r, srv, why, whylen);
}

int remote_hfs_answer(const struct hp_config *cfg, const char *user, const char *url,
                      const struct http_reply *r, struct hp_server *srv, char *why, size_t whylen)
{
    char what[100];
    unsigned long port;

    snprintf(what, sizeof what, "retrieving the home of %s", user);
    if (r->status != 200)
        return explain(cfg, what, "home file server", url, 0, "", r, why, whylen);
    if (json_get_uint(r->body, "port", 65535, &port) < 0 || port == 0 || url_host(url, srv) < 0) {
        snprintf(why, whylen,
                 "While retrieving the home of %s: home file server %s: unexpected answer "
                 "(expected {\"port\": N}): %.200s",
                 user, url, r->body);
        return -EPROTO;
    }
    srv->kind = HP_SRV_TCP;
    snprintf(srv->port, sizeof srv->port, "%hu", (unsigned short)port);
    snprintf(srv->label, sizeof srv->label, strchr(srv->host, ':') ? "[%s]:%s" : "%s:%s", srv->host,
             srv->port);
    config_server_tls(cfg, srv);
    return 0;
}

static const char *presence_what(enum presence_op op, const char *user, char *what, size_t len)
{
    if (op == PRESENCE_LOGIN)
        snprintf(what, len, "checking where %s is logged in", user);
    else if (op == PRESENCE_HEARTBEAT)
        snprintf(what, len, "telling that %s is still logged in here", user);
    else
        snprintf(what, len, "telling that %s logged out", user);
    return what;
}

/* The presence service is unreachable or failing (rc and why from
 * explain): a login goes on or not as presence_fail says. */
static int presence_down(const struct hp_config *cfg, enum presence_op op, const char *user, int rc,
                         char *why, size_t whylen)
{
    if (op == PRESENCE_LOGIN) {
        size_t n = strlen(why);
        if (cfg->presence_fail_open) {
            snprintf(why + n, whylen - n, "; letting %s in (presence_fail = open)", user);
            return 0;
        }
        snprintf(why + n, whylen - n,
                 "; logins are refused while it is down "
                 "(presence_fail = closed)");
    }
    return rc;
}

int remote_presence(const struct hp_config *cfg, enum presence_op op, const char *user, char *why,
                    size_t whylen)
{
    static const char *const paths[] = {"/login", "/heartbeat", "/logout"};
    char url[1100], host[256], detail[600], what[200];
    struct http_opts o;
    struct http_reply r;
    int rc;

    presence_what(op, user, what, sizeof what);
    if (service_url(cfg, cfg->presence_url, paths[op], url, sizeof url) < 0) {
        snprintf(why, whylen, "presence_url %s: cannot make a URL of it", cfg->presence_url);
        return -EINVAL;
    }
    const char *keys[] = {"login", "hostname"},
               *vals[] = {user, remote_host_name(cfg, host, sizeof host)};
    const bool is_num[] = {false, false};
    char *data = json_object(keys, vals, is_num, 2);
    if (!data)
        return -ENOMEM;
    opts_for(cfg, &o, cfg->http_timeout_ms);
    rc = http_post_signed(url, data, &o, &r, detail, sizeof detail);
    free(data);
    if (rc == 0)
        return remote_presence_answer(cfg, op, user, url, &r, why, whylen);
    rc = explain(cfg, what, "presence service", url, rc, detail, &r, why, whylen);
    return presence_down(cfg, op, user, rc, why, whylen);
}

int remote_presence_answer(const struct hp_config *cfg, enum presence_op op, const char *user,
                           const char *url, const struct http_reply *r, char *why, size_t whylen)
{
    char what[200];
    int rc;

    if (r->status == 200)
        return 0;
    if (r->status == 423) {
        snprintf(why, whylen, "%s", r->body[0] ? r->body : "already logged in on another machine");
        return -EACCES;
    }
    rc = explain(cfg, presence_what(op, user, what, sizeof what), "presence service", url, 0, "", r,
                 why, whylen);
    return r->status >= 500 ? presence_down(cfg, op, user, rc, why, whylen) : rc; /* failing */
}
