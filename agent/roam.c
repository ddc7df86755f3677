/* roam: see roam.h. */
#include "roam.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "mounts.h"
#include "remote.h"
#include "spawn.h"
#include "sync/exclude.h"
#include "textfile.h"
#include "tree.h"
#include "user.h"

#define ARGV_MAX 64

int roam_paths(const struct hp_config *cfg, const char *user, struct roam_paths *p)
{
    if (!user_name_valid(user))
        return -EINVAL;
    if (config_expand(cfg->sync_local_template, user, p->local, sizeof p->local) < 0 ||
        config_expand(cfg->sync_flag_template, user, p->flag, sizeof p->flag) < 0 ||
        (size_t)snprintf(p->stage, sizeof p->stage, "%s/%s", cfg->staging_dir, user) >=
            sizeof p->stage ||
        (size_t)snprintf(p->state, sizeof p->state, "%s/sync/%s.db", cfg->state_dir, user) >=
            sizeof p->state ||
        (size_t)snprintf(p->record, sizeof p->record, "%s/roam/%s", cfg->run_dir, user) >=
            sizeof p->record)
        return -ENAMETOOLONG;
    return 0;
}

bool roam_mounted(const struct hp_config *cfg, const char *user)
{
    struct roam_paths p;
    struct hp_mount_table t = {0};
    bool found = false;

    if (roam_paths(cfg, user, &p) < 0 || mounts_read("/proc/self/mountinfo", &t) < 0)
        return false;
    for (size_t i = 0; i < t.n && !found; i++)
        found = !strcmp(t.v[i].target, p.stage);
    mounts_free(&t);
    return found;
}

/* ---- the pass ---------------------------------------------------------------- */

/* The site's list, plus the names that are links to the server here: they
 * are never copied (the link would fight the folder). */
static int load_excludes(const struct hp_config *cfg, struct exclude_list *l, char *why, size_t len)
{
    char pat[300];
    int rc = exclude_load(l, cfg->sync_exclude, why, len);

    if (rc == -ENOENT) {
        log_warn("%s: no exclusion list (nor %s.local): nothing is excluded", cfg->sync_exclude,
                 cfg->sync_exclude);
        rc = 0;
    }
    if (rc < 0)
        return rc;
    for (const char *s = cfg->server_links; *s && rc == 0;) {
        size_t n = strcspn(s, " \t");
        if (n) {
            snprintf(pat, sizeof pat, "/%.*s", (int)n, s);
            rc = exclude_add(l, pat);
        }
        s += n;
        s += strspn(s, " \t");
    }
    if (rc == 0 && *cfg->file_server_link) {
        snprintf(pat, sizeof pat, "/%s", cfg->file_server_link);
        rc = exclude_add(l, pat);
    }
    if (rc < 0)
        snprintf(why, len, "the links' names cannot be excluded: %s", strerror(-rc));
    return rc;
}

int roam_pass(const struct hp_config *cfg, const char *user, int flags,
              void (*report)(void *ctx, const char *line), void *ctx, struct sync_stats *st,
              char *why, size_t whylen)
{
    struct roam_paths p;
    struct exclude_list ex = {0};
    struct passwd *pw = getpwnam(user);
    char host[256], dir[PATH_MAX];
    struct sync_opts o = {0};
    int rc;

    memset(st, 0, sizeof *st);
    if (roam_paths(cfg, user, &p) < 0) {
        snprintf(why, whylen, "not a user name that can be synced: '%s'", user);
        return -EINVAL;
    }
    if (!pw) {
        snprintf(why, whylen, "no such user: %s", user);
        return -ENOENT;
    }
    if (!roam_mounted(cfg, user)) {
        snprintf(why, whylen, "the server home of %s is not mounted on %s", user, p.stage);
        return -ENOTCONN;
    }
    snprintf(dir, sizeof dir, "%s/sync", cfg->state_dir);
    if ((rc = tree_mkdirs(dir, 0700)) < 0) {
        snprintf(why, whylen, "cannot create %s: %s", dir, strerror(-rc));
        return rc;
    }
    if ((rc = load_excludes(cfg, &ex, why, whylen)) < 0)
        return rc;
    o.local = p.local;
    o.remote = p.stage;
    o.state = p.state;
    o.exclude = &ex;
    o.host = remote_host_name(cfg, host, sizeof host);
    o.now = time(NULL);
    o.dry_run = flags & ROAM_DRY_RUN;
    o.allow_deletes = flags & ROAM_ALLOW_DELETES;
    o.max_delete_percent = cfg->max_delete_percent;
    o.trash_days = cfg->trash_days;
    o.owner[SYNC_LOCAL] = o.owner[SYNC_REMOTE] = pw->pw_uid;
    o.group[SYNC_LOCAL] = o.group[SYNC_REMOTE] = pw->pw_gid;
    o.report = report;
    o.ctx = ctx;
    rc = sync_run(&o, st, why, whylen);
    exclude_free(&ex);
    return rc;
}

/* ---- mounting ------------------------------------------------------------- */

/* Expand %u, %m and %% of a mount_command word. */
static int expand_word(const char *w, size_t n, const char *user, const char *mp, char *out,
                       size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        const char *add = NULL;
        char one[2] = {w[i], '\0'};
        if (w[i] == '%' && i + 1 < n) {
            i++;
            add = w[i] == 'u' ? user : w[i] == 'm' ? mp : w[i] == '%' ? "%" : NULL;
            if (!add)
                return -EINVAL;
        } else {
            add = one;
        }
        size_t al = strlen(add);
        if (o + al >= len)
            return -ENAMETOOLONG;
        memcpy(out + o, add, al);
        o += al;
    }
    out[o] = '\0';
    return 0;
}

/* Run argv with secret (may be NULL) on its stdin, its stderr captured in
 * why, for at most timeout_ms.  Its exit status, or -ETIMEDOUT / -errno. */
static int run_tool(char *const argv[], const char *secret, unsigned timeout_ms, char *why,
                    size_t whylen)
{
    int in[2], err[2], status, rc = 0;
    size_t got = 0;
    uint64_t end = clock_ms() + timeout_ms;
    pid_t pid;

    if (pipe2(in, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(err, O_CLOEXEC) < 0) {
        rc = -errno;
        close(in[0]);
        close(in[1]);
        return rc;
    }
    pid = fork();
    if (pid < 0) {
        rc = -errno;
        close(in[0]);
        close(in[1]);
        close(err[0]);
        close(err[1]);
        return rc;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(in[0], 0);
        dup2(null, 1);
        dup2(err[1], 2);
        spawn_close_fds(NULL, 0);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(err[1]);
    if (secret) {
        size_t n = strlen(secret);
        signal(SIGPIPE, SIG_IGN);
        if (write(in[1], secret, n) != (ssize_t)n || write(in[1], "\n", 1) != 1)
            log_debug("%s did not read its password", argv[0]);
    }
    close(in[1]);
    why[0] = '\0';
    /* sshfs forks into the background once mounted: its stderr stays open in
     * the daemon, so the wait is for the first process's exit, not for EOF */
    for (;;) {
        struct pollfd pf = {err[0], POLLIN, 0};
        pid_t w = waitpid(pid, &status, WNOHANG);
        uint64_t now = clock_ms();
        if (w == pid)
            break;
        if (now >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            rc = -ETIMEDOUT;
            break;
        }
        if (poll(&pf, 1, (int)(end - now < 100 ? end - now : 100)) > 0) {
            ssize_t r = read(err[0], why + got, whylen - got - 1);
            if (r > 0) {
                got += (size_t)r;
                why[got] = '\0';
            } else if (r == 0) {
                pf.fd = -1;
            }
        }
    }
    {
        /* what is left in the pipe, without waiting for a daemon's EOF */
        int fl = fcntl(err[0], F_GETFL);
        ssize_t r;
        fcntl(err[0], F_SETFL, fl | O_NONBLOCK);
        while (got + 1 < whylen && (r = read(err[0], why + got, whylen - got - 1)) > 0)
            got += (size_t)r;
        why[got] = '\0';
    }
    close(err[0]);
    while (got > 0 && (why[got - 1] == '\n' || why[got - 1] == '\r'))
        why[--got] = '\0';
    for (char *c = why; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    if (rc < 0)
        return rc;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int roam_mount(const struct hp_config *cfg, const char *user, const char *password, char *why,
               size_t whylen)
{
    struct roam_paths p;
    struct passwd *pw = getpwnam(user);
    char *argv[ARGV_MAX + 1], words[ARGV_MAX][PATH_MAX], err[1024] = "";
    char src[600], opts[4096], remote_dir[PATH_MAX] = "", user_at[300];
    size_t n = 0;
    int rc;

    if (roam_paths(cfg, user, &p) < 0) {
        snprintf(why, whylen, "not a valid user name: '%s'", user);
        return -EINVAL;
    }
    if (!pw) {
        snprintf(why, whylen, "no such user: %s", user);
        return -ENOENT;
    }
    if (roam_mounted(cfg, user))
        return -EALREADY;
    if (mkdir(p.stage, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(why, whylen, "cannot create %s: %s", p.stage, strerror(errno));
        return rc;
    }
    chmod(p.stage, 0700);
    if (cfg->sync_mount == HP_SYNC_COMMAND) {
        const char *s = cfg->sync_mount_command;
        while (*s && n < ARGV_MAX) {
            size_t wl = strcspn(s, " \t");
            if (wl && expand_word(s, wl, user, p.stage, words[n], sizeof words[n]) < 0) {
                snprintf(why, whylen, "mount_command: cannot expand '%.*s'", (int)wl, s);
                return -EINVAL;
            }
            if (wl)
                argv[n] = words[n], n++;
            s += wl;
            s += strspn(s, " \t");
        }
        argv[n] = NULL;
        password = NULL;
        if (n == 0) {
            snprintf(why, whylen, "mount_command is empty");
            return -EINVAL;
        }
    } else {
        if (config_expand(cfg->sshfs_user, user, user_at, sizeof user_at) < 0 ||
            (*cfg->sshfs_path && expand_word(cfg->sshfs_path, strlen(cfg->sshfs_path), user,
                                             p.stage, remote_dir, sizeof remote_dir) < 0)) {
            snprintf(why, whylen, "sshfs_user or sshfs_path cannot be expanded for %s", user);
            return -EINVAL;
        }
        snprintf(src, sizeof src, "%s@%s:%s", user_at, cfg->sshfs_host, remote_dir);
        rc = snprintf(opts, sizeof opts,
                      "port=%u,reconnect,ServerAliveInterval=15,ServerAliveCountMax=3,"
                      "ConnectTimeout=%u,allow_other,default_permissions,uid=%u,gid=%u,"
                      "UserKnownHostsFile=%s,StrictHostKeyChecking=yes,",
                      cfg->sshfs_port, cfg->sync_mount_timeout_ms / 1000 + 1, (unsigned)pw->pw_uid,
                      (unsigned)pw->pw_gid, cfg->sync_known_hosts);
        if (cfg->sync_auth == HP_SYNC_AUTH_KEY) {
            char key[PATH_MAX];
            if (config_expand(cfg->sync_key_file, user, key, sizeof key) < 0 &&
                (size_t)snprintf(key, sizeof key, "%s", cfg->sync_key_file) >= sizeof key)
                return -ENAMETOOLONG;
            rc += snprintf(opts + rc, sizeof opts - (size_t)rc,
                           "IdentityFile=%s,IdentitiesOnly=yes,BatchMode=yes,"
                           "PasswordAuthentication=no",
                           key);
            password = NULL;
        } else {
            if (!password) {
                snprintf(why, whylen,
                         "no password of %s to mount the server home with (auth = password "
                         "needs the auth line with pam_exec expose_authtok: see homeport(8))",
                         user);
                return -EACCES;
            }
            rc += snprintf(opts + rc, sizeof opts - (size_t)rc,
                           "password_stdin,PreferredAuthentications=password,"
                           "PubkeyAuthentication=no,NumberOfPasswordPrompts=1");
        }
        if (*cfg->sshfs_options)
            snprintf(opts + rc, sizeof opts - (size_t)rc, ",%s", cfg->sshfs_options);
        argv[n++] = "sshfs";
        argv[n++] = src;
        argv[n++] = p.stage;
        argv[n++] = "-o";
        argv[n++] = opts;
        argv[n] = NULL;
    }
    rc = run_tool(argv, password, cfg->sync_mount_timeout_ms, err, sizeof err);
    if (rc == 0 && roam_mounted(cfg, user)) {
        log_notice("server home of %s mounted on %s", user, p.stage);
        return 0;
    }
    if (rc == -ETIMEDOUT)
        snprintf(why, whylen, "mounting the server home of %s timed out after %u s", user,
                 cfg->sync_mount_timeout_ms / 1000);
    else if (rc == 127 || rc == -ENOENT)
        snprintf(why, whylen, "cannot run %s (is it installed?)", argv[0]);
    else
        snprintf(why, whylen, "mounting the server home of %s failed (%s exit %d)%s%s", user,
                 argv[0], rc, err[0] ? ": " : "", err);
    if (rc == 0) /* it said yes but nothing is there */
        rc = -EIO;
    else if (strstr(err, "Permission denied") || strstr(err, "Authentication failed"))
        rc = -EACCES;
    else
        rc = rc < 0 ? rc : -EIO;
    return rc;
}

int roam_umount(const struct hp_config *cfg, const char *user, char *why, size_t whylen)
{
    struct roam_paths p;

    if (roam_paths(cfg, user, &p) < 0)
        return -EINVAL;
    if (!roam_mounted(cfg, user))
        return -ENOENT;
    if (umount2(p.stage, 0) == 0 || (errno == EBUSY && umount2(p.stage, MNT_DETACH) == 0)) {
        rmdir(p.stage);
        log_notice("server home of %s unmounted from %s", user, p.stage);
        return 0;
    }
    snprintf(why, whylen, "cannot unmount %s: %s", p.stage, strerror(errno));
    return -errno;
}

/* ---- the local home ------------------------------------------------------- */

/* A link name -> target in dirfd, owned by the user; an existing link is
 * replaced, anything else there is left (and said). */
static int put_link(int dirfd, const char *name, const char *target, uid_t uid, gid_t gid)
{
    struct stat st;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (!S_ISLNK(st.st_mode)) {
            log_warn("%s is not a link to the server: left as it is (move it away to get the link)",
                     name);
            return 0;
        }
        unlinkat(dirfd, name, 0);
    }
    if (symlinkat(target, dirfd, name) < 0)
        return -errno;
    fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
    return 0;
}

int roam_prepare_local(const struct hp_config *cfg, const char *user, char *why, size_t whylen)
{
    struct roam_paths p;
    struct passwd *pw = getpwnam(user);
    char target[PATH_MAX + 300], name[256], parent[PATH_MAX];
    struct stat st;
    int fd, rc = 0;

    if (roam_paths(cfg, user, &p) < 0 || !pw) {
        snprintf(why, whylen, "no such user: %s", user);
        return -ENOENT;
    }
    snprintf(parent, sizeof parent, "%s", p.local);
    *strrchr(parent, '/') = '\0';
    if (*parent && (rc = tree_mkdirs(parent, 0755)) < 0) {
        snprintf(why, whylen, "cannot create %s: %s", parent, strerror(-rc));
        return rc;
    }
    if (mkdir(p.local, 0700) == 0) {
        if (chown(p.local, pw->pw_uid, pw->pw_gid) < 0) {
            rc = -errno;
            snprintf(why, whylen, "cannot give %s to %s: %s", p.local, user, strerror(errno));
            return rc;
        }
        log_notice("created the local home of %s: %s", user, p.local);
    } else if (errno != EEXIST) {
        rc = -errno;
        snprintf(why, whylen, "cannot create %s: %s", p.local, strerror(errno));
        return rc;
    }
    fd = open(p.local, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = -errno;
        snprintf(why, whylen, "%s: %s", p.local, strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    if (st.st_uid != pw->pw_uid) {
        close(fd);
        snprintf(why, whylen, "%s belongs to uid %u, not to %s: not syncing into it", p.local,
                 (unsigned)st.st_uid, user);
        return -EPERM;
    }
    for (const char *s = cfg->server_links; *s && rc == 0;) {
        size_t n = strcspn(s, " \t");
        if (n) {
            snprintf(name, sizeof name, "%.*s", (int)n, s);
            snprintf(target, sizeof target, "%s/%s", p.stage, name);
            rc = put_link(fd, name, target, pw->pw_uid, pw->pw_gid);
        }
        s += n;
        s += strspn(s, " \t");
    }
    if (rc == 0 && *cfg->file_server_link)
        rc = put_link(fd, cfg->file_server_link, p.stage, pw->pw_uid, pw->pw_gid);
    close(fd);
    if (rc < 0)
        snprintf(why, whylen, "cannot link %s to the server: %s", p.local, strerror(-rc));
    return rc;
}

/* ---- records -------------------------------------------------------------- */

/* path := text, atomically (a temp file renamed over it). */
static int write_small(const char *path, const char *text)
{
    char tmp[PATH_MAX];
    size_t n = strlen(text);
    int fd, rc = 0;

    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return -ENAMETOOLONG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (write(fd, text, n) != (ssize_t)n)
        rc = -EIO;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int roam_get_sessions(const struct hp_config *cfg, const char *user)
{
    struct roam_paths p;
    char buf[64];
    int n;

    if (roam_paths(cfg, user, &p) < 0)
        return -EINVAL;
    if (textfile_read_line(p.record, buf, sizeof buf, 1) < 0)
        return -ENOENT;
    return sscanf(buf, "sessions=%d", &n) == 1 && n >= 0 ? n : -ENOENT;
}

int roam_set_sessions(const struct hp_config *cfg, const char *user, int sessions)
{
    struct roam_paths p;
    char buf[64], dir[PATH_MAX];
    int rc;

    if (roam_paths(cfg, user, &p) < 0)
        return -EINVAL;
    snprintf(dir, sizeof dir, "%s/roam", cfg->run_dir);
    if ((rc = tree_mkdirs(dir, 0700)) < 0)
        return rc;
    snprintf(buf, sizeof buf, "sessions=%d\n", sessions);
    return write_small(p.record, buf);
}

void roam_forget(const struct hp_config *cfg, const char *user)
{
    struct roam_paths p;

    if (roam_paths(cfg, user, &p) == 0)
        unlink(p.record);
}

int roam_status(const struct hp_config *cfg, FILE *out, bool json)
{
    char dir[PATH_MAX];
    struct dirent *de;
    DIR *d;
    int bad = 0, n = 0;

    snprintf(dir, sizeof dir, "%s/roam", cfg->run_dir);
    if (!(d = opendir(dir)))
        return 0;
    while ((de = readdir(d))) {
        struct roam_paths p;
        bool m;
        int s;
        if (!user_name_valid(de->d_name) || roam_paths(cfg, de->d_name, &p) < 0)
            continue;
        m = roam_mounted(cfg, de->d_name);
        s = roam_get_sessions(cfg, de->d_name);
        bad += !m;
        if (json)
            fprintf(
                out,
                "%s{\"user\": \"%s\", \"mode\": \"sync\", \"local\": \"%s\", \"stage\": \"%s\", "
                "\"mounted\": %s, \"sessions\": %d}",
                n ? ", " : "", de->d_name, p.local, p.stage, m ? "true" : "false", s);
        else
            fprintf(out, "%s: roaming home %s, server home on %s (%s), %d session%s\n", de->d_name,
                    p.local, p.stage, m ? "mounted" : "NOT MOUNTED", s, s == 1 ? "" : "s");
        n++;
    }
    closedir(d);
    return bad;
}
