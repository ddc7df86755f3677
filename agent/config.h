/* config: /etc/homeport.conf, an INI file.
 *
 *   [section]
 *   key = value        # whole-line comments start with '#' or ';'
 *
 * Every key has a default (see configs/homeport.conf and homeport.conf(5)).
 * Parsing is strict: an unknown section or key, a duplicate key or a bad
 * value is an error that names file:line and the key, and every error in the
 * file is reported, not just the first (the first 50 as messages, then one
 * that counts the rest).  A line has at most 4096 bytes and no NUL byte.  A
 * configuration is only ever used whole: on any error the caller keeps what
 * it had.  There is no include directive: one file is the whole
 * configuration.
 */
#ifndef HOMEPORT_CONFIG_H
#define HOMEPORT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define HP_DEFAULT_CONFIG "/etc/homeport.conf"
#define HP_NBD_DEFAULT_PORT "10809"

/* [nbd] tls: auto = require when a TLS key is set, else off; on = TLS
 * when the server offers it; require = TLS or no connection. */
enum hp_tls_mode { HP_TLS_AUTO, HP_TLS_OFF, HP_TLS_ON, HP_TLS_REQUIRE };

/* The machine's TLS identity for NBD ([nbd] tls_*): X.509 (a CA to check
 * servers with, optionally a certificate and key of this machine) or a
 * pre-shared key.  One per configuration, shared by its servers. */
struct hp_tls {
    unsigned mode;   /* enum hp_tls_mode, never AUTO once loaded */
    char *ca_file;   /* X.509: checks the server's certificate */
    char *cert_file; /* X.509: this machine's certificate ("": none) */
    char *key_file;  /* its key: root's, mode 0600 */
    char *psk_file;  /* PSK: "identity:hexkey" lines, root's, mode 0600 */
    char *psk_identity;
    char cert_dir[4200]; /* run_dir/tls: the files under libnbd's names (tls_setup) */
};

/* [nbd] connections: at most this many NBD connections per home. */
#define HP_NBD_MAX_CONNECTIONS 8

/* An NBD server address as written in `servers =`. */
struct hp_server {
    enum { HP_SRV_TCP, HP_SRV_UNIX } kind;
    char host[256];  /* TCP: name or address, without IPv6 brackets */
    char port[6];    /* TCP: 1..65535 */
    char path[108];  /* unix: absolute socket path (sun_path size) */
    char label[300]; /* for messages: "host:port" or "unix:/path" */
    /* TLS for this server: the configuration's, or NULL for clear text
     * (tls = off, or the server is in tls_exempt).  Set by config_load and
     * config_server_tls; it points into the configuration's heap. */
    const struct hp_tls *tls;
};

/* How an export becomes a block device: nbd.ko, or FUSE + loop; auto =
 * the kernel when nbd.ko is loaded or loadable. */
enum hp_attach { HP_ATTACH_AUTO, HP_ATTACH_KERNEL, HP_ATTACH_FUSE };

/* How the kernel is told: netlink (reconnects possible), the old ioctl
 * interface, or auto: netlink where the kernel has it. */
enum hp_kernel_api { HP_KAPI_AUTO, HP_KAPI_NETLINK, HP_KAPI_IOCTL };

/* Where a user's export is: the configured server, or the one a home file
 * server names (POST /get_hfs). */
enum hp_locator { HP_LOCATOR_STATIC, HP_LOCATOR_HFS };

/* [home] home_mode: an NBD block device, or a roaming profile synced with
 * the server (sync/engine.h, roam.h). */
enum hp_home_mode { HP_HOME_NBD, HP_HOME_SYNC };
enum hp_sync_mount { HP_SYNC_SSHFS, HP_SYNC_COMMAND };
enum hp_sync_auth { HP_SYNC_AUTH_PASSWORD, HP_SYNC_AUTH_KEY };

struct hp_config {
    char *source; /* file the values came from; NULL = built-in defaults */

    /* [agent] */
    char *run_dir; /* pid file and control socket live here */
    enum log_target log_target;
    enum log_level log_level;
    unsigned shutdown_timeout_ms; /* SIGTERM: how long homes in use are waited for */
    char *state_dir;              /* kept across boots: the last user of this machine */

    /* [boot] */
    char *staging_dir;  /* emptied at boot when nothing is mounted below it */
    char *home_root;    /* checked for stale mounts */
    bool unmount_stale; /* detach dead mounts found below those two */
    char *flag_glob;    /* sync popup flag files, removed at boot */

    /* [nbd] */
    struct hp_server *servers;
    size_t nservers;
    char *probe_export;          /* "" = don't fetch an export's size */
    unsigned connect_timeout_ms; /* connect + handshake, per server */
    unsigned warm_connections;   /* per server, held by the agent (warm.h) */
    unsigned spare_workers;      /* FUSE workers started ahead (spare.h) */
    unsigned connections;        /* per home on the FUSE attach (fusedisk.h) */
    char *expected_user;         /* "": none; "last": the last user here; or a name */
    uint64_t cache_size;         /* NBD_CMD_CACHE this much of the expected user's export */
    unsigned tls_mode;           /* enum hp_tls_mode, as written */
    char *tls_ca_file, *tls_cert_file, *tls_key_file, *tls_psk_file, *tls_psk_identity;
    char *tls_exempt;   /* "a b": servers (labels) reached in clear text */
    struct hp_tls *tls; /* NULL when TLS is off for every server */

    /* [home]: how a user's home is found, attached and mounted */
    struct hp_server home_server; /* kind/label empty: the first of servers */
    char *export_template;        /* "%u" */
    enum hp_attach attach;
    enum hp_kernel_api kernel_api;
    char *mount_template; /* "/home/%u" */
    char *mount_options;  /* "nosuid,nodev" */
    bool fix_owner;       /* chown the home's root to the user instead of refusing */
    unsigned dead_timeout_ms;
    unsigned io_timeout_ms; /* kernel attach: a request unanswered this long = dead link */
    unsigned home_mode;     /* enum hp_home_mode */

    /* [session]: the PAM stages */
    unsigned min_uid;        /* users below it are exempt (root, system users) */
    char *exempt_users;      /* "a b c": exempt by name */
    char *exempt_groups;     /* members (primary or not) are exempt */
    char *exempt_services;   /* PAM services that pass untouched ("systemd-user") */
    unsigned lease_ms;       /* a prepared home waits this long for its session */
    unsigned kill_grace_ms;  /* between SIGTERM and SIGKILL at the last logout */
    unsigned pam_json;       /* 1: pam_messages = json: {"message": ..., "isError": ...} lines */
    unsigned pam_timeout_ms; /* the PAM client's wait for the agent's answer */

    /* [remote]: the site's services over HTTP (remote.h) */
    unsigned locator;              /* enum hp_locator */
    char *hfs_url;                 /* template: %d = hfs_number */
    unsigned hfs_number;           /* this machine's home file server */
    char *hfs_utype;               /* "user": sent with /get_hfs */
    unsigned hfs_timeout_ms;       /* /get_hfs may wait this long (a migration) */
    unsigned progress_interval_ms; /* a greeter message this often while it waits */
    unsigned presence;             /* 1: one machine at a time per user */
    char *presence_url;
    unsigned presence_fail_open;      /* 1: a presence service that is down lets users in */
    unsigned heartbeat_interval_ms;   /* while a home is held here */
    char *hostname;                   /* "": this machine's name (uname) */
    char *secret_file;                /* HMAC key, root-only */
    char *ca_file;                    /* "": the system's CA bundle */
    unsigned http_connect_timeout_ms; /* per attempt */
    unsigned http_timeout_ms;         /* a whole call, retries included */
    unsigned http_retries;

    /* [sync]: home_mode = sync, the roaming profile (roam.h) */
    char *sync_local_template;     /* the local copy: "/home/utilisateurs/%u" */
    unsigned sync_mount;           /* enum hp_sync_mount */
    char *sshfs_host, *sshfs_user; /* user: template, "%u" */
    unsigned sshfs_port;
    char *sshfs_path;           /* on the server: "" = the user's home there */
    char *sshfs_options;        /* more -o options for sshfs */
    char *sync_server_homeport; /* homeport on the server, for sync-list; "": never */
    unsigned sync_auth;         /* enum hp_sync_auth */
    char *sync_key_file;        /* auth = key: "/etc/homeport/ssh/%u" or one site key */
    char *sync_known_hosts;     /* the server's host key, checked strictly */
    char *sync_mount_command;   /* mount = command: argv, %u user, %m mount point */
    unsigned sync_mount_timeout_ms;
    unsigned login_sync_background; /* 1: the login does not wait for the first pass */
    char *sync_flag_template;       /* exists while a login's pass runs (the popup) */
    unsigned sync_interval_ms;      /* a pass this often during the session; 0: off */
    char *sync_exclude;             /* exclude.h: FILE, or FILE.local instead */
    unsigned max_delete_percent, trash_days;
    char *server_links;     /* "Documents Musique": left on the server, linked from the home */
    char *file_server_link; /* "": none; else a link of that name to the whole remote home */

    /* [server]: the home file server side (mkhome) */
    char *image_dir;       /* one ext4 image per user, named after the user */
    uint64_t default_size; /* bytes */
    char *skel_dir;        /* copied into new homes */
};

/* Receives one complete message ("FILE:LINE: ...") per problem found. */
typedef void (*config_error_fn)(void *ctx, const char *msg);

/* Fill cfg with the defaults.  Returns 0 or -ENOMEM. */
int config_defaults(struct hp_config *cfg);

/* Load path over the defaults.  When the file does not exist and
 * must_exist is false, cfg holds the defaults and 0 is returned.
 * Returns 0, -EINVAL after reporting each problem through err (cfg is then
 * freed), or another negative errno when the file cannot be read (nothing
 * reported: the caller names the file). */
int config_load(struct hp_config *cfg, const char *path, bool must_exist, config_error_fn err,
                void *ctx);

void config_free(struct hp_config *cfg);

/* Parse one server address ("host:port", "[v6]:port", "host",
 * "unix:/path").  Returns 0 or -EINVAL.  out->tls is NULL. */
int config_parse_server(const char *text, struct hp_server *out);

/* Give srv (one the configuration does not list: an HFS answer) the TLS
 * settings of cfg. */
void config_server_tls(const struct hp_config *cfg, struct hp_server *srv);

/* Expand a template: %u = user, %% = %.  With out == NULL only checks.
 * Returns the length, -EINVAL for another escape, -ENAMETOOLONG. */
int config_expand(const char *tmpl, const char *user, char *out, size_t len);

/* The NBD export of user's home: [home] export with %u expanded, the one
 * place that names it.  Returns the length, or -ENAMETOOLONG. */
int config_export_name(const struct hp_config *cfg, const char *user, char *out, size_t len);

/* The server holding homes: [home] server, else the first of [nbd] servers;
 * NULL when neither is set. */
const struct hp_server *config_home_server(const struct hp_config *cfg);

/* Whether the "a b c" list of names (exempt_users, ...) holds name. */
bool config_list_has(const char *list, const char *name);

/* Parse a size: "512M", "1G", "2.5G", "16777216"; 16M to 16T.  0 or -EINVAL. */
int config_parse_size(const char *text, uint64_t *bytes);

/* A service URL template: http:// or https://, a host, only %d and %%
 * escapes.  0 or -EINVAL. */
int config_url_check(const char *url);

/* Expand a URL template: %d = number, %% = %.  Length or -errno. */
int config_url_expand(const char *tmpl, unsigned number, char *out, size_t len);

/* Parse a duration: "5", "5s", "1.5s", "250ms", "2m".  Returns 0 or -EINVAL. */
int config_parse_duration_ms(const char *text, unsigned *ms);

#endif
