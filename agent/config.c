#include "config.h"

#include "user.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#define MAX_LINE 4096
#define MAX_ERRORS 50

enum key_type {
    K_PATH,
    K_PATTERN,
    K_STRING,
    K_BOOL,
    K_DURATION,
    K_SERVERS,
    K_SIZE,
    K_TEMPLATE,
    K_PATH_TEMPLATE,
    K_SERVER,
    K_UINT,
    K_NAMES,
    K_CHOICE, /* an unsigned (or an enum of that size): the value of a name in choices */
    K_URL     /* http:// or https://, %d for the HFS number */
};

struct choice {
    const char *name;
    unsigned value;
};

struct key_def {
    const char *section;
    const char *name;
    enum key_type type;
    size_t offset;
    const char *def;              /* parsed by the same code as file values */
    const struct choice *choices; /* K_CHOICE: the names and values, to {NULL} */
};

#define F(field) offsetof(struct hp_config, field)

static const struct choice locators[] = {{"static", 0}, {"hfs", 1}, {NULL, 0}};
static const struct choice on_off[] = {{"off", 0}, {"on", 1}, {NULL, 0}};
static const struct choice fail_modes[] = {{"closed", 0}, {"open", 1}, {NULL, 0}};
static const struct choice home_modes[] = {{"nbd", HP_HOME_NBD}, {"sync", HP_HOME_SYNC}, {NULL, 0}};
static const struct choice sync_mounts[] = {{"sshfs", 0}, {"command", 1}, {NULL, 0}};
static const struct choice sync_auths[] = {
    {"password", HP_SYNC_AUTH_PASSWORD}, {"key", HP_SYNC_AUTH_KEY}, {NULL, 0}};
static const struct choice login_syncs[] = {{"blocking", 0}, {"background", 1}, {NULL, 0}};
static const struct choice tls_modes[] = {{"auto", HP_TLS_AUTO},
                                          {"off", HP_TLS_OFF},
                                          {"on", HP_TLS_ON},
                                          {"require", HP_TLS_REQUIRE},
                                          {NULL, 0}};
static const struct choice log_targets[] = {{"auto", LOG_TO_AUTO},
                                            {"stderr", LOG_TO_STDERR},
                                            {"syslog", LOG_TO_SYSLOG},
                                            {"kmsg", LOG_TO_KMSG},
                                            {NULL, 0}};
/* syslog numbering: error (3) to debug (7) */
static const struct choice log_levels[] = {{"error", LOG_LVL_ERR},     {"warning", LOG_LVL_WARN},
                                           {"notice", LOG_LVL_NOTICE}, {"info", LOG_LVL_INFO},
                                           {"debug", LOG_LVL_DEBUG},   {NULL, 0}};
static const struct choice attaches[] = {
    {"auto", HP_ATTACH_AUTO}, {"kernel", HP_ATTACH_KERNEL}, {"fuse", HP_ATTACH_FUSE}, {NULL, 0}};
static const struct choice kernel_apis[] = {
    {"auto", HP_KAPI_AUTO}, {"netlink", HP_KAPI_NETLINK}, {"ioctl", HP_KAPI_IOCTL}, {NULL, 0}};
static const struct choice messages[] = {{"text", 0}, {"json", 1}, {NULL, 0}};

/* K_CHOICE writes an unsigned: these enums are that. */
_Static_assert(sizeof(enum log_target) == sizeof(unsigned), "enum log_target is an unsigned");
_Static_assert(sizeof(enum log_level) == sizeof(unsigned), "enum log_level is an unsigned");
_Static_assert(sizeof(enum hp_attach) == sizeof(unsigned), "enum hp_attach is an unsigned");
_Static_assert(sizeof(enum hp_kernel_api) == sizeof(unsigned), "enum hp_kernel_api is an unsigned");

static const struct key_def keys[] = {
    {"agent", "run_dir", K_PATH, F(run_dir), "/run/homeport"},
    {"agent", "log", K_CHOICE, F(log_target), "auto", log_targets},
    {"agent", "log_level", K_CHOICE, F(log_level), "info", log_levels},
    {"agent", "shutdown_timeout", K_DURATION, F(shutdown_timeout_ms), "60s"},
    {"agent", "state_dir", K_PATH, F(state_dir), "/var/lib/homeport"},
    {"boot", "staging_dir", K_PATH, F(staging_dir), "/home/profiletemp"},
    {"boot", "home_root", K_PATH, F(home_root), "/home"},
    {"boot", "unmount_stale", K_BOOL, F(unmount_stale), "yes"},
    {"boot", "flag_files", K_PATTERN, F(flag_glob), "/var/tmp/horizon-pam_session_*.flag"},
    {"nbd", "servers", K_SERVERS, F(servers), ""},
    {"nbd", "probe_export", K_STRING, F(probe_export), ""},
    {"nbd", "connect_timeout", K_DURATION, F(connect_timeout_ms), "5s"},
    {"nbd", "warm_connections", K_UINT, F(warm_connections), "2"},
    {"nbd", "spare_workers", K_UINT, F(spare_workers), "1"},
    {"nbd", "connections", K_UINT, F(connections), "4"},
    {"nbd", "expected_user", K_STRING, F(expected_user), "last"},
    {"nbd", "cache_size", K_SIZE, F(cache_size), "16M"},
    {"nbd", "tls", K_CHOICE, F(tls_mode), "auto", tls_modes},
    {"nbd", "tls_ca_file", K_STRING, F(tls_ca_file), ""},
    {"nbd", "tls_cert_file", K_STRING, F(tls_cert_file), ""},
    {"nbd", "tls_key_file", K_STRING, F(tls_key_file), ""},
    {"nbd", "tls_psk_file", K_STRING, F(tls_psk_file), ""},
    {"nbd", "tls_psk_identity", K_STRING, F(tls_psk_identity), ""},
    {"nbd", "tls_exempt", K_STRING, F(tls_exempt), ""},
    {"home", "server", K_SERVER, F(home_server), ""},
    {"home", "export", K_TEMPLATE, F(export_template), "%u"},
    {"home", "attach", K_CHOICE, F(attach), "auto", attaches},
    {"home", "kernel_api", K_CHOICE, F(kernel_api), "auto", kernel_apis},
    {"home", "mount_dir", K_PATH_TEMPLATE, F(mount_template), "/home/%u"},
    {"home", "mount_options", K_STRING, F(mount_options), "nosuid,nodev"},
    {"home", "fix_owner", K_BOOL, F(fix_owner), "no"},
    {"home", "dead_timeout", K_DURATION, F(dead_timeout_ms), "30s"},
    {"home", "io_timeout", K_DURATION, F(io_timeout_ms), "10s"},
    {"home", "home_mode", K_CHOICE, F(home_mode), "nbd", home_modes},
    {"session", "min_uid", K_UINT, F(min_uid), "1000"},
    {"session", "exempt_users", K_NAMES, F(exempt_users), ""},
    {"session", "exempt_groups", K_NAMES, F(exempt_groups), ""},
    {"session", "exempt_services", K_NAMES, F(exempt_services), "systemd-user"},
    {"session", "lease", K_DURATION, F(lease_ms), "60s"},
    {"session", "kill_grace", K_DURATION, F(kill_grace_ms), "5s"},
    {"session", "pam_messages", K_CHOICE, F(pam_json), "text", messages},
    {"session", "pam_timeout", K_DURATION, F(pam_timeout_ms), "120s"},
    {"remote", "locator", K_CHOICE, F(locator), "static", locators},
    {"remote", "hfs_url", K_URL, F(hfs_url), ""},
    {"remote", "hfs_number", K_UINT, F(hfs_number), "0"},
    {"remote", "hfs_utype", K_STRING, F(hfs_utype), "user"},
    {"remote", "hfs_timeout", K_DURATION, F(hfs_timeout_ms), "100s"},
    {"remote", "progress_interval", K_DURATION, F(progress_interval_ms), "5s"},
    {"remote", "presence", K_CHOICE, F(presence), "off", on_off},
    {"remote", "presence_url", K_URL, F(presence_url), ""},
    {"remote", "presence_fail", K_CHOICE, F(presence_fail_open), "closed", fail_modes},
    {"remote", "heartbeat_interval", K_DURATION, F(heartbeat_interval_ms), "15s"},
    {"remote", "hostname", K_STRING, F(hostname), ""},
    {"remote", "secret_file", K_PATH, F(secret_file), "/etc/homeport/secret"},
    {"remote", "ca_file", K_STRING, F(ca_file), ""},
    {"remote", "http_connect_timeout", K_DURATION, F(http_connect_timeout_ms), "5s"},
    {"remote", "http_timeout", K_DURATION, F(http_timeout_ms), "20s"},
    {"remote", "http_retries", K_UINT, F(http_retries), "2"},
    {"sync", "local_dir", K_PATH_TEMPLATE, F(sync_local_template), "/home/utilisateurs/%u"},
    {"sync", "mount", K_CHOICE, F(sync_mount), "sshfs", sync_mounts},
    {"sync", "sshfs_host", K_STRING, F(sshfs_host), ""},
    {"sync", "sshfs_port", K_UINT, F(sshfs_port), "22"},
    {"sync", "sshfs_user", K_TEMPLATE, F(sshfs_user), "%u"},
    {"sync", "sshfs_path", K_STRING, F(sshfs_path), ""},
    {"sync", "sshfs_options", K_STRING, F(sshfs_options), ""},
    {"sync", "server_homeport", K_STRING, F(sync_server_homeport), "homeport"},
    {"sync", "auth", K_CHOICE, F(sync_auth), "password", sync_auths},
    {"sync", "key_file", K_STRING, F(sync_key_file), ""},
    {"sync", "known_hosts", K_PATH, F(sync_known_hosts), "/etc/homeport/ssh_known_hosts"},
    {"sync", "mount_command", K_STRING, F(sync_mount_command), ""},
    {"sync", "mount_timeout", K_DURATION, F(sync_mount_timeout_ms), "30s"},
    {"sync", "login_sync", K_CHOICE, F(login_sync_background), "blocking", login_syncs},
    {"sync", "flag_file", K_PATH_TEMPLATE, F(sync_flag_template),
     "/var/tmp/horizon-pam_session_%u.flag"},
    {"sync", "sync_interval", K_DURATION, F(sync_interval_ms), "5m"},
    {"sync", "exclude_file", K_PATH, F(sync_exclude), "/etc/homeport/sync-exclude"},
    {"sync", "max_delete_percent", K_UINT, F(max_delete_percent), "50"},
    {"sync", "trash_days", K_UINT, F(trash_days), "30"},
    {"sync", "server_links", K_STRING, F(server_links), ""},
    {"sync", "file_server_link", K_STRING, F(file_server_link), ""},
    {"server", "image_dir", K_PATH, F(image_dir), "/srv/homes"},
    {"server", "default_size", K_SIZE, F(default_size), "1G"},
    {"server", "skel", K_PATH, F(skel_dir), "/etc/skel"},
};
#define NKEYS (sizeof keys / sizeof keys[0])

static const char *const sections[] = {"agent",   "boot",   "nbd",  "home",
                                       "session", "remote", "sync", "server"};

struct parser {
    const char *file;
    unsigned line;
    unsigned nerrors;
    config_error_fn err;
    void *ctx;
};

__attribute__((format(printf, 2, 3))) static void perror_at(struct parser *p, const char *fmt, ...)
{
    char msg[512];
    int n;
    va_list ap;

    p->nerrors++;
    if (p->nerrors > MAX_ERRORS || !p->err)
        return;
    if (p->line)
        n = snprintf(msg, sizeof msg, "%s:%u: ", p->file, p->line);
    else
        n = snprintf(msg, sizeof msg, "%s: ", p->file);
    if (n < 0 || (size_t)n >= sizeof msg)
        n = 0;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): false positive, ap is started */
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    p->err(p->ctx, msg);
}

/* A decimal number with at most three decimals, as whole + frac / div. */
struct decimal {
    uint64_t whole, frac, div;
};

/* Parse the number at *pp (leaving *pp after it).  0 or -EINVAL. */
static int parse_decimal(const char **pp, uint64_t max_whole, struct decimal *d)
{
    const char *p = *pp;

    *d = (struct decimal){0, 0, 1};
    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    while (isdigit((unsigned char)*p)) {
        d->whole = d->whole * 10 + (uint64_t)(*p++ - '0');
        if (d->whole > max_whole)
            return -EINVAL;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        while (isdigit((unsigned char)*p)) {
            if (d->div >= 1000)
                return -EINVAL;
            d->frac = d->frac * 10 + (uint64_t)(*p++ - '0');
            d->div *= 10;
        }
    }
    *pp = p;
    return 0;
}

/* d * unit, or -EINVAL when that is not a whole number ("1.5ms"). */
static int decimal_scale(const struct decimal *d, uint64_t unit, uint64_t *out)
{
    if (d->frac * unit % d->div)
        return -EINVAL;
    *out = d->whole * unit + d->frac * unit / d->div;
    return 0;
}

int config_parse_duration_ms(const char *s, unsigned *ms)
{
    struct decimal d;
    uint64_t unit, v;

    if (parse_decimal(&s, 100000000, &d) < 0)
        return -EINVAL;
    if (*s == '\0' || strcmp(s, "s") == 0)
        unit = 1000;
    else if (strcmp(s, "ms") == 0)
        unit = 1;
    else if (strcmp(s, "m") == 0)
        unit = 60000;
    else
        return -EINVAL;
    if (decimal_scale(&d, unit, &v) < 0 || v == 0 || v > UINT64_C(24) * 3600 * 1000)
        return -EINVAL;
    *ms = (unsigned)v;
    return 0;
}

const struct hp_server *config_home_server(const struct hp_config *cfg)
{
    if (cfg->home_server.label[0])
        return &cfg->home_server;
    return cfg->nservers ? &cfg->servers[0] : NULL;
}

int config_export_name(const struct hp_config *cfg, const char *user, char *out, size_t len)
{
    return config_expand(cfg->export_template, user, out, len);
}

int config_expand(const char *tmpl, const char *user, char *out, size_t len)
{
    size_t n = 0;

    for (const char *t = tmpl; *t; t++) {
        const char *piece = t;
        size_t plen = 1;
        if (*t == '%') {
            t++;
            if (*t == 'u') {
                piece = user;
                plen = strlen(user);
            } else if (*t == '%') {
                piece = "%";
            } else {
                return -EINVAL;
            }
        }
        if (out) {
            if (n + plen >= len)
                return -ENAMETOOLONG;
            memcpy(out + n, piece, plen);
        }
        n += plen;
    }
    if (out)
        out[n] = '\0';
    return (int)n;
}

int config_parse_size(const char *s, uint64_t *bytes)
{
    struct decimal d;
    uint64_t unit, v;

    if (parse_decimal(&s, UINT64_C(1) << 50, &d) < 0)
        return -EINVAL;
    switch (*s) {
    case 'K': unit = UINT64_C(1) << 10; break;
    case 'M': unit = UINT64_C(1) << 20; break;
    case 'G': unit = UINT64_C(1) << 30; break;
    case 'T': unit = UINT64_C(1) << 40; break;
    case '\0': unit = 1; break;
    default: return -EINVAL;
    }
    if (*s && s[1] != '\0')
        return -EINVAL;
    if (decimal_scale(&d, unit, &v) < 0 || v < (UINT64_C(16) << 20) || v > (UINT64_C(16) << 40))
        return -EINVAL;
    *bytes = v;
    return 0;
}

static bool valid_host(const char *h, bool bracketed)
{
    if (!*h)
        return false;
    for (; *h; h++) {
        unsigned char c = (unsigned char)*h;
        if (bracketed ? !(isxdigit(c) || c == ':' || c == '.')
                      : !(isalnum(c) || c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

int config_parse_server(const char *text, struct hp_server *out)
{
    const char *port = NULL;
    size_t hostlen;

    memset(out, 0, sizeof *out);
    if (strncmp(text, "unix:", 5) == 0) {
        const char *path = text + 5;
        if (path[0] != '/' || strlen(path) >= sizeof out->path)
            return -EINVAL;
        out->kind = HP_SRV_UNIX;
        memcpy(out->path, path, strlen(path) + 1);
        snprintf(out->label, sizeof out->label, "unix:%s", path);
        return 0;
    }
    out->kind = HP_SRV_TCP;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close)
            return -EINVAL;
        hostlen = (size_t)(close - text - 1);
        if (hostlen == 0 || hostlen >= sizeof out->host)
            return -EINVAL;
        memcpy(out->host, text + 1, hostlen);
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return -EINVAL;
        if (!valid_host(out->host, true))
            return -EINVAL;
    } else {
        const char *colon = strchr(text, ':');
        if (colon && strchr(colon + 1, ':'))
            return -EINVAL; /* a bare IPv6 address needs brackets */
        hostlen = colon ? (size_t)(colon - text) : strlen(text);
        if (hostlen == 0 || hostlen >= sizeof out->host)
            return -EINVAL;
        memcpy(out->host, text, hostlen);
        if (colon)
            port = colon + 1;
        if (!valid_host(out->host, false))
            return -EINVAL;
    }
    if (port) {
        char *end;
        unsigned long n;
        if (!isdigit((unsigned char)*port))
            return -EINVAL;
        errno = 0;
        n = strtoul(port, &end, 10);
        if (errno || *end || n == 0 || n > 65535)
            return -EINVAL;
        snprintf(out->port, sizeof out->port, "%lu", n);
    } else {
        snprintf(out->port, sizeof out->port, "%s", HP_NBD_DEFAULT_PORT);
    }
    snprintf(out->label, sizeof out->label, strchr(out->host, ':') ? "[%s]:%s" : "%s:%s", out->host,
             out->port);
    return 0;
}

/* Absolute, no "." or ".." components, no empty components, not "/". */
static int normalize_path(const char *v, char **out)
{
    size_t len = strlen(v);

    if (v[0] != '/' || len >= 4096)
        return -EINVAL;
    while (len > 1 && v[len - 1] == '/')
        len--;
    if (len == 1)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (v[i] != '/')
            continue;
        const char *c = v + i + 1;
        size_t clen = strcspn(c, "/");
        if (i + 1 + clen > len)
            clen = len - i - 1;
        if (clen == 0 || (clen == 1 && c[0] == '.') || (clen == 2 && c[0] == '.' && c[1] == '.'))
            return -EINVAL;
    }
    if (!(*out = strndup(v, len)))
        return -ENOMEM;
    return 0;
}

static int parse_servers(struct parser *p, const char *key, const char *v, struct hp_config *cfg)
{
    char *copy = strdup(v), *save = NULL;
    int rc = 0;

    if (!copy)
        return -ENOMEM;
    free(cfg->servers);
    cfg->servers = NULL;
    cfg->nservers = 0;
    for (char *tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
        struct hp_server srv, *grown;
        if (config_parse_server(tok, &srv) < 0) {
            perror_at(p,
                      "bad value for '%s': '%s' is not a server address "
                      "(expected host:port, [ipv6]:port, host, or unix:/path)",
                      key, tok);
            rc = -EINVAL;
            continue;
        }
        grown = realloc(cfg->servers, (cfg->nservers + 1) * sizeof *grown);
        if (!grown) {
            rc = -ENOMEM;
            break;
        }
        cfg->servers = grown;
        cfg->servers[cfg->nservers++] = srv;
    }
    free(copy);
    return rc;
}

/* Index of v among names, or -1 after reporting "(expected a, b or c)". */
/* The value of the name v in k's choices, stored in *field. */
static int parse_choice(struct parser *p, const struct key_def *k, const char *v, unsigned *field)
{
    const struct choice *c = k->choices;
    char expected[128] = "";

    for (size_t i = 0; c[i].name; i++)
        if (!strcmp(v, c[i].name)) {
            *field = c[i].value;
            return 0;
        }
    for (size_t i = 0; c[i].name; i++) {
        size_t used = strlen(expected);
        snprintf(expected + used, sizeof expected - used, "%s%s",
                 i == 0 ? "" : (c[i + 1].name ? ", " : " or "), c[i].name);
    }
    perror_at(p, "bad value for '%s': '%s' (expected %s)", k->name, v, expected);
    return -EINVAL;
}

/* A list of names separated by spaces or commas, kept as "a b c". */
static int parse_names(struct parser *p, const struct key_def *k, const char *v, char **field)
{
    size_t len = strlen(v), used = 0;
    char *out = malloc(len + 1);

    if (!out)
        return -ENOMEM;
    while (*v) {
        size_t n = strcspn(v, " \t,");
        if (n == 0) {
            v++;
            continue;
        }
        bool ok = n <= 32 && v[0] != '-';
        for (size_t i = 0; i < n && ok; i++)
            ok = isalnum((unsigned char)v[i]) || v[i] == '.' || v[i] == '_' || v[i] == '-';
        if (!ok) {
            perror_at(p, "bad value for '%s': '%.*s' is not a user, group or service name", k->name,
                      (int)(n > 64 ? 64 : n), v);
            free(out);
            return -EINVAL;
        }
        if (used)
            out[used++] = ' ';
        memcpy(out + used, v, n);
        used += n;
        v += n;
    }
    out[used] = '\0';
    free(*field);
    *field = out;
    return 0;
}

bool config_list_has(const char *list, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = list; p && *p;) {
        size_t w = strcspn(p, " ");
        if (w == n && strncmp(p, name, n) == 0)
            return true;
        p += w;
        p += *p == ' ';
    }
    return false;
}

/* The checks of the string kinds (K_PATTERN, K_STRING, K_PATH_TEMPLATE,
 * K_TEMPLATE, K_URL): 0, or -EINVAL with the message. */
static int check_string(struct parser *p, const struct key_def *k, const char *v)
{
    switch (k->type) {
    case K_PATTERN:
        if (v[0] != '/' || strstr(v, "/../") || strlen(v) >= 4096) {
            perror_at(p, "bad value for '%s': '%s' (expected an absolute path pattern)", k->name,
                      v);
            return -EINVAL;
        }
        /* fall through */
    case K_STRING:
        for (const char *c = v; *c; c++)
            if (iscntrl((unsigned char)*c)) {
                perror_at(p, "bad value for '%s': control character in value", k->name);
                return -EINVAL;
            }
        return 0;
    case K_PATH_TEMPLATE:
        if (v[0] != '/' || strstr(v, "/../") || strstr(v, "/./")) {
            perror_at(p, "bad value for '%s': '%s' (expected an absolute path such as /home/%%u)",
                      k->name, v);
            return -EINVAL;
        }
        /* fall through */
    case K_TEMPLATE:
        if (config_expand(v, "x", NULL, 0) < 0 || !strstr(v, "%u")) {
            perror_at(p,
                      "bad value for '%s': '%s' (expected a template with %%u for the user "
                      "name; %%%% for a literal %%)",
                      k->name, v);
            return -EINVAL;
        }
        return 0;
    case K_URL:
        if (*v && config_url_check(v) < 0) {
            perror_at(p,
                      "bad value for '%s': '%s' (expected http://host[:port][/path] or "
                      "https://..., with %%d for the HFS number and %%%% for a literal %%)",
                      k->name, v);
            return -EINVAL;
        }
        return 0;
    default: return -EINVAL;
    }
}

/* The number kinds (K_BOOL, K_DURATION, K_UINT, K_SIZE) into field. */
static int set_number(struct parser *p, const struct key_def *k, const char *v, void *field)
{
    switch (k->type) {
    case K_BOOL:
        if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
            *(bool *)field = true;
        else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
            *(bool *)field = false;
        else {
            perror_at(p, "bad value for '%s': '%s' (expected yes or no)", k->name, v);
            return -EINVAL;
        }
        return 0;
    case K_DURATION:
        if (!strcmp(k->name, "sync_interval") && !strcmp(v, "0")) { /* the one that may be off */
            *(unsigned *)field = 0;
            return 0;
        }
        if (config_parse_duration_ms(v, (unsigned *)field) < 0) {
            perror_at(p,
                      "bad value for '%s': '%s' (expected a duration such as 5, 2.5s, 500ms "
                      "or 1m, at most 24 hours)",
                      k->name, v);
            return -EINVAL;
        }
        return 0;
    case K_UINT: {
        char *end;
        unsigned long long n;
        errno = 0;
        n = strtoull(v, &end, 10);
        if (!isdigit((unsigned char)v[0]) || *end || errno || n >= 0xffffffffULL) {
            perror_at(p, "bad value for '%s': '%s' (expected a whole number)", k->name, v);
            return -EINVAL;
        }
        *(unsigned *)field = (unsigned)n;
        return 0;
    }
    case K_SIZE:
        if (config_parse_size(v, (uint64_t *)field) < 0) {
            perror_at(p,
                      "bad value for '%s': '%s' (expected a size such as 512M, 1G or 2.5G, "
                      "from 16M to 16T)",
                      k->name, v);
            return -EINVAL;
        }
        return 0;
    default: return -EINVAL;
    }
}

static int set_value(struct parser *p, const struct key_def *k, const char *v,
                     struct hp_config *cfg)
{
    void *field = (char *)cfg + k->offset;
    char *s = NULL;
    int rc;

    switch (k->type) {
    case K_PATH:
        rc = normalize_path(v, &s);
        if (rc == -EINVAL)
            perror_at(p,
                      "bad value for '%s': '%s' (expected an absolute path other than /, "
                      "without . or .. components)",
                      k->name, v);
        if (rc < 0)
            return rc;
        break;
    case K_PATTERN:
    case K_STRING:
    case K_PATH_TEMPLATE:
    case K_TEMPLATE:
    case K_URL:
        if ((rc = check_string(p, k, v)) < 0)
            return rc;
        if (!(s = strdup(v)))
            return -ENOMEM;
        break;
    case K_BOOL:
    case K_DURATION:
    case K_UINT:
    case K_SIZE: return set_number(p, k, v, field);
    case K_SERVERS: return parse_servers(p, k->name, v, cfg);
    case K_NAMES: return parse_names(p, k, v, (char **)field);
    case K_CHOICE: return parse_choice(p, k, v, (unsigned *)field);
    case K_SERVER: {
        struct hp_server *srv = field;
        if (!*v) {
            memset(srv, 0, sizeof *srv);
            return 0;
        }
        if (config_parse_server(v, srv) < 0) {
            perror_at(p,
                      "bad value for '%s': '%s' is not a server address (expected host:port, "
                      "[ipv6]:port, host, or unix:/path)",
                      k->name, v);
            return -EINVAL;
        }
        return 0;
    }
    default: return -EINVAL;
    }
    free(*(char **)field); /* the string kinds */
    *(char **)field = s;
    return 0;
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

void config_free(struct hp_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        void *field = (char *)cfg + keys[i].offset;
        if (keys[i].type == K_PATH || keys[i].type == K_PATTERN || keys[i].type == K_STRING ||
            keys[i].type == K_TEMPLATE || keys[i].type == K_PATH_TEMPLATE ||
            keys[i].type == K_NAMES || keys[i].type == K_URL)
            free(*(char **)field);
    }
    if (cfg->tls) {
        free(cfg->tls->psk_identity);
        free(cfg->tls);
    }
    free(cfg->servers);
    free(cfg->source);
    memset(cfg, 0, sizeof *cfg);
}

int config_url_check(const char *url)
{
    const char *host;
    size_t n;

    if (!strncmp(url, "http://", 7))
        host = url + 7;
    else if (!strncmp(url, "https://", 8))
        host = url + 8;
    else
        return -EINVAL;
    n = strcspn(host, ":/");
    if (n == 0 || strlen(url) > 1000)
        return -EINVAL;
    for (const char *c = url; *c; c++) {
        if (iscntrl((unsigned char)*c) || *c == ' ' || *c == '"' || *c == '\\')
            return -EINVAL;
        if (*c == '%') {
            if (c[1] != 'd' && c[1] != '%')
                return -EINVAL;
            c++;
        }
    }
    return 0;
}

int config_url_expand(const char *tmpl, unsigned number, char *out, size_t len)
{
    size_t o = 0;

    for (const char *c = tmpl; *c; c++) {
        char num[16];
        const char *piece = c;
        size_t n = 1;
        if (*c == '%' && c[1] == 'd') {
            n = (size_t)snprintf(num, sizeof num, "%u", number);
            piece = num;
            c++;
        } else if (*c == '%' && c[1] == '%') {
            c++;
        } else if (*c == '%') {
            return -EINVAL;
        }
        if (o + n >= len)
            return -ENAMETOOLONG;
        memcpy(out + o, piece, n);
        o += n;
    }
    out[o] = '\0';
    return (int)o;
}

int config_defaults(struct hp_config *cfg)
{
    struct parser p = {.file = "(built-in defaults)"};

    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++) {
        int rc = set_value(&p, &keys[i], keys[i].def, cfg);
        if (rc < 0) {
            config_free(cfg);
            return rc == -ENOMEM ? rc : -EINVAL;
        }
    }
    return 0;
}

/* a equals b, or a is an ancestor directory of b */
static bool path_covers(const char *a, const char *b)
{
    size_t la = strlen(a);
    return strncmp(a, b, la) == 0 && (b[la] == '\0' || b[la] == '/');
}

static bool host_name_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 253 || s[0] == '-' || s[0] == '.')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-' && *s != '_')
            return false;
    return true;
}

/* A name for one entry of a home's top directory: no '/', not "." or "..". */
static bool entry_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 255 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '/' || iscntrl((unsigned char)s[i]))
            return false;
    return true;
}

/* Whether s has no control character and no '%' escape but %% and those
 * in letters ("um": %u and %m). */
static bool escapes_ok(const char *s, const char *letters)
{
    for (; *s; s++)
        if (*s == '%' && s[1] && (s[1] == '%' || strchr(letters, s[1])))
            s++;
        else if (*s == '%' || iscntrl((unsigned char)*s))
            return false;
    return true;
}

static void check_sync(struct parser *p, struct hp_config *cfg)
{
    bool on = cfg->home_mode == HP_HOME_SYNC;

    if (on && cfg->sync_mount == HP_SYNC_SSHFS && !*cfg->sshfs_host)
        perror_at(p, "home_mode = sync with mount = sshfs needs sshfs_host (the home server)");
    if (on && cfg->sync_mount == HP_SYNC_COMMAND && !*cfg->sync_mount_command)
        perror_at(p, "mount = command needs mount_command (such as: mount -t cifs //srv/%%u %%m "
                     "-o credentials=/etc/homeport/cifs)");
    if (!escapes_ok(cfg->sshfs_path, "u"))
        perror_at(p, "sshfs_path: only %%u (user) and %%%% are known");
    if (!escapes_ok(cfg->sync_key_file, "u"))
        perror_at(p, "key_file: only %%u (user) and %%%% are known");
    if (!escapes_ok(cfg->sync_mount_command, "um"))
        perror_at(p, "mount_command: only %%u (user), %%m (mount point) and %%%% are known");
    if (cfg->sshfs_port == 0 || cfg->sshfs_port > 65535)
        perror_at(p, "sshfs_port = %u: expected 1 to 65535", cfg->sshfs_port);
    if (on && cfg->sync_auth == HP_SYNC_AUTH_KEY && cfg->sync_key_file[0] != '/')
        perror_at(p, "auth = key needs key_file, an absolute path (%%u for a key per user)");
    if (cfg->max_delete_percent > 100)
        perror_at(p, "max_delete_percent = %u: expected 0 to 100", cfg->max_delete_percent);
    if (cfg->sync_interval_ms && cfg->sync_interval_ms < 10000)
        perror_at(p, "sync_interval = %u ms: expected 0 (off) or at least 10s",
                  cfg->sync_interval_ms);
    for (const char *s = cfg->server_links; *s;) {
        size_t n = strcspn(s, " \t");
        if (n && !entry_name_ok(s, n))
            perror_at(p, "server_links: '%.*s' is not a folder name of the home's top", (int)n, s);
        s += n;
        s += strspn(s, " \t");
    }
    if (*cfg->file_server_link &&
        !entry_name_ok(cfg->file_server_link, strlen(cfg->file_server_link)))
        perror_at(p, "file_server_link = %s: expected a name (no '/')", cfg->file_server_link);
    for (const char *c = cfg->sshfs_host; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr(".-_:[]", *c)) {
            perror_at(p, "sshfs_host = %s: expected a host name or address", cfg->sshfs_host);
            break;
        }
    for (const char *c = cfg->sshfs_options; *c; c++)
        if (iscntrl((unsigned char)*c) || *c == ' ') {
            perror_at(p, "sshfs_options: expected opt,opt=value,... without spaces");
            break;
        }
    for (const char *c = cfg->sync_server_homeport; *c; c++) /* a word of a shell line */
        if (!isalnum((unsigned char)*c) && !strchr("/._+-", *c)) {
            perror_at(p,
                      "server_homeport = %s: expected a command name or an absolute path "
                      "(letters, digits, '/', '.', '_', '+', '-'), or nothing",
                      cfg->sync_server_homeport);
            break;
        }
}

/* The next entry of a server list ("a b,c") at *s: 1 with *out parsed, 0
 * at the end, -EINVAL for one that is not a server address (*word and
 * *wlen say which). */
static int next_server(const char **s, struct hp_server *out, const char **word, size_t *wlen)
{
    char buf[400];

    *s += strspn(*s, " \t,");
    if (!**s)
        return 0;
    *word = *s;
    *wlen = strcspn(*s, " \t,");
    *s += *wlen;
    if (*wlen >= sizeof buf)
        return -EINVAL;
    memcpy(buf, *word, *wlen);
    buf[*wlen] = '\0';
    return config_parse_server(buf, out) == 0 ? 1 : -EINVAL;
}

static bool tls_exempted(const struct hp_config *cfg, const struct hp_server *srv)
{
    const char *s = cfg->tls_exempt, *w;
    struct hp_server e;
    size_t n;
    int rc;

    while ((rc = next_server(&s, &e, &w, &n)) != 0)
        if (rc > 0 && strcmp(e.label, srv->label) == 0)
            return true;
    return false;
}

void config_server_tls(const struct hp_config *cfg, struct hp_server *srv)
{
    srv->tls = cfg->tls && !tls_exempted(cfg, srv) ? cfg->tls : NULL;
}

static void check_tls_server(struct parser *p, const struct hp_config *cfg,
                             const struct hp_server *srv)
{
    if (srv->tls && srv->kind == HP_SRV_UNIX && !*cfg->tls_psk_file)
        perror_at(p,
                  "server %s: TLS with certificates needs a TCP server (the server's "
                  "certificate is checked against its host name); use tls_psk_file, or list "
                  "it in tls_exempt",
                  srv->label);
}

/* [nbd] tls and its files: the mode in force, and each server's share. */
static void check_tls(struct parser *p, struct hp_config *cfg)
{
    const char *files[] = {cfg->tls_ca_file, cfg->tls_cert_file, cfg->tls_key_file,
                           cfg->tls_psk_file};
    const char *names[] = {"tls_ca_file", "tls_cert_file", "tls_key_file", "tls_psk_file"};
    bool any = false;
    unsigned mode = cfg->tls_mode;

    for (size_t i = 0; i < 4; i++) {
        any |= *files[i] != '\0';
        if (*files[i] && files[i][0] != '/')
            perror_at(p, "%s = %s: expected an absolute path", names[i], files[i]);
    }
    const char *s = cfg->tls_exempt, *w;
    struct hp_server e;
    size_t n;
    int rc;
    while ((rc = next_server(&s, &e, &w, &n)) != 0)
        if (rc < 0)
            perror_at(p, "tls_exempt: '%.*s' is not a server address", (int)n, w);
    if (mode == HP_TLS_AUTO)
        mode = any ? HP_TLS_REQUIRE : HP_TLS_OFF;
    if (mode == HP_TLS_OFF)
        return;
    if (!*cfg->tls_ca_file && !*cfg->tls_psk_file)
        perror_at(p,
                  "tls = %s needs tls_ca_file (X.509 certificates) or tls_psk_file (a "
                  "pre-shared key)",
                  tls_modes[mode].name);
    if (*cfg->tls_ca_file && *cfg->tls_psk_file)
        perror_at(p, "tls_ca_file and tls_psk_file: set one of them (X.509 or PSK), not both");
    if (!*cfg->tls_cert_file != !*cfg->tls_key_file)
        perror_at(p, "tls_cert_file and tls_key_file go together (this machine's certificate "
                     "and its key)");
    if (*cfg->tls_cert_file && !*cfg->tls_ca_file)
        perror_at(p, "tls_cert_file needs tls_ca_file (the CA that signed the servers' "
                     "certificates)");
    if (*cfg->tls_psk_identity &&
        (strchr(cfg->tls_psk_identity, ':') ||
         strcspn(cfg->tls_psk_identity, " \t") != strlen(cfg->tls_psk_identity)))
        perror_at(p, "tls_psk_identity = %s: no ':' or blanks", cfg->tls_psk_identity);
    if (!(cfg->tls = calloc(1, sizeof *cfg->tls)))
        return;
    cfg->tls->mode = mode;
    cfg->tls->ca_file = cfg->tls_ca_file;
    cfg->tls->cert_file = cfg->tls_cert_file;
    cfg->tls->key_file = cfg->tls_key_file;
    cfg->tls->psk_file = cfg->tls_psk_file;
    if (*cfg->tls_psk_identity) {
        cfg->tls->psk_identity = strdup(cfg->tls_psk_identity);
    } else {
        struct utsname u;
        cfg->tls->psk_identity = strdup(*cfg->hostname   ? cfg->hostname
                                        : uname(&u) == 0 ? u.nodename
                                                         : "localhost");
    }
    for (size_t i = 0; i < cfg->nservers; i++) {
        config_server_tls(cfg, &cfg->servers[i]);
        check_tls_server(p, cfg, &cfg->servers[i]);
    }
    if (cfg->home_server.label[0]) {
        config_server_tls(cfg, &cfg->home_server);
        check_tls_server(p, cfg, &cfg->home_server);
    }
}

/* Values that are fine one by one but dangerous together. */
static void check_semantics(struct parser *p, struct hp_config *cfg)
{
    static const char *const system_dirs[] = {"/bin",   "/boot", "/dev",  "/etc", "/lib",
                                              "/lib64", "/proc", "/root", "/run", "/sbin",
                                              "/sys",   "/tmp",  "/usr",  "/var"};
    const char *st = cfg->staging_dir;

    if (path_covers(st, cfg->home_root) || path_covers(st, cfg->run_dir))
        perror_at(p,
                  "staging_dir '%s' would contain home_root '%s' or run_dir '%s': emptying it "
                  "at boot would delete them",
                  st, cfg->home_root, cfg->run_dir);
    for (size_t i = 0; i < sizeof system_dirs / sizeof system_dirs[0]; i++)
        if (path_covers(st, system_dirs[i]))
            perror_at(p, "staging_dir '%s' is a system directory; it is emptied at boot", st);
    if (*cfg->expected_user && strcmp(cfg->expected_user, "last") != 0 &&
        !user_name_valid(cfg->expected_user))
        perror_at(p, "expected_user = %s: expected a user name, 'last' or nothing",
                  cfg->expected_user);
    if (cfg->warm_connections > 16)
        perror_at(p, "warm_connections = %u: at most 16 per server", cfg->warm_connections);
    if (cfg->spare_workers > 8)
        perror_at(p, "spare_workers = %u: at most 8", cfg->spare_workers);
    if (cfg->connections < 1 || cfg->connections > HP_NBD_MAX_CONNECTIONS)
        perror_at(p, "connections = %u: expected 1 to %d NBD connections per home",
                  cfg->connections, HP_NBD_MAX_CONNECTIONS);
    if (cfg->locator == HP_LOCATOR_HFS && !*cfg->hfs_url)
        perror_at(p, "locator = hfs needs hfs_url (such as http://hfs%%d:20100)");
    if (cfg->locator == HP_LOCATOR_HFS && cfg->hfs_timeout_ms + 5000 > cfg->pam_timeout_ms)
        perror_at(p,
                  "hfs_timeout (%u s) must be at least 5 s shorter than pam_timeout (%u s), or "
                  "the greeter gives up before the home file server answers",
                  cfg->hfs_timeout_ms / 1000, cfg->pam_timeout_ms / 1000);
    if (cfg->presence && !*cfg->presence_url)
        perror_at(p, "presence = on needs presence_url (such as http://presence:20132)");
    if (cfg->presence && (cfg->heartbeat_interval_ms < 1000 || cfg->heartbeat_interval_ms > 600000))
        perror_at(p, "heartbeat_interval = %u ms: expected 1s to 10m", cfg->heartbeat_interval_ms);
    if (*cfg->ca_file && cfg->ca_file[0] != '/')
        perror_at(p, "ca_file = %s: expected an absolute path", cfg->ca_file);
    if (*cfg->hostname && !host_name_valid(cfg->hostname))
        perror_at(p, "hostname = %s: expected a host name (letters, digits, '.', '_', '-')",
                  cfg->hostname);
    if (!cfg->progress_interval_ms)
        perror_at(p, "progress_interval must not be 0");
    check_sync(p, cfg);
    check_tls(p, cfg);
}

static int parse_stream(FILE *f, struct parser *p, struct hp_config *cfg)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    char section[32] = "";
    unsigned seen_at[NKEYS] = {0};
    bool section_ok = false;
    int rc = 0;

    while ((n = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)n;
        char *s, *eq, *key, *val;
        const struct key_def *k = NULL;
        size_t ki;

        p->line++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len > MAX_LINE) {
            perror_at(p, "line longer than %d bytes", MAX_LINE);
            continue;
        }
        if (strlen(line) != len) {
            perror_at(p, "NUL byte in line");
            continue;
        }
        s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (!end || *trim(end + 1) != '\0') {
                perror_at(p, "syntax error: expected '[section]'");
                section_ok = false;
                section[0] = '\0';
                continue;
            }
            *end = '\0';
            char *name = trim(s + 1);
            section_ok = false;
            for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
                if (!strcmp(name, sections[i]))
                    section_ok = true;
            if (!section_ok)
                perror_at(p,
                          "unknown section [%s] (known: [agent], [boot], [nbd], [home], [session], "
                          "[remote], [sync], [server])",
                          name);
            snprintf(section, sizeof section, "%s", name);
            continue;
        }
        eq = strchr(s, '=');
        if (!eq) {
            perror_at(p, "syntax error: expected 'key = value'");
            continue;
        }
        *eq = '\0';
        key = trim(s);
        val = trim(eq + 1);
        if (!*key) {
            perror_at(p, "syntax error: missing key before '='");
            continue;
        }
        if (!section[0]) {
            perror_at(p, "key '%s' outside any section", key);
            continue;
        }
        if (!section_ok)
            continue; /* the section was reported already */
        for (ki = 0; ki < NKEYS; ki++)
            if (!strcmp(keys[ki].section, section) && !strcmp(keys[ki].name, key)) {
                k = &keys[ki];
                break;
            }
        if (!k) {
            perror_at(p, "unknown key '%s' in section [%s]", key, section);
            continue;
        }
        if (seen_at[ki]) {
            perror_at(p, "duplicate key '%s' in section [%s] (first set at line %u)", key, section,
                      seen_at[ki]);
            continue;
        }
        seen_at[ki] = p->line;
        if (set_value(p, k, val, cfg) == -ENOMEM) {
            rc = -ENOMEM;
            break;
        }
    }
    free(line);
    if (rc < 0)
        return rc;
    if (ferror(f))
        return -EIO;
    p->line = 0;
    check_semantics(p, cfg);
    if (p->nerrors > MAX_ERRORS && p->err) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s: %u more errors not shown", p->file, p->nerrors - MAX_ERRORS);
        p->err(p->ctx, msg);
    }
    return p->nerrors ? -EINVAL : 0;
}

int config_load(struct hp_config *cfg, const char *path, bool must_exist, config_error_fn err,
                void *ctx)
{
    struct parser p = {.file = path, .err = err, .ctx = ctx};
    FILE *f;
    int rc;

    rc = config_defaults(cfg);
    if (rc < 0)
        return rc;
    f = fopen(path, "re");
    if (!f) {
        rc = -errno;
        if (rc == -ENOENT && !must_exist)
            return 0;
        config_free(cfg);
        return rc;
    }
    rc = parse_stream(f, &p, cfg);
    fclose(f);
    if (rc == 0 && !(cfg->source = strdup(path)))
        rc = -ENOMEM;
    if (rc < 0)
        config_free(cfg);
    return rc;
}
