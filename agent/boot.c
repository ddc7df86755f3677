#include "boot.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "textfile.h"
#include "tls.h"
#include "tree.h"

const struct boot_env boot_env_default = {
    .mountinfo = "/proc/self/mountinfo",
    .sysfs = "/sys",
    .stat_timeout_ms = 2000,
};

static const char *staging_name(enum staging_result s)
{
    switch (s) {
    case STAGING_EMPTIED: return "emptied";
    case STAGING_REFUSED_MOUNTS: return "refused-mounts";
    case STAGING_REFUSED_AGENT: return "refused-agent";
    case STAGING_FAILED: return "failed";
    }
    return "unknown";
}

pid_t boot_running_agent(const char *run_dir)
{
    char path[PATH_MAX], buf[32];
    long pid;
    char *end;

    snprintf(path, sizeof path, "%s/agent.pid", run_dir);
    if (textfile_read_line(path, buf, sizeof buf, 1) < 0)
        return 0;
    errno = 0;
    pid = strtol(buf, &end, 10);
    if (errno || pid <= 1 || pid > INT_MAX || *end)
        return 0;
    if (pid == getpid() || (kill((pid_t)pid, 0) < 0 && errno != EPERM) ||
        boot_process_exiting((pid_t)pid))
        return 0; /* ourselves, or one that is gone or on its way out */
    /* The pid may have been reused by an unrelated process. */
    snprintf(path, sizeof path, "/proc/%ld/comm", pid);
    if (textfile_read_line(path, buf, sizeof buf, 0) < 0)
        return 0;
    return strcmp(buf, "homeport") == 0 ? (pid_t)pid : 0;
}

/* Whether the hex signal mask on line "Name:\t..." of /proc/PID/status has
 * SIGKILL. */
static bool kill_pending(const char *status, const char *name)
{
    const char *l = strstr(status, name);
    unsigned long long mask;

    return l && sscanf(l + strlen(name), " %llx", &mask) == 1 && (mask >> (SIGKILL - 1)) & 1;
}

bool boot_process_exiting(pid_t pid)
{
    char path[64], buf[2048];
    unsigned long flags = 0;
    char state = 0;
    const char *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (textfile_read_line(path, buf, sizeof buf, 0) < 0)
        return true;
    /* pid (comm) state ppid pgrp session tty tpgid flags ...; comm may
     * hold blanks and parentheses: skip to the last ')' */
    p = strrchr(buf, ')');
    if (!p || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %lu", &state, &flags) != 2)
        return true;
    if (state == 'Z' || state == 'X' || (flags & 0x4 /* PF_EXITING */))
        return true;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (!(f = fopen(path, "re")))
        return true;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return kill_pending(buf, "\nShdPnd:") || kill_pending(buf, "\nSigPnd:");
}

static int add_mount(struct boot_report *r, const struct hp_mount *m, enum mount_health h,
                     const char *detail, bool below_staging)
{
    struct boot_mount *g = realloc(r->mounts, (r->nmounts + 1) * sizeof *g), *b;

    if (!g)
        return -ENOMEM;
    r->mounts = g;
    b = &r->mounts[r->nmounts];
    memset(b, 0, sizeof *b);
    b->source = strdup(m->source);
    b->target = strdup(m->target);
    b->fstype = strdup(m->fstype);
    if (!b->source || !b->target || !b->fstype) {
        free(b->source);
        free(b->target);
        free(b->fstype);
        return -ENOMEM;
    }
    b->health = h;
    snprintf(b->detail, sizeof b->detail, "%s", detail);
    b->below_staging = below_staging;
    b->action = BOOT_KEPT;
    b->reported = below_staging || h != MH_LIVE;
    r->nmounts++;
    return 0;
}

static bool is_prefix_dir(const char *dir, const char *path)
{
    size_t len = strlen(dir);
    return strncmp(dir, path, len) == 0 && path[len] == '/';
}

/* Is some live mount (of the list) mounted below target?  Lazily detaching
 * target would take it along. */
static bool live_below(const struct boot_report *r, const char *target)
{
    for (size_t i = 0; i < r->nmounts; i++)
        if (r->mounts[i].health == MH_LIVE && is_prefix_dir(target, r->mounts[i].target))
            return true;
    return false;
}

/* Classify what is mounted under dir; record what is worth reporting. */
static int survey(struct boot_report *r, const struct boot_env *env, const struct hp_mount_table *t,
                  const char *dir, bool staging)
{
    const struct hp_mount **v;
    long n = mounts_below(t, dir, &v);

    if (n < 0)
        return (int)n;
    for (long i = 0; i < n; i++) {
        char detail[256];
        enum mount_health h;

        /* The staging dir's own mounts are surveyed separately. */
        if (!staging && (strcmp(v[i]->target, r->cfg->staging_dir) == 0 ||
                         is_prefix_dir(r->cfg->staging_dir, v[i]->target)))
            continue;
        /* The home root itself being a mount (a /home partition) is normal. */
        if (!staging && strcmp(v[i]->target, dir) == 0)
            continue;
        h = mounts_health(v[i], env->sysfs, env->stat_timeout_ms, detail, sizeof detail);
        if (add_mount(r, v[i], h, detail, staging) < 0) {
            free(v);
            return -ENOMEM;
        }
    }
    free(v);
    return 0;
}

/* Is target below a mount that was detached already?  A lazy detach takes
 * the whole subtree, and a path below a dead FUSE mount cannot even be
 * resolved any more. */
static bool detached_above(const struct boot_report *r, const char *target)
{
    for (size_t i = 0; i < r->nmounts; i++)
        if (r->mounts[i].action == BOOT_DONE && is_prefix_dir(r->mounts[i].target, target))
            return true;
    return false;
}

static void detach_stale(struct boot_report *r)
{
    /* Each survey lists its mounts deepest first: walk backwards so that a
     * stale parent goes before its children, which it takes along. */
    for (size_t k = r->nmounts; k-- > 0;) {
        struct boot_mount *m = &r->mounts[k];
        if (!mount_health_detachable(m->health))
            continue;
        if (live_below(r, m->target)) {
            log_warn("stale %s mount on %s not detached: a live mount is below it", m->fstype,
                     m->target);
            continue;
        }
        if (detached_above(r, m->target)) {
            m->action = BOOT_DONE;
            continue;
        }
        m->action = mounts_detach(m->target);
        if (m->action == 0)
            log_notice("detached stale %s mount %s on %s (%s)", m->fstype, m->source, m->target,
                       m->detail);
        else
            log_err("cannot detach stale mount on %s: %s", m->target, strerror(-m->action));
    }
}

static void clean_staging(struct boot_report *r, const struct boot_env *env)
{
    const char *dir = r->cfg->staging_dir;
    struct hp_mount_table t;
    const struct hp_mount **v;
    struct tree_stats st = {0};
    long n;
    int rc;

    /* Look again: detaching may have failed, or something was stacked. */
    rc = mounts_read(env->mountinfo, &t);
    if (rc < 0) {
        r->staging = STAGING_FAILED;
        r->staging_err = rc;
        return;
    }
    n = mounts_below(&t, dir, &v);
    if (n < 0) {
        mounts_free(&t);
        r->staging = STAGING_FAILED;
        r->staging_err = (int)n;
        return;
    }
    if (n > 0) {
        r->staging = STAGING_REFUSED_MOUNTS;
        log_warn("not cleaning %s: %ld mount(s) at or below it", dir, n);
        for (long i = 0; i < n; i++) {
            bool known = false;
            for (size_t j = 0; j < r->nmounts; j++)
                if (r->mounts[j].below_staging && r->mounts[j].action != BOOT_DONE &&
                    strcmp(r->mounts[j].target, v[i]->target) == 0)
                    known = true;
            log_warn("  %s on %s type %s", v[i]->source, v[i]->target, v[i]->fstype);
            /* A mount that appeared since the survey: list it too. */
            if (!known && add_mount(r, v[i], MH_LIVE, "ok", true) < 0)
                r->internal_err = -ENOMEM;
        }
        free(v);
        mounts_free(&t);
        return;
    }
    free(v);
    mounts_free(&t);

    rc = tree_mkdirs(dir, 0755); /* the dir itself too: reset replaces it anyway */
    if (rc == 0)
        rc = tree_reset_dir(dir, &st);
    r->removed = st.removed;
    r->skipped = st.skipped;
    if (rc < 0) {
        r->staging = STAGING_FAILED;
        r->staging_err = rc;
        snprintf(r->staging_err_name, sizeof r->staging_err_name, "%s", st.first_err_name);
        log_err("cannot empty %s: %s%s%s", dir, strerror(-rc), st.first_err_name[0] ? " at " : "",
                st.first_err_name);
        return;
    }
    r->staging = STAGING_EMPTIED;
    log_info("emptied %s (%lu %s removed)", dir, st.removed, st.removed == 1 ? "entry" : "entries");
}

static int add_leftover(struct boot_report *r, const char *path, const char *kind, int action)
{
    struct boot_leftover *g = realloc(r->leftovers, (r->nleftovers + 1) * sizeof *g);

    if (!g)
        return -ENOMEM;
    r->leftovers = g;
    g[r->nleftovers].path = strdup(path);
    if (!g[r->nleftovers].path)
        return -ENOMEM;
    g[r->nleftovers].kind = kind;
    g[r->nleftovers].action = action;
    r->nleftovers++;
    return 0;
}

/* Remove path if it is of the expected type (never a directory). */
static int remove_leftover(struct boot_report *r, const char *path, const char *kind, mode_t want)
{
    struct stat st;
    int action;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : add_leftover(r, path, kind, -errno);
    if (S_ISDIR(st.st_mode) || (want && (st.st_mode & S_IFMT) != want && !S_ISLNK(st.st_mode)))
        action = BOOT_KEPT;
    else
        action = unlink(path) == 0 ? BOOT_DONE : -errno;
    if (action == BOOT_DONE)
        log_info("removed leftover %s %s", kind, path);
    return add_leftover(r, path, kind, action);
}

static int clean_leftovers(struct boot_report *r)
{
    char path[PATH_MAX];
    glob_t g;
    int rc = 0;

    if (glob(r->cfg->flag_glob, GLOB_NOSORT, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
            rc = remove_leftover(r, g.gl_pathv[i], "sync flag", S_IFREG);
        globfree(&g);
    }
    snprintf(path, sizeof path, "%s/agent.pid", r->cfg->run_dir);
    if (rc == 0)
        rc = remove_leftover(r, path, "pid file", S_IFREG);
    snprintf(path, sizeof path, "%s/agent.sock", r->cfg->run_dir);
    if (rc == 0)
        rc = remove_leftover(r, path, "socket", S_IFSOCK);
    return rc;
}

static enum boot_exit compute_exit(const struct boot_report *r)
{
    bool failed = r->internal_err != 0 || r->staging == STAGING_FAILED;

    for (size_t i = 0; i < r->nmounts; i++)
        if (r->mounts[i].action < 0)
            failed = true;
    for (size_t i = 0; i < r->nleftovers; i++)
        if (r->leftovers[i].action < 0)
            failed = true;
    if (r->staging == STAGING_REFUSED_MOUNTS || r->staging == STAGING_REFUSED_AGENT)
        return BOOT_REFUSED;
    if (failed)
        return BOOT_FAILED;
    if (r->nbd_failed)
        return BOOT_NBD;
    return BOOT_OK;
}

/* Dead nbd devices and loop devices on deleted files, into r->devices.
 * The scan's buffer (BOOT_MAX_DEVICES of them, 270 KB) is on the heap, not
 * the stack: the resident agent runs this once, and a stack keeps its
 * high-water mark resident for the agent's whole life. */
static void scan_devices(struct boot_report *r, const struct boot_env *env)
{
    struct hp_dev_problem *d = calloc(BOOT_MAX_DEVICES, sizeof *d);
    long nd;

    if (!d) {
        r->internal_err = -ENOMEM;
        return;
    }
    nd = mounts_scan_devices(env->sysfs, d, BOOT_MAX_DEVICES);
    if (nd <= 0) {
        free(d);
        return;
    }
    r->devices = realloc(d, (size_t)nd * sizeof *d) ?: d;
    r->ndevices = (size_t)nd;
    for (long i = 0; i < nd; i++)
        log_warn("device %s: %s", r->devices[i].name, r->devices[i].detail);
}

enum boot_exit boot_run(const struct hp_config *cfg, const struct boot_env *env,
                        struct boot_report *r)
{
    struct hp_mount_table t;
    struct timespec t0, t1;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->agent_pid = boot_running_agent(cfg->run_dir);

    rc = mounts_read(env->mountinfo, &t);
    if (rc < 0) {
        log_err("cannot read the mount table %s: %s", env->mountinfo, strerror(-rc));
        r->internal_err = rc;
        r->staging = STAGING_FAILED;
        r->staging_err = rc;
    } else {
        rc = survey(r, env, &t, cfg->staging_dir, true);
        if (rc == 0)
            rc = survey(r, env, &t, cfg->home_root, false);
        mounts_free(&t);
        if (rc < 0)
            r->internal_err = rc;
        if (r->agent_pid) {
            log_warn("an agent is running (pid %d): not cleaning %s nor detaching anything",
                     (int)r->agent_pid, cfg->staging_dir);
            r->staging = STAGING_REFUSED_AGENT;
        } else {
            if (cfg->unmount_stale)
                detach_stale(r);
            clean_staging(r, env);
        }
    }

    scan_devices(r, env);

    if (!r->agent_pid && clean_leftovers(r) < 0)
        r->internal_err = -ENOMEM;

    if (cfg->nservers) {
        r->nbd = calloc(cfg->nservers, sizeof *r->nbd);
        if (!r->nbd) {
            r->internal_err = -ENOMEM;
        } else {
            r->nnbd = cfg->nservers;
            r->nbd_failed = nbd_probe_servers(cfg->servers, cfg->nservers, cfg->probe_export,
                                              cfg->connect_timeout_ms, r->nbd);
            for (size_t i = 0; i < r->nnbd; i++)
                if (r->nbd[i].err)
                    log_warn("NBD server %s: %s", r->nbd[i].server->label, r->nbd[i].message);
        }
    }
    r->exit_code = compute_exit(r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->elapsed_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    return r->exit_code;
}

void boot_report_free(struct boot_report *r)
{
    for (size_t i = 0; i < r->nmounts; i++) {
        free(r->mounts[i].source);
        free(r->mounts[i].target);
        free(r->mounts[i].fstype);
    }
    free(r->mounts);
    for (size_t i = 0; i < r->nleftovers; i++)
        free(r->leftovers[i].path);
    free(r->leftovers);
    free(r->devices);
    if (r->nbd)
        nbd_probe_free(r->nbd, r->nnbd);
    free(r->nbd);
    memset(r, 0, sizeof *r);
}

static const char *exit_name(enum boot_exit e)
{
    switch (e) {
    case BOOT_OK: return "ok";
    case BOOT_FAILED: return "failed";
    case BOOT_CONFIG: return "config error";
    case BOOT_REFUSED: return "cleanup refused";
    case BOOT_NBD: return "NBD check failed";
    }
    return "unknown";
}

/* Text output quotes nothing; a file name with a newline would break a
 * line, so such bytes are shown as '?'. */
static void put_safe(FILE *f, const char *s)
{
    for (; *s; s++)
        fputc((unsigned char)*s < 0x20 ? '?' : *s, f);
}

static const char *action_text(int action, char *buf, size_t len, const char *done)
{
    if (action == BOOT_DONE)
        return done;
    if (action == BOOT_KEPT)
        return "kept";
    snprintf(buf, len, "failed: %s", strerror(-action));
    return buf;
}

void boot_print_text(FILE *f, const struct boot_report *r)
{
    const struct hp_config *c = r->cfg;
    char buf[128];

    fprintf(f, "staging ");
    put_safe(f, c->staging_dir);
    switch (r->staging) {
    case STAGING_EMPTIED:
        fprintf(f, ": emptied (%lu %s removed)\n", r->removed,
                r->removed == 1 ? "entry" : "entries");
        break;
    case STAGING_REFUSED_AGENT:
        fprintf(f, ": not cleaned: an agent is running (pid %d)\n", (int)r->agent_pid);
        break;
    case STAGING_REFUSED_MOUNTS:
        fprintf(f, ": not cleaned: something is mounted at or below it; nothing deleted\n");
        break;
    case STAGING_FAILED:
        fprintf(f, ": FAILED: %s%s", strerror(-r->staging_err),
                r->staging_err_name[0] ? " at " : "");
        put_safe(f, r->staging_err_name);
        fprintf(f, " (%lu removed, %lu left)\n", r->removed, r->skipped);
        break;
    }
    for (size_t i = 0; i < r->nmounts; i++) {
        const struct boot_mount *m = &r->mounts[i];
        if (!m->reported)
            continue;
        fprintf(f, "mount %s ", mount_health_name(m->health));
        put_safe(f, m->source);
        fprintf(f, " on ");
        put_safe(f, m->target);
        fprintf(f, " type ");
        put_safe(f, m->fstype);
        if (m->health != MH_LIVE) {
            fprintf(f, ": ");
            put_safe(f, m->detail);
        }
        fprintf(f, ": %s\n", action_text(m->action, buf, sizeof buf, "detached"));
    }
    for (size_t i = 0; i < r->ndevices; i++)
        fprintf(f, "device %s %s: %s: reported\n", r->devices[i].name,
                mount_health_name(r->devices[i].health), r->devices[i].detail);
    for (size_t i = 0; i < r->nleftovers; i++) {
        fprintf(f, "leftover %s ", r->leftovers[i].kind);
        put_safe(f, r->leftovers[i].path);
        fprintf(f, ": %s\n", action_text(r->leftovers[i].action, buf, sizeof buf, "removed"));
    }
    for (size_t i = 0; i < r->nnbd; i++) {
        const struct nbd_probe *p = &r->nbd[i];
        fprintf(f, "nbd %s: ", p->server->label);
        if (p->err) {
            fprintf(f, "FAILED during %s: %s\n", p->phase, p->message);
            continue;
        }
        fprintf(f, "%s, %s, ", p->probe_err ? "PROBE FAILED" : "ok", p->protocol);
        if (p->connect_ms >= 0)
            fprintf(f, "connect %.2f ms, ", p->connect_ms);
        fprintf(f, "handshake %.2f ms, rtt %.2f ms", p->handshake_ms, p->rtt_ms);
        if (p->tls == 1)
            fprintf(f, ", TLS (%s)%s%s", tls_describe(p->server->tls, buf, sizeof buf),
                    p->tls_info[0] ? ": " : "", p->tls_info);
        else if (p->server->tls)
            fprintf(f, ", in clear: the server does not offer TLS (tls = on)");
        if (p->list_err)
            fprintf(f, ", export list refused (%s)", strerror(-p->list_err));
        else {
            fprintf(f, ", %zu export%s", p->nexports, p->nexports == 1 ? "" : "s");
            for (size_t j = 0; j < p->nexports && j < 8; j++) {
                fputs(j ? ", " : " (", f);
                put_safe(f, p->exports[j][0] ? p->exports[j] : "\"\"");
            }
            if (p->nexports > 8)
                fprintf(f, ", ...");
            if (p->nexports)
                fputc(')', f);
        }
        if (c->probe_export[0]) {
            fprintf(f, ", probe export '");
            put_safe(f, c->probe_export);
            if (p->probe_err || p->probe_size < 0)
                fprintf(f, "': %s", p->probe_msg);
            else
                fprintf(f, "' %lld bytes", (long long)p->probe_size);
        }
        fputc('\n', f);
    }
    fprintf(f, "result %d (%s), boot phase %.1f ms\n", r->exit_code, exit_name(r->exit_code),
            r->elapsed_ms);
}

static void json_action(FILE *f, int action, const char *done)
{
    if (action == BOOT_DONE)
        json_str(f, done);
    else if (action == BOOT_KEPT)
        json_str(f, "kept");
    else {
        char buf[128];
        snprintf(buf, sizeof buf, "failed: %s", strerror(-action));
        json_str(f, buf);
    }
}

/* Stable names for the errors a probe reports, for scripts. */
static const char *errno_name(int e)
{
    switch (e) {
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPROTO: return "EPROTO";
    case ENOTSUP: return "ENOTSUP";
    case ENOMEM: return "ENOMEM";
    default: return "EIO";
    }
}

static void json_err_or_null(FILE *f, int err)
{
    if (err)
        json_str(f, strerror(-err));
    else
        fputs("null", f);
}

/* One server's entry of the "nbd" list. */
static void json_nbd_probe(FILE *f, const struct nbd_probe *p, const char *probe_export)
{
    fprintf(f, "{\"server\": ");
    json_str(f, p->server->label);
    fprintf(f, ", \"ok\": %s, \"error\": ", p->err || p->probe_err ? "false" : "true");
    if (p->err)
        json_str(f, p->message);
    else
        fputs("null", f);
    fprintf(f, ", \"errno\": ");
    if (p->err)
        json_str(f, errno_name(-p->err));
    else
        fputs("null", f);
    fprintf(f, ", \"phase\": ");
    json_str(f, p->err ? p->phase : "done");
    fprintf(f, ", \"protocol\": ");
    json_str(f, p->protocol);
    fprintf(f, ", \"connect_ms\": ");
    if (p->connect_ms >= 0)
        fprintf(f, "%.3f", p->connect_ms);
    else
        fputs("null", f);
    fprintf(f, ", \"handshake_ms\": %.3f, \"rtt_ms\": %.3f", p->handshake_ms, p->rtt_ms);
    fprintf(f, ", \"tls\": %s, \"tls_info\": ",
            p->tls == 1   ? "true"
            : p->tls == 0 ? "false"
                          : "null");
    if (p->tls == 1) {
        char kind[64], info[sizeof p->tls_info + 80];
        snprintf(info, sizeof info, "%s%s%s", tls_describe(p->server->tls, kind, sizeof kind),
                 p->tls_info[0] ? ": " : "", p->tls_info);
        json_str(f, info);
    } else {
        fputs("null", f);
    }
    fprintf(f, ", \"exports\": ");
    if (p->err || p->list_err)
        fputs("null", f);
    else {
        fputc('[', f);
        for (size_t j = 0; j < p->nexports; j++) {
            if (j)
                fputs(", ", f);
            json_str(f, p->exports[j]);
        }
        fputc(']', f);
    }
    fprintf(f, ", \"list_error\": ");
    json_err_or_null(f, p->err ? 0 : p->list_err);
    fprintf(f, ", \"probe_export\": ");
    json_str(f, probe_export);
    fprintf(f, ", \"probe_size\": ");
    if (p->probe_size >= 0)
        fprintf(f, "%lld", (long long)p->probe_size);
    else
        fputs("null", f);
    fprintf(f, ", \"probe_error\": ");
    if (p->probe_err)
        json_str(f, p->probe_msg);
    else
        fputs("null", f);
    fprintf(f, ", \"probe_note\": ");
    if (!p->probe_err && p->probe_size < 0 && p->probe_msg[0])
        json_str(f, p->probe_msg);
    else
        fputs("null", f);
    fputc('}', f);
}

void boot_print_json(FILE *f, const struct boot_report *r)
{
    const struct hp_config *c = r->cfg;

    fprintf(f, "{\"version\": 1, \"config\": ");
    if (c->source)
        json_str(f, c->source);
    else
        fputs("null", f);
    fprintf(f, ", \"agent_pid\": ");
    if (r->agent_pid)
        fprintf(f, "%d", (int)r->agent_pid);
    else
        fputs("null", f);
    fprintf(f, ",\n \"staging\": {\"path\": ");
    json_str(f, c->staging_dir);
    fprintf(f, ", \"result\": ");
    json_str(f, staging_name(r->staging));
    fprintf(f, ", \"removed\": %lu, \"left\": %lu, \"error\": ", r->removed, r->skipped);
    json_err_or_null(f, r->staging == STAGING_FAILED ? r->staging_err : 0);
    fprintf(f, ", \"error_entry\": ");
    if (r->staging_err_name[0])
        json_str(f, r->staging_err_name);
    else
        fputs("null", f);
    fprintf(f, "},\n \"mounts\": [");
    for (size_t i = 0, shown = 0; i < r->nmounts; i++) {
        const struct boot_mount *m = &r->mounts[i];
        if (!m->reported)
            continue;
        fprintf(f, "%s\n  {\"source\": ", shown++ ? "," : "");
        json_str(f, m->source);
        fprintf(f, ", \"target\": ");
        json_str(f, m->target);
        fprintf(f, ", \"fstype\": ");
        json_str(f, m->fstype);
        fprintf(f, ", \"health\": ");
        json_str(f, mount_health_name(m->health));
        fprintf(f, ", \"detail\": ");
        json_str(f, m->detail);
        fprintf(f, ", \"below_staging\": %s, \"action\": ", m->below_staging ? "true" : "false");
        json_action(f, m->action, "detached");
        fputc('}', f);
    }
    fprintf(f, "],\n \"devices\": [");
    for (size_t i = 0; i < r->ndevices; i++) {
        fprintf(f, "%s\n  {\"name\": ", i ? "," : "");
        json_str(f, r->devices[i].name);
        fprintf(f, ", \"health\": ");
        json_str(f, mount_health_name(r->devices[i].health));
        fprintf(f, ", \"detail\": ");
        json_str(f, r->devices[i].detail);
        fputc('}', f);
    }
    fprintf(f, "],\n \"leftovers\": [");
    for (size_t i = 0; i < r->nleftovers; i++) {
        fprintf(f, "%s\n  {\"path\": ", i ? "," : "");
        json_str(f, r->leftovers[i].path);
        fprintf(f, ", \"kind\": ");
        json_str(f, r->leftovers[i].kind);
        fprintf(f, ", \"action\": ");
        json_action(f, r->leftovers[i].action, "removed");
        fputc('}', f);
    }
    fprintf(f, "],\n \"nbd\": [");
    for (size_t i = 0; i < r->nnbd; i++) {
        fputs(i ? ",\n  " : "\n  ", f);
        json_nbd_probe(f, &r->nbd[i], c->probe_export);
    }
    fprintf(f, "],\n \"elapsed_ms\": %.3f, \"exit_code\": %d, \"result\": ", r->elapsed_ms,
            r->exit_code);
    json_str(f, exit_name(r->exit_code));
    fprintf(f, "}\n");
}
