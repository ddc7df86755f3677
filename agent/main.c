/* homeport: one binary, several verbs (busybox style).  Each verb is a thin
 * front for one module. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <libmount.h>
#include <libnbd.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <mbedtls/version.h>

#include "boot.h"
#include "config.h"
#include "home.h"
#include "http.h"
#include "image.h"
#include "log.h"
#include "pamclient.h"
#include "remote.h"
#include "roam.h"
#include "server.h"
#include "sync/engine.h"
#include "sync/exclude.h"
#include "tls.h"
#include "user.h"

#include "version.h" /* generated: build/version.h */

struct globals {
    const char *config_path;
    bool config_given;
    int verbose;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: homeport [-c FILE] [-v] VERB [OPTIONS]\n"
               "\n"
               "Brings users' network homes (NBD) to a thin client at login.\n"
               "\n"
               "verbs:\n"
               "  agent [-f] [--replace] run the boot phase, then stay resident and serve\n"
               "                         the PAM stages (-f: in the foreground;\n"
               "                         --replace: take over from a running agent)\n"
               "  pam                    the pam_exec(8) client: account, open_session,\n"
               "                         close_session from PAM_TYPE, PAM_USER, PAM_SERVICE\n"
               "  boot [--json]          run the boot phase once: clean the staging dir,\n"
               "                         check for stale mounts, check the NBD servers\n"
               "  config-check [FILE]    validate a configuration file\n"
               "  mount USER             attach, check and mount USER's home (admin)\n"
               "  umount USER            unmount USER's home and release it (admin)\n"
               "  status [--json]        the homes mounted here, their devices and servers\n"
               "  mkhome USER [--size SIZE] [--skel DIR | --no-skel] [--uid N --gid N]\n"
               "                         create USER's home image on the server side\n"
               "  sync USER [--dry-run] [--allow-deletes]\n"
               "                         one sync pass of USER's roaming home (home_mode =\n"
               "                         sync) with the server home mounted here\n"
               "  sync --local DIR --remote DIR --state FILE [--exclude FILE] [--host NAME]\n"
               "       [--dry-run] [--allow-deletes] [--max-delete-percent N] [--trash-days N]\n"
               "       [--remote-list COMMAND [--remote-dir DIR]]\n"
               "                         one pass between any two trees\n"
               "  sync-list              on the server, run over ssh by a sync pass: list\n"
               "                         the tree named on stdin (homeport(8))\n"
               "  version                print versions of homeport and its libraries\n"
               "  help                   this text\n"
               "\n"
               "options:\n"
               "  -c, --config FILE      configuration file (default " HP_DEFAULT_CONFIG ")\n"
               "  -v, --verbose          more log output (twice: debug)\n"
               "  -h, --help             this text\n"
               "  -V, --version          same as the version verb\n"
               "\n"
               "Exit codes of boot: 0 ok, 1 failed, 2 usage or configuration error,\n"
               "3 staging dir not cleaned (live mounts or a running agent), 4 NBD check failed.\n"
               "Exit codes of sync: 0 done, 1 some paths failed, 2 nothing done (usage,\n"
               "configuration, a tree or the database), 3 deletions held back by the guard.\n"
               "See homeport(8) and homeport.conf(5); TLS for the NBD homes (the certificates,\n"
               "pre-shared keys, the servers' setup): homeport(8), SECURING HOMES.\n");
}

static int print_version(void)
{
    char tls[64];

    mbedtls_version_get_string_full(tls);
    printf("homeport %s\n", HOMEPORT_VERSION);
    printf("libmount %s\n", LIBMOUNT_VERSION);
    struct nbd_handle *h = nbd_create();
    printf("libnbd %s (%s)\n", h ? nbd_get_version(h) : "?",
           h && nbd_supports_tls(h) == 1 ? "TLS for NBD" : "no TLS for NBD");
    if (h)
        nbd_close(h);
    printf("libcurl %s\n", curl_version_info(CURLVERSION_NOW)->version);
    printf("%s\n", tls);
    return 0;
}

static void report_config_error(void *ctx, const char *msg)
{
    (void)ctx;
    log_err("%s", msg);
}

/* Load the configuration: a file named with -c must exist; the default one
 * may be missing (defaults apply). */
static int load_config(const struct globals *g, struct hp_config *cfg)
{
    int rc = config_load(cfg, g->config_path, g->config_given, report_config_error, NULL);

    if (rc == -EINVAL) {
        log_err("%s: configuration not valid; fix the lines above", g->config_path);
        return -1;
    }
    if (rc < 0) {
        log_err("cannot read configuration %s: %s", g->config_path, strerror(-rc));
        return -1;
    }
    if (!cfg->source)
        log_debug("%s not found: using built-in defaults", g->config_path);
    return 0;
}

static enum log_level verbose_level(int verbose, enum log_level base)
{
    if (verbose >= 2)
        return LOG_LVL_DEBUG;
    if (verbose == 1 && base < LOG_LVL_INFO)
        return LOG_LVL_INFO;
    return base;
}

/* Shared option parsing: each verb accepts the global options too.  Before
 * the verb (verb == false) parsing stops at the first non-option; within a
 * verb, options and arguments may be mixed. */
static int parse_opts(int argc, char **argv, struct globals *g, bool verb, const char *extra_short,
                      const struct option *extra_long, int (*on_extra)(int, void *), void *ctx)
{
    struct option longs[16];
    char shorts[32];
    size_t n = 0;
    int c;

    static const struct option base[] = {{"config", required_argument, NULL, 'c'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'}};
    for (size_t i = 0; i < 4; i++)
        longs[n++] = base[i];
    for (const struct option *o = extra_long; o && o->name && n < 15; o++)
        longs[n++] = *o;
    longs[n] = (struct option){0};
    snprintf(shorts, sizeof shorts, "%sc:vhV%s", verb ? "" : "+", extra_short ? extra_short : "");

    optind = 0; /* 0, not 1: a full reset of getopt's state (glibc and musl) */
    while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        switch (c) {
        case 'c':
            g->config_path = optarg;
            g->config_given = true;
            break;
        case 'v': g->verbose++; break;
        case 'h': usage(stdout); exit(0);
        case 'V': exit(print_version());
        default:
            if (on_extra && on_extra(c, ctx) == 0)
                break;
            fprintf(stderr, "Try 'homeport --help'.\n");
            return -1;
        }
    }
    return optind;
}

static int boot_opt(int c, void *ctx)
{
    if (c != 'j')
        return -1;
    *(bool *)ctx = true;
    return 0;
}

static int verb_boot(int argc, char **argv, struct globals *g)
{
    static const struct option longs[] = {{"json", no_argument, NULL, 'j'}, {0}};
    struct hp_config cfg;
    struct boot_report r;
    bool json = false;
    int idx = parse_opts(argc, argv, g, true, "", longs, boot_opt, &json);

    if (idx < 0)
        return BOOT_CONFIG;
    if (idx < argc) {
        fprintf(stderr, "homeport boot: unexpected argument '%s'\n", argv[idx]);
        return BOOT_CONFIG;
    }
    /* Until the configuration names a log target, problems with it go to
     * whoever ran us. */
    log_open(LOG_TO_STDERR, verbose_level(g->verbose, LOG_LVL_WARN));
    if (load_config(g, &cfg) < 0)
        return BOOT_CONFIG;
    /* The report on stdout says it all; on a terminal the log would only
     * repeat it, unless asked for with -v. */
    log_open(cfg.log_target, verbose_level(g->verbose, cfg.log_level));
    if (g->verbose == 0 && log_current_target() == LOG_TO_STDERR && isatty(STDOUT_FILENO))
        log_open(LOG_TO_STDERR, LOG_LVL_ERR);

    char why[HP_WHY_MAX];
    if (tls_setup(&cfg, why, sizeof why) < 0) {
        fprintf(stderr, "homeport boot: %s\n", why);
        config_free(&cfg);
        return BOOT_CONFIG;
    }
    boot_run(&cfg, &boot_env_default, &r);
    if (json)
        boot_print_json(stdout, &r);
    else
        boot_print_text(stdout, &r);
    fflush(stdout);
    int rc = r.exit_code;
    boot_report_free(&r);
    config_free(&cfg);
    return rc;
}

static int verb_config_check(int argc, char **argv, struct globals *g)
{
    struct hp_config cfg;
    int idx = parse_opts(argc, argv, g, true, NULL, NULL, NULL, NULL);

    if (idx < 0)
        return 2;
    if (idx < argc) {
        g->config_path = argv[idx++];
        g->config_given = true;
    }
    if (idx < argc) {
        fprintf(stderr, "homeport config-check: unexpected argument '%s'\n", argv[idx]);
        return 2;
    }
    log_open(LOG_TO_STDERR, verbose_level(g->verbose, LOG_LVL_NOTICE));
    g->config_given = true; /* checking a file that does not exist is an error */
    if (load_config(g, &cfg) < 0)
        return 2;
    /* what the agent would refuse at start: the secret of the services,
     * the TLS files */
    char why[HP_WHY_MAX];
    int rc = remote_setup(&cfg, why, sizeof why);
    remote_cleanup();
    if (rc == 0)
        rc = tls_check(&cfg, why, sizeof why);
    config_free(&cfg);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", g->config_path, why);
        return 1;
    }
    printf("%s: ok\n", g->config_path);
    return 0;
}

struct mkhome_opts {
    const char *size, *skel, *uid, *gid;
    bool no_skel;
};

static int mkhome_opt(int c, void *ctx)
{
    struct mkhome_opts *o = ctx;

    switch (c) {
    case 's': o->size = optarg; return 0;
    case 'k': o->skel = optarg; return 0;
    case 'n': o->no_skel = true; return 0;
    case 'u': o->uid = optarg; return 0;
    case 'g': o->gid = optarg; return 0;
    default: return -1;
    }
}

static int parse_id(const char *s, unsigned *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || !*s || *end || v >= 0xffffffffUL || s[0] == '-')
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

static int verb_mkhome(int argc, char **argv, struct globals *g)
{
    static const struct option longs[] = {
        {"size", required_argument, NULL, 's'}, {"skel", required_argument, NULL, 'k'},
        {"no-skel", no_argument, NULL, 'n'},    {"uid", required_argument, NULL, 'u'},
        {"gid", required_argument, NULL, 'g'},  {0}};
    struct mkhome_opts o = {0};
    struct hp_config cfg;
    struct image_spec spec;
    const char *user, *why, *tool;
    unsigned uid, gid;
    int idx = parse_opts(argc, argv, g, true, "", longs, mkhome_opt, &o), rc;

    if (idx < 0)
        return 2;
    if (idx != argc - 1) {
        fprintf(stderr, "usage: homeport mkhome USER [--size SIZE] [--skel DIR | --no-skel] "
                        "[--uid N --gid N]\n");
        return 2;
    }
    user = argv[idx];
    log_open(LOG_TO_STDERR, verbose_level(g->verbose, LOG_LVL_NOTICE));
    if ((why = user_name_problem(user))) {
        log_err("invalid user name '%s': it %s", user, why);
        return 2;
    }
    if (load_config(g, &cfg) < 0)
        return 2;
    spec = (struct image_spec){.dir = cfg.image_dir,
                               .user = user,
                               .size = cfg.default_size,
                               .skel = o.no_skel ? NULL : (o.skel ? o.skel : cfg.skel_dir)};
    rc = 2;
    if (o.size && config_parse_size(o.size, &spec.size) < 0) {
        log_err("bad --size '%s': expected a size such as 512M, 1G or 2.5G, from 16M to 16T",
                o.size);
        goto out;
    }
    if (!o.uid != !o.gid) {
        log_err("give both --uid and --gid, or neither");
        goto out;
    }
    if (o.uid) {
        if (parse_id(o.uid, &uid) < 0 || parse_id(o.gid, &gid) < 0) {
            log_err("bad --uid or --gid: expected numbers");
            goto out;
        }
    } else {
        struct passwd *pw = getpwnam(user);
        if (!pw) {
            log_err("user '%s' is unknown on this machine: give --uid and --gid", user);
            goto out;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    spec.uid = uid;
    spec.gid = gid;
    if (spec.skel && access(spec.skel, R_OK | X_OK) < 0) {
        log_err("skeleton directory %s: %s (use --skel DIR or --no-skel)", spec.skel,
                strerror(errno));
        goto out;
    }
    rc = image_create(&spec, &tool);
    if (rc == -EEXIST) {
        log_err("%s/%s already exists: refusing to overwrite a home image", spec.dir, user);
        rc = 1;
    } else if (rc < 0) {
        log_err("cannot create %s/%s: %s", spec.dir, user, strerror(-rc));
        rc = 1;
    } else if (rc > 0) {
        log_err("cannot create %s/%s: %s failed (exit %d); nothing was left behind", spec.dir, user,
                tool ? tool : "a tool", rc);
        rc = 1;
    } else {
        printf("created %s/%s: %llu bytes, ext4, owner %u:%u%s%s\n", spec.dir, user,
               (unsigned long long)spec.size, uid, gid, spec.skel ? ", from " : "",
               spec.skel ? spec.skel : "");
        log_info("created home image %s/%s for uid %u", spec.dir, user, uid);
    }
out:
    config_free(&cfg);
    return rc;
}

static void print_progress(void *ctx, const char *msg)
{
    (void)ctx;
    printf("%s\n", msg);
    fflush(stdout);
}

/* mount USER / umount USER: exit 0, 1 on failure, 2 on bad usage. */
static int verb_home(int argc, char **argv, struct globals *g, bool mount)
{
    struct hp_config cfg;
    char why[HP_WHY_MAX];
    int idx = parse_opts(argc, argv, g, true, NULL, NULL, NULL, NULL), rc;

    if (idx < 0)
        return 2;
    if (idx != argc - 1) {
        fprintf(stderr, "usage: homeport %s USER\n", mount ? "mount" : "umount");
        return 2;
    }
    log_open(LOG_TO_STDERR, verbose_level(g->verbose, LOG_LVL_WARN));
    if (load_config(g, &cfg) < 0)
        return 2;
    log_open(cfg.log_target, verbose_level(g->verbose, LOG_LVL_WARN));
    if (cfg.home_mode == HP_HOME_SYNC) { /* a roaming home: its last pass, then the unmount */
        if (mount) {
            fprintf(stderr, "homeport mount: home_mode = sync: a roaming home is mounted at its "
                            "user's login (the server may want the user's password)\n");
            config_free(&cfg);
            return 2;
        }
        if (!roam_mounted(&cfg, argv[idx])) {
            fprintf(stderr, "homeport umount %s: no roaming home of %s is mounted here\n",
                    argv[idx], argv[idx]);
            config_free(&cfg);
            return 1;
        }
        rc = roam_logout(&cfg, argv[idx], cfg.pam_timeout_ms, why, sizeof why);
        printf("%s\n", why);
        if (rc < 0)
            fprintf(stderr, "homeport umount %s: %s\n", argv[idx], why);
        config_free(&cfg);
        return rc < 0 ? 1 : 0;
    }
    if (mount) {
        /* an admin's mount: located like a login's, without presence */
        struct hp_server srv;
        rc = http_global_init();
        if (rc < 0)
            snprintf(why, sizeof why, "cannot initialize libcurl");
        else
            rc = remote_setup(&cfg, why, sizeof why);
        if (rc == 0)
            rc = tls_setup(&cfg, why, sizeof why);
        if (rc == 0)
            rc = remote_locate(&cfg, argv[idx], &srv, print_progress, NULL, why, sizeof why);
        if (rc == 0)
            rc = home_mount(&cfg, argv[idx], &srv, print_progress, NULL, why, sizeof why);
        remote_cleanup();
    } else
        rc = home_umount(&cfg, argv[idx], why, sizeof why);
    if (rc < 0)
        fprintf(stderr, "homeport %s %s: %s\n", mount ? "mount" : "umount", argv[idx], why);
    else if (!mount)
        printf("Home of %s unmounted and released\n", argv[idx]);
    config_free(&cfg);
    return rc == -EINVAL ? 2 : rc < 0 ? 1 : 0;
}

static int verb_status(int argc, char **argv, struct globals *g)
{
    static const struct option longs[] = {{"json", no_argument, NULL, 'j'}, {0}};
    struct hp_config cfg;
    bool json = false;
    int idx = parse_opts(argc, argv, g, true, "", longs, boot_opt, &json), rc;

    if (idx < 0)
        return 2;
    if (idx < argc) {
        fprintf(stderr, "homeport status: unexpected argument '%s'\n", argv[idx]);
        return 2;
    }
    log_open(LOG_TO_STDERR, verbose_level(g->verbose, LOG_LVL_WARN));
    if (load_config(g, &cfg) < 0)
        return 2;
    rc = cfg.home_mode == HP_HOME_SYNC ? roam_status(&cfg, stdout, json)
                                       : home_status(&cfg, stdout, json);
    config_free(&cfg);
    return rc > 0 ? 1 : 0;
}

#define LIST_ARGV_MAX 64

struct sync_args {
    struct sync_opts o;
    bool dry_run, allow_deletes;
    const char *exclude;
    char *list_argv[LIST_ARGV_MAX + 1];
    int bad;
};

/* --remote-list's words (split on blanks, never given to a shell). */
static int split_words(char *s, char **argv, size_t max)
{
    size_t n = 0;

    for (char *w = strtok(s, " \t"); w; w = strtok(NULL, " \t")) {
        if (n == max)
            return -E2BIG;
        argv[n++] = w;
    }
    argv[n] = NULL;
    return n ? 0 : -EINVAL;
}

static int sync_opt(int c, void *ctx)
{
    struct sync_args *a = ctx;
    char *end;
    unsigned long n;

    switch (c) {
    case 'n': a->dry_run = true; return 0;
    case 'A': a->allow_deletes = true; return 0;
    case 'L': a->o.local = optarg; return 0;
    case 'R': a->o.remote = optarg; return 0;
    case 'S': a->o.state = optarg; return 0;
    case 'X': a->exclude = optarg; return 0;
    case 'H': a->o.host = optarg; return 0;
    case 'l':
        if (split_words(optarg, a->list_argv, LIST_ARGV_MAX) < 0) {
            fprintf(stderr,
                    "homeport sync: --remote-list: expected a command of at most %d words\n",
                    LIST_ARGV_MAX);
            a->bad = 1;
        }
        a->o.remote_list = a->list_argv;
        return 0;
    case 'D': a->o.remote_dir = optarg; return 0;
    case 'P':
    case 'T':
        errno = 0;
        n = strtoul(optarg, &end, 10);
        if (!isdigit((unsigned char)*optarg) || *end || errno || (c == 'P' && n > 100) ||
            n > 36500) {
            fprintf(stderr, "homeport sync: bad number for --%s: '%s'\n",
                    c == 'P' ? "max-delete-percent" : "trash-days", optarg);
            a->bad = 1;
            return 0;
        }
        if (c == 'P')
            a->o.max_delete_percent = (unsigned)n;
        else
            a->o.trash_days = (unsigned)n;
        return 0;
    }
    return -1;
}

/* Ctrl-C or SIGTERM: the pass ends after the path it is on (a copy is never
 * left half done), what was done is recorded. */
static volatile sig_atomic_t sync_stop;

static void on_sync_signal(int sig)
{
    (void)sig;
    sync_stop = 1;
}

static void sync_line(void *ctx, const char *line)
{
    (void)ctx;
    printf("%s\n", line);
    fflush(stdout);
}

/* Owner of what a pass creates on a side: the root's owner when run as root. */
static void side_owner(const char *root, uid_t *uid, gid_t *gid)
{
    struct stat st;

    *uid = (uid_t)-1;
    *gid = (gid_t)-1;
    if (geteuid() == 0 && stat(root, &st) == 0) {
        *uid = st.st_uid;
        *gid = st.st_gid;
    }
}

static int verb_sync(int argc, char **argv, struct globals *g)
{
    static const struct option longs[] = {{"dry-run", no_argument, NULL, 'n'},
                                          {"allow-deletes", no_argument, NULL, 'A'},
                                          {"local", required_argument, NULL, 'L'},
                                          {"remote", required_argument, NULL, 'R'},
                                          {"state", required_argument, NULL, 'S'},
                                          {"exclude", required_argument, NULL, 'X'},
                                          {"host", required_argument, NULL, 'H'},
                                          {"max-delete-percent", required_argument, NULL, 'P'},
                                          {"trash-days", required_argument, NULL, 'T'},
                                          {"remote-list", required_argument, NULL, 'l'},
                                          {"remote-dir", required_argument, NULL, 'D'},
                                          {0}};
    struct sync_args a = {.o = {.max_delete_percent = 50, .trash_days = 30}};
    struct exclude_list ex = {0};
    struct sync_stats st;
    struct hp_config cfg;
    char why[HP_WHY_MAX], host[256];
    const char *user = NULL;
    int idx = parse_opts(argc, argv, g, true, "n", longs, sync_opt, &a), rc;

    if (idx < 0 || a.bad)
        return 2;
    if (idx < argc)
        user = argv[idx++];
    if (idx < argc) {
        fprintf(stderr, "homeport sync: unexpected argument '%s'\n", argv[idx]);
        return 2;
    }
    log_open(LOG_TO_STDERR, verbose_level(g->verbose, LOG_LVL_WARN));
    signal(SIGINT, on_sync_signal);
    signal(SIGTERM, on_sync_signal);
    if (user && (a.o.local || a.o.remote || a.o.state || a.exclude || a.o.host || a.o.remote_list ||
                 a.o.remote_dir || a.o.max_delete_percent != 50 || a.o.trash_days != 30)) {
        fprintf(stderr, "homeport sync: with USER, the trees, the exclusions, the host name and "
                        "the limits come from the configuration: --local, --remote, --state, "
                        "--exclude, --host, --max-delete-percent, --trash-days, --remote-list and "
                        "--remote-dir go without USER\n");
        return 2;
    }
    if (user) {
        int flags = (a.dry_run ? ROAM_DRY_RUN : 0) | (a.allow_deletes ? ROAM_ALLOW_DELETES : 0);
        if (!user_name_valid(user)) {
            fprintf(stderr, "homeport sync: '%s' is not a user name (%s)\n", user,
                    user_name_problem(user));
            return 2;
        }
        if (load_config(g, &cfg) < 0)
            return 2;
        rc = roam_pass(&cfg, user, flags, sync_line, NULL, &sync_stop, &st, why, sizeof why);
        config_free(&cfg);
    } else {
        if (!a.o.local || !a.o.remote || !a.o.state) {
            fprintf(stderr, "homeport sync: USER, or --local DIR --remote DIR --state FILE\n"
                            "Try 'homeport --help'.\n");
            return 2;
        }
        if (a.exclude && (rc = exclude_load(&ex, a.exclude, why, sizeof why)) < 0) {
            fprintf(stderr, "homeport sync: %s\n",
                    rc == -ENOENT ? "no such exclusion list (nor its .local)" : why);
            return 2;
        }
        if (!a.o.host) {
            struct utsname u;
            snprintf(host, sizeof host, "%s", uname(&u) == 0 ? u.nodename : "unknown");
            a.o.host = host;
        }
        a.o.exclude = a.exclude ? &ex : NULL;
        a.o.now = time(NULL);
        a.o.dry_run = a.dry_run;
        a.o.allow_deletes = a.allow_deletes;
        side_owner(a.o.local, &a.o.owner[SYNC_LOCAL], &a.o.group[SYNC_LOCAL]);
        side_owner(a.o.remote, &a.o.owner[SYNC_REMOTE], &a.o.group[SYNC_REMOTE]);
        a.o.report = sync_line;
        a.o.stop = &sync_stop;
        rc = sync_run(&a.o, &st, why, sizeof why);
        exclude_free(&ex);
    }
    if (rc < 0) {
        fprintf(stderr, "homeport sync%s%s: %s\n", user ? " " : "", user ? user : "", why);
        return 2;
    }
    if (!user && st.listed < 0)
        fprintf(stderr,
                "homeport sync: the server could not list the remote tree (%s): it was walked "
                "instead\n",
                st.list_why);
    printf("sync%s: %lu to remote, %lu to local, %lu deleted locally, %lu deleted remotely, "
           "%lu conflicts, %lu special, %lu errors, %lu in step\n",
           a.dry_run ? " (dry run)" : "", st.to_remote, st.to_local, st.del_local, st.del_remote,
           st.conflicts, st.special, st.errors, st.in_step);
    if (st.stopped)
        fprintf(stderr, "homeport sync: stopped before the end; the next pass goes on\n");
    return st.errors || st.stopped ? 1 : st.guarded[0] || st.guarded[1] ? 3 : 0;
}

/* The server's side of a pass's remote walk (sync/listing.h): the request
 * on stdin, the listing on stdout.  Run by the user over ssh: no
 * configuration is read. */
static int verb_sync_list(int argc, char **argv, struct globals *g)
{
    char why[PATH_MAX + 128];
    int idx = parse_opts(argc, argv, g, true, NULL, NULL, NULL, NULL);

    if (idx < 0)
        return 2;
    if (idx < argc) {
        fprintf(stderr, "homeport sync-list: unexpected argument '%s'\n", argv[idx]);
        return 2;
    }
    log_open(LOG_TO_STDERR, verbose_level(g->verbose, LOG_LVL_WARN));
    setvbuf(stdout, NULL, _IOFBF, 65536);
    if (sync_list_serve(stdin, stdout, why, sizeof why) < 0) {
        fprintf(stderr, "homeport sync-list: %s\n", why);
        return 1;
    }
    return 0;
}

static int agent_opt(int c, void *ctx)
{
    struct server_opts *o = ctx;

    if (c == 'f')
        o->foreground = true;
    else if (c == 'r')
        o->replace = true;
    else
        return -1;
    return 0;
}

static int verb_agent(int argc, char **argv, struct globals *g)
{
    static const struct option longs[] = {
        {"foreground", no_argument, NULL, 'f'}, {"replace", no_argument, NULL, 'r'}, {0}};
    struct server_opts o = {0};
    struct hp_config cfg;
    int idx = parse_opts(argc, argv, g, true, "fr", longs, agent_opt, &o);

    if (idx < 0)
        return 2;
    if (idx < argc) {
        fprintf(stderr, "homeport agent: unexpected argument '%s'\n", argv[idx]);
        return 2;
    }
    log_open(LOG_TO_STDERR, verbose_level(g->verbose, LOG_LVL_WARN));
    if (load_config(g, &cfg) < 0)
        return 2;
    /* in the background, log = stderr becomes auto once detached */
    log_open(cfg.log_target, verbose_level(g->verbose, cfg.log_level));
    o.config_path = g->config_path;
    o.config_given = g->config_given;
    o.verbose = g->verbose;
    return server_run(&cfg, &o);
}

static int verb_pam(int argc, char **argv, struct globals *g)
{
    struct hp_config cfg;
    char problem[PATH_MAX + 64] = "";
    int idx = parse_opts(argc, argv, g, true, NULL, NULL, NULL, NULL), rc;

    if (idx < 0)
        return 2;
    if (idx < argc) {
        fprintf(stderr, "homeport pam: unexpected argument '%s'\n", argv[idx]);
        return 2;
    }
    /* stdout is the greeter's: the log goes to syslog or the kernel log */
    log_open(LOG_TO_AUTO, verbose_level(g->verbose, LOG_LVL_WARN));
    rc = config_load(&cfg, g->config_path, g->config_given, report_config_error, NULL);
    if (rc < 0) {
        snprintf(problem, sizeof problem, "configuration %s is not valid%s%s", g->config_path,
                 rc == -EINVAL ? "" : ": ", rc == -EINVAL ? "" : strerror(-rc));
        config_defaults(&cfg); /* for the exemptions: root must still get in */
    }
    log_open(
        cfg.log_target == LOG_TO_STDERR ? LOG_TO_AUTO : cfg.log_target,
        verbose_level(g->verbose, cfg.log_level < LOG_LVL_WARN ? cfg.log_level : LOG_LVL_WARN));
    rc = pamclient_run(&cfg, problem[0] ? problem : NULL, stdout);
    config_free(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    struct globals g = {.config_path = HP_DEFAULT_CONFIG};
    const char *verb;
    int idx;

    log_open(LOG_TO_STDERR, LOG_LVL_NOTICE);
    idx = parse_opts(argc, argv, &g, false, NULL, NULL, NULL, NULL);
    if (idx < 0)
        return 2;
    if (idx >= argc) {
        usage(stderr);
        return 2;
    }
    verb = argv[idx];
    argc -= idx;
    argv += idx;
    if (!strcmp(verb, "boot"))
        return verb_boot(argc, argv, &g);
    if (!strcmp(verb, "agent"))
        return verb_agent(argc, argv, &g);
    if (!strcmp(verb, "pam"))
        return verb_pam(argc, argv, &g);
    if (!strcmp(verb, "config-check"))
        return verb_config_check(argc, argv, &g);
    if (!strcmp(verb, "mount") || !strcmp(verb, "umount"))
        return verb_home(argc, argv, &g, verb[0] == 'm');
    if (!strcmp(verb, "status"))
        return verb_status(argc, argv, &g);
    if (!strcmp(verb, "mkhome"))
        return verb_mkhome(argc, argv, &g);
    if (!strcmp(verb, "sync"))
        return verb_sync(argc, argv, &g);
    if (!strcmp(verb, "sync-list"))
        return verb_sync_list(argc, argv, &g);
    if (!strcmp(verb, "version"))
        return print_version();
    if (!strcmp(verb, "help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "homeport: unknown verb '%s'\nTry 'homeport --help'.\n", verb);
    return 2;
}
