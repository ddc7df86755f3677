#include "session.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "nbd.h"
#include "remote.h"
#include "roam.h"
#include "textfile.h"
#include "tree.h"
#include "user.h"

#define MAX_GROUPS 256
#define MAX_PIDS 4096

const char *session_exempt(const struct hp_config *cfg, const char *user, const char *service,
                           char *buf, size_t len)
{
    struct passwd *pw;

    if (service && *service && config_list_has(cfg->exempt_services, service)) {
        snprintf(buf, len, "PAM service %s is exempt", service);
        return buf;
    }
    if (config_list_has(cfg->exempt_users, user)) {
        snprintf(buf, len, "%s is listed in exempt_users", user);
        return buf;
    }
    pw = getpwnam(user);
    if (!pw)
        return NULL;
    if (pw->pw_uid < cfg->min_uid) {
        snprintf(buf, len, "uid %u of %s is below min_uid %u", (unsigned)pw->pw_uid, user,
                 cfg->min_uid);
        return buf;
    }
    if (cfg->exempt_groups && *cfg->exempt_groups) {
        gid_t groups[MAX_GROUPS];
        int n = MAX_GROUPS;
        if (getgrouplist(user, pw->pw_gid, groups, &n) < 0)
            n = MAX_GROUPS; /* more than that: check the first ones */
        for (int i = 0; i < n; i++) {
            struct group *gr = getgrgid(groups[i]);
            if (gr && config_list_has(cfg->exempt_groups, gr->gr_name)) {
                snprintf(buf, len, "%s is in exempt group %s", user, gr->gr_name);
                return buf;
            }
        }
    }
    return NULL;
}

/* Remember who used this machine last, for the next boot's cache warming.
 * Best effort: a failure is only logged, and no fsync (the agent writes it
 * itself after an open_session it answered, and its loop must not wait on
 * the state disk for a hint). */
static void remember_last_user(const struct hp_config *cfg, const char *user)
{
    char path[4200], line[64];
    int rc = tree_mkdirs(cfg->state_dir, 0755);

    snprintf(path, sizeof path, "%s/last_user", cfg->state_dir);
    snprintf(line, sizeof line, "%s\n", user);
    if (rc == 0)
        rc = textfile_replace(path, line, strlen(line), 0644,
                              TEXTFILE_NO_SYNC); /* temp name per pid */
    if (rc < 0)
        log_warn("cannot record the last user in %s: %s", path, strerror(-rc));
}

const char *session_expected_user(const struct hp_config *cfg, char *buf, size_t len)
{
    char path[4200];

    if (!*cfg->expected_user)
        return NULL;
    if (strcmp(cfg->expected_user, "last") != 0) {
        snprintf(buf, len, "%s", cfg->expected_user);
        return buf;
    }
    snprintf(path, sizeof path, "%s/last_user", cfg->state_dir);
    if (textfile_read_line(path, buf, len, 0) < 0 || !user_name_valid(buf))
        return NULL;
    return buf;
}

/* Warm the server for the expected user: its export's first cache_size. */
static int warm_cache(const struct hp_config *cfg, const char *user, char *msg, size_t len)
{
    const struct hp_server *srv = config_home_server(cfg);
    struct nbd_export ex;
    char export[256];
    uint64_t done = 0;
    int rc;

    if (cfg->locator != HP_LOCATOR_STATIC) {
        /* asking the HFS could start moving an image nobody asked for */
        snprintf(msg, len, "not warming %s: the home file server decides where homes are", user);
        return 0;
    }
    if (!srv || config_export_name(cfg, user, export, sizeof export) < 0) {
        snprintf(msg, len, "no home server or export for %s", user);
        return -EINVAL;
    }
    rc = nbd_export_open(srv, export, cfg->connect_timeout_ms, &ex, msg, len);
    if (rc < 0)
        return rc;
    rc = nbd_export_cache(&ex, cfg->cache_size, &done);
    nbd_export_close(&ex);
    if (rc == -EOPNOTSUPP)
        snprintf(msg, len, "%s cannot cache (no NBD_CMD_CACHE): not warmed for %s", srv->label,
                 user);
    else if (rc < 0)
        snprintf(msg, len, "NBD_CMD_CACHE on export '%s' of %s failed after %llu bytes: %s", export,
                 srv->label, (unsigned long long)done, strerror(-rc));
    else
        snprintf(msg, len, "%s warmed for %s: first %llu bytes of export '%s' cached", srv->label,
                 user, (unsigned long long)done, export);
    return rc;
}

/* Whether pid belongs to uid (its real or saved uid: whom the kernel lets
 * uid signal) and is not a zombie. */
static bool owned_by(long pid, uid_t uid)
{
    char path[64], line[256];
    unsigned long ruid = 0, suid = 0;
    bool got = false, zombie = false;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    f = fopen(path, "re");
    if (!f)
        return false;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "State:", 6))
            zombie = strchr(line, 'Z') != NULL || strchr(line, 'X') != NULL;
        else if (!strncmp(line, "Uid:", 4))
            got = sscanf(line + 4, "%lu %*u %lu", &ruid, &suid) == 2; /* real, effective, saved */
    }
    fclose(f);
    return got && !zombie && (ruid == uid || suid == uid);
}

int session_uid_has_tasks(uid_t uid)
{
    int status;
    pid_t pid = fork();

    if (pid < 0)
        return -errno;
    if (pid == 0) { /* one thread here, whatever the parent: raw syscalls */
        struct rlimit two = {2, 2};
        /* No capability either: CAP_SYS_RESOURCE or CAP_SYS_ADMIN would
         * pass over the limit, and setresuid keeps them when the agent
         * runs with SECBIT_NO_SETUID_FIXUP. */
        struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = {{0, 0, 0}};
        if (syscall(SYS_setresuid, uid, uid, uid) < 0 || syscall(SYS_capset, &h, none) < 0 ||
            syscall(SYS_prlimit64, 0, RLIMIT_NPROC, &two, NULL) < 0)
            _exit(2);
        /* It counts against uid's limit (2: this one and it).
         * NOLINTNEXTLINE(clang-analyzer-security.insecureAPI.vfork): it only _exits */
        pid_t c = vfork();
        if (c == 0)
            _exit(0);
        if (c < 0)
            _exit(errno == EAGAIN ? 1 : 2);
        waitpid(c, NULL, 0); /* not left to the agent, the subreaper */
        _exit(0);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(status) && WEXITSTATUS(status) <= 1 ? WEXITSTATUS(status) : -EIO;
}

/* The live processes of uid, at most max. */
static int list_pids(uid_t uid, pid_t *pids, int max)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;

    if (!d)
        return -errno;
    while ((de = readdir(d)) && n < max) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1 || pid == getpid())
            continue;
        if (owned_by(pid, uid))
            pids[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

int session_kill_user(uid_t uid, unsigned grace_ms, char *report, size_t len)
{
    static pid_t pids[MAX_PIDS];
    int n, first, killed = 0;

    report[0] = '\0';
    if (uid == 0)
        return -EPERM;
    if (session_uid_has_tasks(uid) == 0)
        return 0; /* no task has uid as its real uid: the usual case */
    n = first = list_pids(uid, pids, MAX_PIDS);
    if (n <= 0)
        return n;
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGTERM);
    /* Most are gone within a few ms of SIGTERM: look again after 5, 10,
     * 20, then every 50 ms. */
    for (unsigned waited = 0, step = 5; waited < grace_ms && n > 0;) {
        unsigned ms = step < grace_ms - waited ? step : grace_ms - waited;
        clock_sleep_ms(ms);
        waited += ms;
        n = list_pids(uid, pids, MAX_PIDS);
        step = clock_doubled(step, 50);
    }
    /* Processes forked during the grace are caught here too. */
    for (int round = 0; round < 40 && n > 0; round++) {
        for (int i = 0; i < n; i++)
            killed += kill(pids[i], SIGKILL) == 0;
        clock_sleep_ms(50);
        n = list_pids(uid, pids, MAX_PIDS);
    }
    if (n > 0)
        snprintf(report, len, "%d processes of uid %u still run after SIGKILL", n, (unsigned)uid);
    else if (killed)
        snprintf(report, len, "stopped %d processes of uid %u, %d of them with SIGKILL after %u ms",
                 first, (unsigned)uid, killed, grace_ms);
    else
        snprintf(report, len, "stopped %d processes of uid %u", first, (unsigned)uid);
    return first;
}

/* Where the home of u really is now. */
static enum home_phase look(const struct hp_config *cfg, const struct session_user *u,
                            struct home_state *s)
{
    int rc = home_lookup(cfg, u->name, s);

    if (rc == -ENOENT)
        return HOME_NONE;
    if (rc < 0) {
        char why[HP_WHY_MAX];
        log_warn("the home of %s is not where its record says: releasing what is left", u->name);
        if (home_umount(cfg, u->name, why, sizeof why) < 0)
            log_warn("%s", why);
        if (home_lookup(cfg, u->name, s) < 0)
            return HOME_NONE;
    }
    return s->phase;
}

/* Ask the presence service whether u may log in here (presence = on). */
static int presence_login(const struct hp_config *cfg, struct session_user *u, char *msg,
                          size_t len)
{
    char why[HP_WHY_MAX] = "";
    int rc;

    if (!remote_presence_on(cfg))
        return 0;
    rc = remote_presence(cfg, PRESENCE_LOGIN, u->name, why, sizeof why);
    if (rc == 0) {
        if (why[0]) /* down, and presence_fail = open */
            log_warn("%s", why);
        u->presence = true;
        return 0;
    }
    if (rc == -EACCES)
        snprintf(msg, len, "Login refused: %s", why);
    else
        snprintf(msg, len, "%s", why);
    return rc;
}

/* The home is no longer held here: free the user's presence. */
static void presence_logout(const struct hp_config *cfg, struct session_user *u)
{
    char why[HP_WHY_MAX];

    if (!u->presence)
        return;
    u->presence = false;
    if (remote_presence(cfg, PRESENCE_LOGOUT, u->name, why, sizeof why) < 0)
        log_warn("%s (the service forgets %s by itself without heartbeats)", why, u->name);
}

/* Locate u's export (remote.h) and prepare the home from there. */
static int prepare(const struct hp_config *cfg, struct session_user *u, struct home_ahead *ahead,
                   progress_fn progress, void *ctx, char *msg, size_t msglen)
{
    struct hp_server srv;
    const struct hp_server *home = config_home_server(cfg);
    int rc = remote_locate(cfg, u->name, &srv, progress, ctx, msg, msglen);

    if (rc < 0)
        return rc;
    if (ahead && (!home || strcmp(home->label, srv.label) != 0)) {
        home_ahead_drop(ahead); /* it leads elsewhere */
        ahead = NULL;
    }
    return home_prepare(cfg, u->name, &srv, ahead, progress, ctx, msg, msglen);
}

/* The last logout: what the user left running is stopped before the home
 * goes (or, roaming, before its last pass: nothing writes meanwhile). */
static void stop_user(const struct hp_config *cfg, const struct session_user *u)
{
    struct passwd *pw = getpwnam(u->name);
    char report[256];
    int rc;

    if (!pw)
        return;
    rc = session_kill_user(pw->pw_uid, cfg->kill_grace_ms, report, sizeof report);
    if (rc > 0)
        log_notice("%s: %s", u->name, report);
    else if (rc < 0)
        log_warn("%s: not stopping processes: %s", u->name, strerror(-rc));
}

/* Take the home away; with stop, the user's processes first. */
static int do_close(const struct hp_config *cfg, struct session_user *u, bool stop, char *msg,
                    size_t len)
{
    int rc;

    if (stop)
        stop_user(cfg, u);
    rc = home_umount(cfg, u->name, msg, len);
    if (rc == -ENOENT)
        rc = 0;
    if (rc < 0) {
        if (u->home == HOME_MOUNTED) /* a restarted agent must retry it too */
            home_set_sessions(cfg, u->name, 0, true);
        return rc;
    }
    u->home = HOME_NONE;
    presence_logout(cfg, u);
    snprintf(msg, len, "Home of %s unmounted", u->name);
    return 0;
}

/* ---- home_mode = sync: the roaming profile (roam.h) ---------------------- */

static enum home_phase roam_look(const struct hp_config *cfg, struct session_user *u)
{
    int n = roam_get_sessions(cfg, u->name);

    if (!roam_mounted(cfg, u->name)) {
        if (n >= 0) {
            log_warn("the server home of %s is not mounted any more: forgetting its sessions",
                     u->name);
            roam_forget(cfg, u->name);
        }
        u->sessions = 0;
        return HOME_NONE;
    }
    u->sessions = n > 0 ? n : 0;
    return n > 0 ? HOME_MOUNTED : HOME_PREPARED;
}

static int roam_close(const struct hp_config *cfg, struct session_user *u, bool stop, char *msg,
                      size_t len)
{
    int rc;

    if (stop)
        stop_user(cfg, u);
    rc = roam_logout(cfg, u->name, cfg->pam_timeout_ms / 2, msg, len);
    if (rc < 0)
        return rc;
    u->home = HOME_NONE;
    u->sessions = 0;
    presence_logout(cfg, u);
    return 0;
}

static int roam_stage(const struct hp_config *cfg, enum proto_verb verb, struct session_user *u,
                      progress_fn progress, void *ctx, char *msg, size_t msglen)
{
    struct roam_paths p;
    int rc;

    if (roam_paths(cfg, u->name, &p) < 0)
        return -EINVAL;
    u->home = roam_look(cfg, u);
    switch (verb) {
    case PV_ACCOUNT:
    case PV_OPEN_SESSION:
        if (u->home == HOME_NONE) {
            if (progress)
                progress(ctx, "Checking user...");
            rc = presence_login(cfg, u, msg, msglen);
            if (rc == 0)
                rc = roam_login(cfg, u->name, progress, ctx, msg, msglen);
            if (rc < 0) {
                presence_logout(cfg, u);
                return rc;
            }
            roam_set_sessions(cfg, u->name, 0);
            u->home = HOME_PREPARED;
        }
        if (verb == PV_ACCOUNT) {
            if (!msg[0])
                snprintf(msg, msglen, "Home of %s is ready", u->name);
            return 0;
        }
        u->sessions++;
        roam_set_sessions(cfg, u->name, u->sessions);
        u->home = HOME_MOUNTED;
        if (u->sessions > 1)
            snprintf(msg, msglen, "Home of %s on %s (%d sessions)", u->name, p.local, u->sessions);
        else if (!msg[0])
            snprintf(msg, msglen, "Home of %s on %s", u->name, p.local);
        return 0;
    case PV_CLOSE_SESSION:
        if (u->home != HOME_MOUNTED) {
            snprintf(msg, msglen, "No open session of %s here", u->name);
            return 0;
        }
        if (u->sessions > 1) {
            u->sessions--;
            roam_set_sessions(cfg, u->name, u->sessions);
            snprintf(msg, msglen, "%d session%s of %s still open", u->sessions,
                     u->sessions == 1 ? "" : "s", u->name);
            return 0;
        }
        return roam_close(cfg, u, true, msg, msglen);
    case PV_RELEASE:
        if (u->home == HOME_NONE || u->sessions > 0)
            return 0;
        return roam_close(cfg, u, false, msg, msglen);
    case PV_SYNC:
        if (u->home != HOME_MOUNTED)
            return 0;
        rc = roam_periodic(cfg, u->name);
        return rc == -EBUSY ? 0 : rc;
    default: return 0;
    }
}

/* open_session: count a session on a mounted home, mount a prepared one
 * (a bind mount and a record write), or prepare one first. */
static int open_session(const struct hp_config *cfg, struct session_user *u, struct home_state *s,
                        struct home_ahead *ahead, progress_fn progress, void *ctx, char *msg,
                        size_t msglen)
{
    int rc;

    if (u->home == HOME_MOUNTED) {
        u->sessions = (u->sessions > 0 ? u->sessions : 0) + 1;
        home_set_sessions(cfg, u->name, u->sessions, false);
        if (u->sessions == 1)
            snprintf(msg, msglen, "Home of %s mounted on %s", u->name, s->mountpoint);
        else
            snprintf(msg, msglen, "Home of %s mounted on %s (%d sessions)", u->name, s->mountpoint,
                     u->sessions);
        return 0;
    }
    /* A prepared home: s is its record, just read (look, home_record). */
    bool recorded = u->home == HOME_PREPARED;
    if (u->home == HOME_NONE) { /* no account stage, or its lease ran out */
        rc = presence_login(cfg, u, msg, msglen);
        if (rc == 0)
            rc = prepare(cfg, u, ahead, progress, ctx, msg, msglen);
        if (rc < 0) {
            presence_logout(cfg, u);
            return rc;
        }
        u->home = HOME_PREPARED;
    }
    rc = home_enter(cfg, u->name, recorded ? s : NULL, 1, s->mountpoint, sizeof s->mountpoint, msg,
                    msglen);
    if (rc < 0)
        return rc;
    u->home = HOME_MOUNTED;
    u->sessions = 1;
    snprintf(msg, msglen, "Home of %s mounted on %s", u->name, s->mountpoint);
    return 0;
}

int session_run(const struct hp_config *cfg, enum proto_verb verb, const char *service,
                struct home_ahead *ahead, struct session_user *u, progress_fn progress, void *ctx,
                char *msg, size_t msglen)
{
    struct home_state s;
    char why[HP_WHY_MAX];
    int rc;

    msg[0] = '\0';
    if (verb != PV_RELEASE && verb != PV_CACHE &&
        session_exempt(cfg, u->name, service, why, sizeof why)) {
        log_debug("%s %s: %s", proto_verb_name(verb), u->name, why);
        return 0; /* untouched, silently */
    }
    if (cfg->home_mode == HP_HOME_SYNC)
        return verb == PV_CACHE ? 0 : roam_stage(cfg, verb, u, progress, ctx, msg, msglen);
    u->home = look(cfg, u, &s);
    switch (verb) {
    case PV_ACCOUNT:
        if (progress)
            progress(ctx, "Checking user...");
        rc = presence_login(cfg, u, msg, msglen);
        if (rc < 0)
            return rc;
        if (u->home != HOME_NONE) {
            snprintf(msg, msglen, "Home of %s is ready", u->name);
            return 0;
        }
        rc = prepare(cfg, u, ahead, progress, ctx, msg, msglen);
        if (rc < 0) {
            presence_logout(cfg, u);
            return rc;
        }
        u->home = HOME_PREPARED;
        snprintf(msg, msglen, "Home of %s is ready", u->name);
        return 0;
    case PV_OPEN_SESSION: return open_session(cfg, u, &s, ahead, progress, ctx, msg, msglen);
    case PV_CLOSE_SESSION:
        if (u->home != HOME_MOUNTED || u->sessions <= 0) {
            u->sessions = 0;
            snprintf(msg, msglen, "No open session of %s here", u->name);
            return 0;
        }
        if (u->sessions > 1) {
            u->sessions--;
            home_set_sessions(cfg, u->name, u->sessions, false);
            snprintf(msg, msglen, "%d session%s of %s still open: home stays mounted", u->sessions,
                     u->sessions == 1 ? "" : "s", u->name);
            return 0;
        }
        u->sessions = 0;
        home_set_sessions(cfg, u->name, 0, false);
        return do_close(cfg, u, true, msg, msglen);
    case PV_RELEASE: /* the lease ran out, or an unmount is retried */
        if (u->home == HOME_NONE || u->sessions > 0)
            return 0;
        return do_close(cfg, u, u->home == HOME_MOUNTED, msg, msglen);
    case PV_CACHE: return u->home == HOME_NONE ? warm_cache(cfg, u->name, msg, msglen) : 0;
    case PV_SYNC:
    case PV_AUTH:
    case PV_PING: break;
    }
    snprintf(msg, msglen, "not a stage: %s", proto_verb_name(verb) ? proto_verb_name(verb) : "?");
    return -EINVAL;
}

int session_open_prepared(const struct hp_config *cfg, const char *service, struct session_user *u,
                          char *msg, size_t msglen)
{
    struct home_state s;

    msg[0] = '\0';
    /* The exemptions that need no look-up; a user exempt by uid or group
     * (NSS, which may ask a directory server: not for the agent's own
     * process) has no prepared home to open. */
    if (cfg->home_mode != HP_HOME_NBD ||
        (service && *service && config_list_has(cfg->exempt_services, service)) ||
        config_list_has(cfg->exempt_users, u->name))
        return -EAGAIN;
    if (home_record(cfg, u->name, &s) < 0)
        return -EAGAIN;
    if (s.phase == HOME_PREPARED) {
        /* home_enter checks it against the system (one read of the mount
         * table): -ENOENT when it is not whole, for a job to prepare it
         * again. */
        u->home = HOME_PREPARED;
        int rc = open_session(cfg, u, &s, NULL, NULL, NULL, msg, msglen);
        return rc == -ENOENT ? -EAGAIN : rc;
    }
    if (home_lookup(cfg, u->name, &s) < 0 || s.phase != HOME_MOUNTED)
        return -EAGAIN;
    u->home = HOME_MOUNTED;
    return open_session(cfg, u, &s, NULL, NULL, NULL, msg, msglen);
}

void session_after(const struct hp_config *cfg, enum proto_verb verb, int rc,
                   const struct session_user *u)
{
    if (verb == PV_OPEN_SESSION && rc == 0 && u->home == HOME_MOUNTED && u->sessions == 1)
        remember_last_user(cfg, u->name);
}
