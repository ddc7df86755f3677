/* Config parser: good and bad files, every error message. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"

static char errs[8192];

static void collect(void *ctx, const char *msg)
{
    (void)ctx;
    strncat(errs, msg, sizeof errs - strlen(errs) - 2);
    strcat(errs, "\n");
}

static char path[64];

/* Write text to a temp file and load it; errors land in errs. */
static int load_n(const char *text, size_t len, struct hp_config *cfg)
{
    int fd;

    snprintf(path, sizeof path, "/tmp/homeport-test-XXXXXX");
    fd = mkstemp(path);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len)
        return -999;
    close(fd);
    errs[0] = '\0';
    int rc = config_load(cfg, path, true, collect, NULL);
    unlink(path);
    return rc;
}

static int load(const char *text, struct hp_config *cfg)
{
    return load_n(text, strlen(text), cfg);
}

/* Expect exactly one error, "FILE:LINE: msg". */
static void expect_error(const char *text, unsigned line, const char *msg)
{
    struct hp_config cfg;
    char want[1024];
    int rc = load(text, &cfg);

    if (line) /* 0: a check of the whole file, no line to name */
        snprintf(want, sizeof want, "%s:%u: %s\n", path, line, msg);
    else
        snprintf(want, sizeof want, "%s: %s\n", path, msg);
    ok(rc == -EINVAL, "rejected: %s", msg);
    is_str(errs, want, "message: %s", msg);
}

int main(void)
{
    struct hp_config cfg;
    struct hp_server srv;
    unsigned ms;
    int rc;

    /* defaults */
    ok(config_defaults(&cfg) == 0, "defaults load");
    is_str(cfg.staging_dir, "/home/profiletemp", "default staging_dir");
    is_str(cfg.home_root, "/home", "default home_root");
    is_str(cfg.run_dir, "/run/homeport", "default run_dir");
    is_str(cfg.flag_glob, "/var/tmp/horizon-pam_session_*.flag", "default flag_files");
    ok(cfg.unmount_stale, "default unmount_stale = yes");
    ok(cfg.connect_timeout_ms == 5000, "default connect_timeout 5 s");
    ok(cfg.nservers == 0, "no servers by default");
    ok(cfg.log_target == LOG_TO_AUTO && cfg.log_level == LOG_LVL_INFO, "default log auto/info");
    config_free(&cfg);

    /* a missing default file means defaults; a missing -c file is an error */
    ok(config_load(&cfg, "/nonexistent/homeport.conf", false, collect, NULL) == 0 &&
           cfg.source == NULL,
       "missing optional file: defaults");
    config_free(&cfg);
    ok(config_load(&cfg, "/nonexistent/homeport.conf", true, collect, NULL) == -ENOENT,
       "missing required file: -ENOENT");

    /* a good file with everything */
    rc = load("# comment\n"
              "; another\n"
              "\n"
              "[agent]\n"
              "run_dir = /run/hp/\n"
              "log = kmsg\n"
              "log_level = debug\n"
              "  [ boot ]  \n"
              "staging_dir=/srv/staging\n"
              "home_root = /srv/homes\n"
              "unmount_stale = no\n"
              "flag_files = /tmp/flag-*.flag\n"
              "[nbd]\n"
              "servers = 127.0.0.1:10810, hfs1 [::1]:9000 unix:/run/nbd.sock\n"
              "probe_export = probe\n"
              "connect_timeout = 250ms\r\n",
              &cfg);
    ok(rc == 0, "full file loads (%s)", errs);
    if (rc == 0) {
        is_str(cfg.run_dir, "/run/hp", "trailing slash trimmed");
        ok(cfg.log_target == LOG_TO_KMSG && cfg.log_level == LOG_LVL_DEBUG, "log settings");
        is_str(cfg.staging_dir, "/srv/staging", "staging_dir without spaces around =");
        ok(!cfg.unmount_stale, "unmount_stale = no");
        ok(cfg.nservers == 4, "four servers");
        if (cfg.nservers == 4) {
            is_str(cfg.servers[0].label, "127.0.0.1:10810", "server 0");
            is_str(cfg.servers[1].label, "hfs1:10809", "server 1 default port");
            is_str(cfg.servers[2].label, "[::1]:9000", "server 2 v6");
            is_str(cfg.servers[2].host, "::1", "server 2 host without brackets");
            ok(cfg.servers[3].kind == HP_SRV_UNIX, "server 3 unix");
            is_str(cfg.servers[3].path, "/run/nbd.sock", "server 3 path");
        }
        is_str(cfg.probe_export, "probe", "probe_export");
        ok(cfg.connect_timeout_ms == 250, "CRLF line, 250ms");
        ok(cfg.source && strcmp(cfg.source, path) == 0, "source recorded");
        config_free(&cfg);
    }

    /* every error message */
    expect_error("[nosuch]\nx = 1\n", 1,
                 "unknown section [nosuch] (known: [agent], [boot], [nbd], [home], [session], "
                 "[remote], [sync], [server])");
    expect_error("[boot]\nstaging = /x\n", 2, "unknown key 'staging' in section [boot]");
    expect_error("run_dir = /x\n", 1, "key 'run_dir' outside any section");
    expect_error("[boot\n", 1, "syntax error: expected '[section]'");
    expect_error("[boot] x\n", 1, "syntax error: expected '[section]'");
    expect_error("[boot]\njust words\n", 2, "syntax error: expected 'key = value'");
    expect_error("[boot]\n= /x\n", 2, "syntax error: missing key before '='");
    expect_error("[boot]\nhome_root = /a\n\nhome_root = /b\n", 4,
                 "duplicate key 'home_root' in section [boot] (first set at line 2)");
    expect_error("[boot]\nunmount_stale = maybe\n", 2,
                 "bad value for 'unmount_stale': 'maybe' (expected yes or no)");
    expect_error("[boot]\nhome_root = relative/path\n", 2,
                 "bad value for 'home_root': 'relative/path' (expected an absolute path other "
                 "than /, without . or .. components)");
    expect_error("[boot]\nhome_root = /a/../etc\n", 2,
                 "bad value for 'home_root': '/a/../etc' (expected an absolute path other than "
                 "/, without . or .. components)");
    expect_error("[boot]\nhome_root = /\n", 2,
                 "bad value for 'home_root': '/' (expected an absolute path other than /, "
                 "without . or .. components)");
    expect_error("[boot]\nflag_files = tmp/*.flag\n", 2,
                 "bad value for 'flag_files': 'tmp/*.flag' (expected an absolute path pattern)");
    expect_error("[nbd]\nconnect_timeout = soon\n", 2,
                 "bad value for 'connect_timeout': 'soon' (expected a duration such as 5, 2.5s, "
                 "500ms or 1m, at most 24 hours)");
    expect_error("[nbd]\nconnect_timeout = 0\n", 2,
                 "bad value for 'connect_timeout': '0' (expected a duration such as 5, 2.5s, "
                 "500ms or 1m, at most 24 hours)");
    expect_error("[nbd]\nservers = host:99999\n", 2,
                 "bad value for 'servers': 'host:99999' is not a server address (expected "
                 "host:port, [ipv6]:port, host, or unix:/path)");
    expect_error("[nbd]\nservers = unix:relative.sock\n", 2,
                 "bad value for 'servers': 'unix:relative.sock' is not a server address "
                 "(expected host:port, [ipv6]:port, host, or unix:/path)");
    expect_error("[nbd]\nprobe_export = a\tb\n", 2,
                 "bad value for 'probe_export': control character in value");
    expect_error("[agent]\nlog = console\n", 2,
                 "bad value for 'log': 'console' (expected auto, stderr, syslog or kmsg)");
    expect_error("[agent]\nlog_level = loud\n", 2,
                 "bad value for 'log_level': 'loud' (expected error, warning, notice, info or "
                 "debug)");
    {
        static const char nul[] = "[boot]\nhome_root = /a\0b\n";
        char want[256];
        ok(load_n(nul, sizeof nul - 1, &cfg) == -EINVAL, "NUL byte rejected");
        snprintf(want, sizeof want, "%s:2: NUL byte in line\n", path);
        is_str(errs, want, "message for NUL byte");
    }

    /* semantic checks are reported without a line */
    {
        char want[512];
        rc = load("[boot]\nstaging_dir = /home\n", &cfg);
        snprintf(want, sizeof want,
                 "%s: staging_dir '/home' would contain home_root '/home' or run_dir "
                 "'/run/homeport': emptying it at boot would delete them\n",
                 path);
        ok(rc == -EINVAL, "staging_dir = home_root rejected");
        is_str(errs, want, "message for staging_dir = home_root");
        rc = load("[boot]\nstaging_dir = /etc\n", &cfg);
        snprintf(want, sizeof want,
                 "%s: staging_dir '/etc' is a system directory; it is "
                 "emptied at boot\n",
                 path);
        ok(rc == -EINVAL, "staging_dir = /etc rejected");
        is_str(errs, want, "message for staging_dir = /etc");
    }

    /* a long line */
    {
        char *big = malloc(6000);
        strcpy(big, "[nbd]\nprobe_export = ");
        memset(big + strlen(big), 'x', 5000);
        strcpy(big + 21 + 5000, "\n");
        expect_error(big, 2, "line longer than 4096 bytes");
        free(big);
    }

    /* a line of exactly 4096 bytes is fine, one more is not */
    {
        char *big = malloc(6000);
        strcpy(big, "[nbd]\nprobe_export = ");
        memset(big + 21, 'x', 4096 - 15);
        strcpy(big + 21 + 4096 - 15, "\n");
        ok(load(big, &cfg) == 0 && strlen(cfg.probe_export) == 4096 - 15, "a 4096-byte line loads");
        if (cfg.source)
            config_free(&cfg);
        strcpy(big + 21 + 4096 - 15, "x\n");
        expect_error(big, 2, "line longer than 4096 bytes");
        free(big);
    }

    /* errors past the 50th are counted, not shown */
    {
        char text[4000] = "[nbd]\n";
        for (int i = 0; i < 60; i++)
            strcat(text, "nope = 1\n");
        rc = load(text, &cfg);
        unsigned lines = 0;
        for (const char *c = errs; *c; c++)
            lines += *c == '\n';
        ok(rc == -EINVAL && lines == 51, "60 errors: 50 messages and a count (%u lines)", lines);
        char want[200];
        snprintf(want, sizeof want, "%s: 10 more errors not shown\n", path);
        ok(strlen(errs) > strlen(want) && !strcmp(errs + strlen(errs) - strlen(want), want),
           "the count comes last: %s", want);
    }

    /* several errors are all reported */
    rc = load("[boot]\nunmount_stale = maybe\nnope = 1\n[nbd]\nconnect_timeout = x\n", &cfg);
    {
        int lines = 0;
        for (const char *p = errs; *p; p++)
            lines += *p == '\n';
        ok(rc == -EINVAL && lines == 3, "three errors, three messages (%d)", lines);
    }

    /* durations */
    ok(config_parse_duration_ms("5", &ms) == 0 && ms == 5000, "5 = 5000 ms");
    ok(config_parse_duration_ms("2.5s", &ms) == 0 && ms == 2500, "2.5s = 2500 ms");
    ok(config_parse_duration_ms("0.001", &ms) == 0 && ms == 1, "0.001 = 1 ms");
    ok(config_parse_duration_ms("1m", &ms) == 0 && ms == 60000, "1m");
    ok(config_parse_duration_ms("1.5ms", &ms) < 0, "1.5ms rejected");
    ok(config_parse_duration_ms("0.0001", &ms) < 0, "sub-ms rejected");
    ok(config_parse_duration_ms("-1", &ms) < 0, "negative rejected");
    ok(config_parse_duration_ms("25h", &ms) < 0, "unknown unit rejected");
    ok(config_parse_duration_ms("1441m", &ms) < 0, "over 24 h rejected");

    /* sizes */
    {
        uint64_t b;
        ok(config_parse_size("1G", &b) == 0 && b == 1ull << 30, "1G");
        ok(config_parse_size("512M", &b) == 0 && b == 512ull << 20, "512M");
        ok(config_parse_size("2.5G", &b) == 0 && b == 5ull << 29, "2.5G");
        ok(config_parse_size("16777216", &b) == 0 && b == 16ull << 20, "bytes");
        ok(config_parse_size("15M", &b) < 0, "below 16M rejected");
        ok(config_parse_size("17T", &b) < 0, "above 16T rejected");
        ok(config_parse_size("1GB", &b) < 0, "GB suffix rejected");
        ok(config_parse_size("1g", &b) < 0, "lower-case unit rejected");
        ok(config_defaults(&cfg) == 0 && cfg.default_size == 1ull << 30, "default_size 1G");
        is_str(cfg.image_dir, "/srv/homes", "default image_dir");
        is_str(cfg.skel_dir, "/etc/skel", "default skel");
        config_free(&cfg);
        expect_error("[server]\ndefault_size = huge\n", 2,
                     "bad value for 'default_size': 'huge' (expected a size such as 512M, 1G or "
                     "2.5G, from 16M to 16T)");
    }

    /* [home] */
    {
        char out[64];
        ok(config_defaults(&cfg) == 0, "defaults");
        is_str(cfg.export_template, "%u", "default export");
        is_str(cfg.mount_template, "/home/%u", "default mount_dir");
        is_str(cfg.mount_options, "nosuid,nodev", "default mount options");
        ok(cfg.attach == HP_ATTACH_AUTO && !cfg.fix_owner && cfg.dead_timeout_ms == 30000 &&
               cfg.io_timeout_ms == 10000,
           "default attach auto, fix_owner no, dead_timeout 30s, io_timeout 10s");
        ok(config_home_server(&cfg) == NULL, "no home server by default");
        config_free(&cfg);
        ok(config_expand("/home/%u/x%%y", "alice", out, sizeof out) == 15, "expand length");
        is_str(out, "/home/alice/x%y", "expand %%u and %%%%");
        ok(config_expand("%x", "a", NULL, 0) == -EINVAL, "unknown escape");
        ok(config_expand("%u", "alice", out, 4) == -ENAMETOOLONG, "too long");
        rc = load("[nbd]\nservers = a:1 b:2\n[home]\nexport = homes/%u.img\nattach = fuse\n", &cfg);
        ok(rc == 0 && config_home_server(&cfg) && !strcmp(config_home_server(&cfg)->label, "a:1"),
           "home server defaults to the first server");
        ok(rc == 0 && cfg.attach == HP_ATTACH_FUSE, "attach = fuse");
        ok(rc == 0 && config_export_name(&cfg, "alice", out, sizeof out) == 15,
           "the export name from [home] export");
        is_str(out, "homes/alice.img", "  with the user in it");
        ok(rc == 0 && config_export_name(&cfg, "alice", out, 8) == -ENAMETOOLONG,
           "  too long for its buffer: refused");
        config_free(&cfg);
        rc = load("[nbd]\nservers = a:1\n[home]\nserver = unix:/run/h.sock\n", &cfg);
        ok(rc == 0 && !strcmp(config_home_server(&cfg)->label, "unix:/run/h.sock"),
           "explicit home server");
        config_free(&cfg);
        expect_error("[home]\nexport = fixed\n", 2,
                     "bad value for 'export': 'fixed' (expected a template with %u for the user "
                     "name; %% for a literal %)");
        expect_error("[home]\nmount_dir = home/%u\n", 2,
                     "bad value for 'mount_dir': 'home/%u' (expected an absolute path such as "
                     "/home/%u)");
        expect_error("[home]\nkernel_api = proc\n", 2,
                     "bad value for 'kernel_api': 'proc' (expected auto, netlink or ioctl)");
        expect_error("[home]\nattach = nfs\n", 2,
                     "bad value for 'attach': 'nfs' (expected auto, kernel or fuse)");
    }

    /* [session] and warm connections */
    {
        ok(config_defaults(&cfg) == 0, "defaults");
        ok(cfg.min_uid == 1000 && cfg.lease_ms == 60000 && cfg.kill_grace_ms == 5000 &&
               cfg.pam_timeout_ms == 120000 && !cfg.pam_json && cfg.warm_connections == 2 &&
               cfg.shutdown_timeout_ms == 60000,
           "session defaults: min_uid 1000, lease 60s, kill_grace 5s, text, 2 warm");
        ok(config_list_has(cfg.exempt_services, "systemd-user") &&
               !config_list_has(cfg.exempt_services, "systemd"),
           "systemd-user exempt by default, and only whole names match");
        config_free(&cfg);
        rc = load("[session]\nexempt_users = ops, backup  admin\nmin_uid = 500\n"
                  "pam_messages = json\n[nbd]\nwarm_connections = 0\n",
                  &cfg);
        ok(rc == 0 && cfg.min_uid == 500 && cfg.pam_json && cfg.warm_connections == 0,
           "min_uid, pam_messages, warm_connections set");
        is_str(cfg.exempt_users, "ops backup admin", "names normalized to one space");
        ok(config_list_has(cfg.exempt_users, "backup") && !config_list_has(cfg.exempt_users, "op"),
           "list lookup");
        config_free(&cfg);
        expect_error("[session]\nmin_uid = -1\n", 2,
                     "bad value for 'min_uid': '-1' (expected a whole number)");
        expect_error("[session]\nexempt_users = root, ../x\n", 2,
                     "bad value for 'exempt_users': '../x' is not a user, group or service name");
        expect_error("[session]\npam_messages = html\n", 2,
                     "bad value for 'pam_messages': 'html' (expected text or json)");
        expect_error("[nbd]\nwarm_connections = 17\n", 0,
                     "warm_connections = 17: at most 16 per server");
        ok(config_defaults(&cfg) == 0 && cfg.spare_workers == 1, "1 spare worker by default");
        config_free(&cfg);
        rc = load("[nbd]\nspare_workers = 0\n", &cfg);
        ok(rc == 0 && cfg.spare_workers == 0, "spare_workers = 0: none");
        config_free(&cfg);
        expect_error("[nbd]\nspare_workers = 9\n", 0, "spare_workers = 9: at most 8");
        ok(config_defaults(&cfg) == 0 && cfg.connections == 4, "4 connections a home by default");
        config_free(&cfg);
        rc = load("[nbd]\nconnections = 1\n", &cfg);
        ok(rc == 0 && cfg.connections == 1, "connections = 1");
        config_free(&cfg);
        expect_error("[nbd]\nconnections = 0\n", 0,
                     "connections = 0: expected 1 to 8 NBD connections per home");
        expect_error("[nbd]\nconnections = 9\n", 0,
                     "connections = 9: expected 1 to 8 NBD connections per home");
    }

    /* server addresses */
    ok(config_parse_server("::1", &srv) < 0, "bare IPv6 rejected");
    ok(config_parse_server("host:", &srv) < 0, "empty port rejected");
    ok(config_parse_server(":10809", &srv) < 0, "empty host rejected");
    ok(config_parse_server("bad host:1", &srv) < 0, "space in host rejected");
    ok(config_parse_server("[::1]x", &srv) < 0, "junk after ] rejected");
    ok(config_parse_server("h:0", &srv) < 0, "port 0 rejected");
    ok(config_parse_server("h:+5", &srv) < 0, "signed port rejected");
    ok(config_parse_server("h:65535", &srv) == 0 && !strcmp(srv.port, "65535"), "port 65535");

    /* [remote] */
    ok(config_defaults(&cfg) == 0 && cfg.locator == HP_LOCATOR_STATIC && !cfg.presence &&
           !cfg.presence_fail_open && cfg.hfs_timeout_ms == 100000 &&
           cfg.heartbeat_interval_ms == 15000 && cfg.http_retries == 2,
       "[remote] defaults: static, presence off, fail closed, 100 s, 15 s, 2 retries");
    is_str(cfg.secret_file, "/etc/homeport/secret", "default secret_file");
    config_free(&cfg);
    rc = load("[remote]\nlocator = hfs\nhfs_url = https://hfs%d.example:20100/\nhfs_number = 3\n"
              "presence = on\npresence_url = http://presence:20132\npresence_fail = open\n"
              "hostname = pc-12.room\nca_file = /etc/ssl/site.pem\n",
              &cfg);
    ok(rc == 0 && cfg.locator == HP_LOCATOR_HFS && cfg.presence && cfg.presence_fail_open &&
           cfg.hfs_number == 3,
       "[remote] values load: %s", errs);
    char url[200];
    ok(config_url_expand(cfg.hfs_url, cfg.hfs_number, url, sizeof url) > 0 &&
           !strcmp(url, "https://hfs3.example:20100/"),
       "%%d is the HFS number: %s", url);
    config_free(&cfg);
    ok(config_url_expand("http://h/%%d%d", 7, url, sizeof url) > 0 && !strcmp(url, "http://h/%d7"),
       "%%%% is a literal %%");
    ok(config_url_expand("http://h/%d", 7, url, 10) == -ENAMETOOLONG, "too long for the buffer");
    expect_error("[remote]\nlocator = nfs\n", 2,
                 "bad value for 'locator': 'nfs' (expected static or hfs)");
    expect_error("[remote]\nhfs_url = ftp://x\n", 2,
                 "bad value for 'hfs_url': 'ftp://x' (expected http://host[:port][/path] or "
                 "https://..., with %d for the HFS number and %% for a literal %)");
    expect_error("[remote]\npresence_url = http://h/%s\n", 2,
                 "bad value for 'presence_url': 'http://h/%s' (expected http://host[:port][/path] "
                 "or https://..., with %d for the HFS number and %% for a literal %)");
    expect_error("[remote]\npresence_url = http:///x\n", 2,
                 "bad value for 'presence_url': 'http:///x' (expected http://host[:port][/path] "
                 "or https://..., with %d for the HFS number and %% for a literal %)");
    expect_error("[remote]\nlocator = hfs\n", 0,
                 "locator = hfs needs hfs_url (such as http://hfs%d:20100)");
    expect_error("[remote]\nlocator = hfs\nhfs_url = http://h\nhfs_timeout = 118s\n", 0,
                 "hfs_timeout (118 s) must be at least 5 s shorter than pam_timeout (120 s), or "
                 "the greeter gives up before the home file server answers");
    expect_error("[remote]\npresence = on\n", 0,
                 "presence = on needs presence_url (such as http://presence:20132)");
    expect_error("[remote]\npresence = on\npresence_url = http://p\nheartbeat_interval = 500ms\n",
                 0, "heartbeat_interval = 500 ms: expected 1s to 10m");
    expect_error("[remote]\nhostname = a b\n", 0,
                 "hostname = a b: expected a host name (letters, digits, '.', '_', '-')");
    expect_error("[remote]\nca_file = certs.pem\n", 0,
                 "ca_file = certs.pem: expected an absolute path");
    expect_error("[remote]\npresence_fail = maybe\n", 2,
                 "bad value for 'presence_fail': 'maybe' (expected closed or open)");

    /* [sync]: home_mode = sync */
    rc = load("[home]\nhome_mode = sync\n[sync]\nsshfs_host = files.example\nlogin_sync = "
              "background\nsync_interval = 2m\nserver_links = Documents Musique\n"
              "file_server_link = Serveur de fichiers\n",
              &cfg);
    ok(rc == 0 && cfg.home_mode == HP_HOME_SYNC && cfg.login_sync_background &&
           cfg.sync_interval_ms == 120000 && cfg.max_delete_percent == 50 && cfg.trash_days == 30 &&
           !strcmp(cfg.sync_local_template, "/home/utilisateurs/%u") &&
           !strcmp(cfg.sync_flag_template, "/var/tmp/horizon-pam_session_%u.flag"),
       "[sync] values and defaults load: %s", errs);
    config_free(&cfg);
    expect_error("[home]\nhome_mode = sync\n", 0,
                 "home_mode = sync with mount = sshfs needs sshfs_host (the home server)");
    expect_error("[home]\nhome_mode = roam\n", 2,
                 "bad value for 'home_mode': 'roam' (expected nbd or sync)");
    expect_error("[home]\nhome_mode = sync\n[sync]\nmount = command\n", 0,
                 "mount = command needs mount_command (such as: mount -t cifs //srv/%u %m "
                 "-o credentials=/etc/homeport/cifs)");
    expect_error("[sync]\nmount_command = mount %x\n", 0,
                 "mount_command: only %u (user), %m (mount point) and %% are known");
    expect_error("[home]\nhome_mode = sync\n[sync]\nsshfs_host = h\nauth = key\n", 0,
                 "auth = key needs key_file, an absolute path (%u for a key per user)");
    expect_error("[sync]\nmax_delete_percent = 101\n", 0,
                 "max_delete_percent = 101: expected 0 to 100");
    expect_error("[sync]\nsync_interval = 5s\n", 0,
                 "sync_interval = 5000 ms: expected 0 (off) or at least 10s");
    expect_error("[sync]\nserver_links = Documents ../etc\n", 0,
                 "server_links: '../etc' is not a folder name of the home's top");
    expect_error("[sync]\nsshfs_host = a;b\n", 0,
                 "sshfs_host = a;b: expected a host name or address");
    expect_error("[sync]\nsshfs_options = a b\n", 0,
                 "sshfs_options: expected opt,opt=value,... without spaces");
    rc = load("[sync]\nsync_interval = 0\n", &cfg);
    ok(rc == 0 && cfg.sync_interval_ms == 0, "sync_interval = 0: no passes during the session");
    config_free(&cfg);
    expect_error("[sync]\nsshfs_path = /srv/%x\n", 0,
                 "sshfs_path: only %u (user) and %% are known");
    expect_error("[sync]\nlocal_dir = /home/x\n", 2,
                 "bad value for 'local_dir': '/home/x' (expected a template with %u for the user "
                 "name; %% for a literal %)");
    return tap_done();
}
