/* config: whole files through config_load, as `homeport config-check` and
 * the agent read them; then what the agent does with a loaded one (the
 * templates expanded for a user, the service URLs, the home server, the
 * TLS share of each server).
 *
 * Checked: every error message is one NUL-terminated line naming the file;
 * a file that loads has only the values the parser promises (absolute
 * paths, templates with %u, servers with a label). */
#include "config.h"
#include "fuzz.h"

static char path[200];
static unsigned nmsgs;

static void on_error(void *ctx, const char *msg)
{
    (void)ctx;
    nmsgs++;
    FZ_CHECK(strncmp(msg, path, strlen(path)) == 0, "message without the file: %s", msg);
    FZ_CHECK(strlen(msg) < 512 && !strchr(msg, '\n'), "message not one line: %s", msg);
    FZ_CHECK(nmsgs <= 51, "more than 50 errors and their count reported");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(path, sizeof path, "%s/homeport.conf", fz_tmpdir());
    return 0;
}

static void check_path(const char *what, const char *v)
{
    FZ_CHECK(v && v[0] == '/' && (v[1] != '\0'), "%s = '%s' is not an absolute path", what,
             v ? v : "(null)");
    FZ_CHECK(!strstr(v, "/../") && !strstr(v, "/./") && !strstr(v, "//"),
             "%s = '%s' has a ., .. or empty component", what, v);
}

static void check_server(const struct hp_server *s)
{
    FZ_CHECK(s->label[0] && memchr(s->label, '\0', sizeof s->label), "server without a label");
    if (s->kind == HP_SRV_TCP) {
        unsigned long port = strtoul(s->port, NULL, 10);
        FZ_CHECK(s->host[0] && port >= 1 && port <= 65535, "bad server %s", s->label);
    } else {
        FZ_CHECK(s->path[0] == '/', "unix server %s without an absolute path", s->label);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hp_config cfg;
    char out[4200];
    int rc;

    fz_write(path, data, size);
    nmsgs = 0;
    rc = config_load(&cfg, path, true, on_error, NULL);
    FZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM, "config_load: %d", rc);
    FZ_CHECK((rc == 0) == (nmsgs == 0), "rc %d after %u messages", rc, nmsgs);
    if (rc < 0)
        return 0;

    FZ_CHECK(cfg.source && !strcmp(cfg.source, path), "source not kept");
    check_path("run_dir", cfg.run_dir);
    check_path("state_dir", cfg.state_dir);
    check_path("staging_dir", cfg.staging_dir);
    check_path("home_root", cfg.home_root);
    check_path("secret_file", cfg.secret_file);
    check_path("image_dir", cfg.image_dir);
    check_path("skel", cfg.skel_dir);
    FZ_CHECK(cfg.flag_glob[0] == '/', "flag_files not absolute");
    FZ_CHECK(strstr(cfg.export_template, "%u") && strstr(cfg.mount_template, "%u"),
             "a template without %%u");
    for (size_t i = 0; i < cfg.nservers; i++) {
        check_server(&cfg.servers[i]);
        FZ_CHECK(!cfg.servers[i].tls || cfg.servers[i].tls == cfg.tls, "TLS not the config's");
    }
    const struct hp_server *home = config_home_server(&cfg);
    if (home) {
        struct hp_server copy = *home;
        check_server(home);
        config_server_tls(&cfg, &copy);
        FZ_CHECK(copy.tls == home->tls, "config_server_tls disagrees with config_load");
    }
    if (cfg.tls)
        FZ_CHECK(cfg.tls->mode != HP_TLS_AUTO && cfg.tls->psk_identity, "TLS half set");

    /* what the agent does with it for a user */
    static const char *const users[] = {"alice", "a", "x.y-z_0123456789abcdefghijklmnopq"};
    for (size_t u = 0; u < 3; u++) {
        const char *const tmpls[] = {cfg.export_template, cfg.mount_template,
                                     cfg.sync_local_template, cfg.sync_flag_template,
                                     cfg.sshfs_user};
        for (size_t t = 0; t < 5; t++) {
            int n = config_expand(tmpls[t], users[u], out, sizeof out);
            FZ_CHECK(n == -ENAMETOOLONG || (n >= 0 && (size_t)n == strlen(out)),
                     "config_expand('%s') = %d", tmpls[t], n);
            FZ_CHECK(config_expand(tmpls[t], users[u], NULL, 0) >= 0, "a loaded template fails");
        }
        FZ_CHECK(!config_list_has(cfg.exempt_users, ""), "the empty name is listed");
    }
    const char *const urls[] = {cfg.hfs_url, cfg.presence_url};
    for (size_t i = 0; i < 2; i++)
        if (*urls[i]) {
            int n = config_url_expand(urls[i], cfg.hfs_number, out, sizeof out);
            FZ_CHECK(n >= 0 && (size_t)n == strlen(out) && config_url_check(urls[i]) == 0, "url %s",
                     urls[i]);
        }
    config_free(&cfg);
    return 0;
}
