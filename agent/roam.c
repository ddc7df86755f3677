/* roam: see roam.h. */
#include "roam.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "json.h"
#include "log.h"
#include "mounts.h"
#include "remote.h"
#include "roamlist.h"
#include "secret.h"
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

/* The next word of a list separated by blanks ("Documents Musique"), its
 * length in *n; *s moves past it.  NULL at the end. */
static const char *next_word(const char **s, size_t *n)
{
    const char *w = *s + strspn(*s, " \t");

    if (!*w)
        return NULL;
    *n = strcspn(w, " \t");
    *s = w + *n;
    return w;
}

/* "/" + name with the pattern characters escaped: that name, literally. */
static void literal_pattern(const char *name, size_t n, char *out, size_t len)
{
    size_t o = 0;

    if (len < 2)
        return;
    out[o++] = '/';
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        if (strchr("*?[\\", name[i]))
            out[o++] = '\\';
        out[o++] = name[i];
    }
    out[o] = '\0';
}

/* The site's list, plus the names that are links to the server here: they
 * are never copied (the link would fight the folder). */
static int load_excludes(const struct hp_config *cfg, struct exclude_list *l, char *why, size_t len)
{
    char pat[600];
    size_t n;
    int rc = exclude_load(l, cfg->sync_exclude, why, len);

    if (rc == -ENOENT) {
        log_warn("%s: no exclusion list (nor %s.local): nothing is excluded", cfg->sync_exclude,
                 cfg->sync_exclude);
        rc = 0;
    }
    if (rc < 0)
        return rc;
    for (const char *s = cfg->server_links, *w; rc == 0 && (w = next_word(&s, &n));) {
        literal_pattern(w, n, pat, sizeof pat);
        rc = exclude_add(l, pat);
    }
    if (rc == 0 && *cfg->file_server_link) {
        literal_pattern(cfg->file_server_link, strlen(cfg->file_server_link), pat, sizeof pat);
        rc = exclude_add(l, pat);
    }
    if (rc < 0)
        snprintf(why, len, "the links' names cannot be excluded: %s", strerror(-rc));
    return rc;
}

/* STATE.last: how the last pass went, for `homeport status`:
 * "when=EPOCH result=ok|errors|guarded|failed TEXT". */
static void note_last(const struct roam_paths *p, time_t when, int rc, const struct sync_stats *st,
                      const char *why)
{
    char path[PATH_MAX + 8], line[1400];
    const char *res = rc < 0                                                ? "failed"
                      : st->guarded[SYNC_LOCAL] || st->guarded[SYNC_REMOTE] ? "guarded"
                      : st->errors                                          ? "errors"
                                                                            : "ok";

    if (rc == -EBUSY)
        return;
    if (rc < 0)
        snprintf(line, sizeof line, "when=%lld result=%s %s", (long long)when, res, why);
    else
        snprintf(line, sizeof line,
                 "when=%lld result=%s %lu to the server, %lu from it, %lu deleted here, %lu "
                 "deleted there, %lu conflicts, %lu errors, deletions held back: %lu here, %lu "
                 "there",
                 (long long)when, res, st->to_remote, st->to_local, st->del_local, st->del_remote,
                 st->conflicts, st->errors, st->guarded[SYNC_LOCAL], st->guarded[SYNC_REMOTE]);
    snprintf(path, sizeof path, "%s.last", p->state);
    size_t l = strlen(line);
    if (l + 1 < sizeof line)
        memcpy(line + l, "\n", 2);
    textfile_write(path, line, 0600); /* best effort: status says less */
}

int roam_pass(const struct hp_config *cfg, const char *user, int flags,
              void (*report)(void *ctx, const char *line), void *ctx, volatile sig_atomic_t *stop,
              struct sync_stats *st, char *why, size_t whylen)
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
    o.stop = stop;
    struct roamlist rl;
    if (roamlist_get(cfg, user, &rl) == 0) {
        o.remote_list = rl.argv;
        o.remote_dir = rl.dir;
    }
    rc = sync_run(&o, st, why, whylen);
    if (o.remote_list)
        roamlist_result(cfg, user, st);
    exclude_free(&ex);
    if (!o.dry_run)
        note_last(&p, o.now, rc, st, why);
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

/* Debian's sshfs refuses to read absolute and ".." symlinks unless told
 * no_contain_symlinks (an option other builds do not know).  A home's links
 * are synced as links, never followed, so they must be readable. */
static bool sshfs_has_contain_symlinks(void)
{
    static int known = -1;
    static char help[16384];
    const char *const argv[] = {"sshfs", "-h", NULL};

    if (known < 0) {
        spawn_capture(argv, NULL, 5000, true, help, sizeof help);
        known = strstr(help, "no_contain_symlinks") != NULL;
    }
    return known;
}

/* A mount's command line: argv points into the buffers. */
struct mount_cmd {
    char *argv[ARGV_MAX + 1];
    char words[ARGV_MAX][PATH_MAX];
    char src[PATH_MAX + 600], opts[4096];
};

/* mount = command: mount_command's words, expanded. */
static int command_argv(const struct hp_config *cfg, const char *user, const char *stage,
                        struct mount_cmd *m, char *why, size_t whylen)
{
    const char *s = cfg->sync_mount_command, *w;
    size_t n = 0, wl;

    while (n < ARGV_MAX && (w = next_word(&s, &wl))) {
        if (expand_word(w, wl, user, stage, m->words[n], sizeof m->words[n]) < 0) {
            snprintf(why, whylen, "mount_command: cannot expand '%.*s'", (int)wl, w);
            return -EINVAL;
        }
        m->argv[n] = m->words[n];
        n++;
    }
    m->argv[n] = NULL;
    if (n == 0) {
        snprintf(why, whylen, "mount_command is empty");
        return -EINVAL;
    }
    return 0;
}

/* auth = key: user's key_file, which must be root's and private. */
static int check_key_file(const struct hp_config *cfg, const char *user, char *key, size_t keylen,
                          char *why, size_t whylen)
{
    struct stat ks;
    const char *bad = NULL;

    if (config_expand(cfg->sync_key_file, user, key, keylen) < 0 &&
        (size_t)snprintf(key, keylen, "%s", cfg->sync_key_file) >= keylen)
        return -ENAMETOOLONG;
    if (lstat(key, &ks) < 0)
        bad = strerror(errno);
    else if (!S_ISREG(ks.st_mode))
        bad = "not a regular file";
    else if (ks.st_uid != 0)
        bad = "not root's";
    else if (ks.st_mode & 077)
        bad = "others may read it";
    if (bad) { /* ssh would refuse it too, but sshfs does not say why */
        snprintf(why, whylen, "key_file %s: %s (it must be a regular file of root's, mode 0600)",
                 key, bad);
        return -EACCES;
    }
    return 0;
}

/* mount = sshfs: its command line.  *password is set to NULL when it is
 * not to be given (auth = key). */
static int sshfs_argv(const struct hp_config *cfg, const struct passwd *pw, const char *stage,
                      const char **password, struct mount_cmd *m, char *why, size_t whylen)
{
    const char *user = pw->pw_name;
    char remote_dir[PATH_MAX] = "", user_at[300], key[PATH_MAX];
    size_t n = 0, len = sizeof m->opts;
    int rc;

    if (config_expand(cfg->sshfs_user, user, user_at, sizeof user_at) < 0 ||
        (*cfg->sshfs_path && expand_word(cfg->sshfs_path, strlen(cfg->sshfs_path), user, stage,
                                         remote_dir, sizeof remote_dir) < 0)) {
        snprintf(why, whylen, "sshfs_user or sshfs_path cannot be expanded for %s", user);
        return -EINVAL;
    }
    snprintf(m->src, sizeof m->src, "%s@%s:%s", user_at, cfg->sshfs_host, remote_dir);
    rc = snprintf(m->opts, len,
                  "port=%u,reconnect,ServerAliveInterval=15,ServerAliveCountMax=3,dir_cache=no,"
                  "ConnectTimeout=%u,allow_other,default_permissions,uid=%u,gid=%u,"
                  "UserKnownHostsFile=%s,GlobalKnownHostsFile=/dev/null,StrictHostKeyChecking=yes,",
                  cfg->sshfs_port, cfg->sync_mount_timeout_ms / 1000 + 1, (unsigned)pw->pw_uid,
                  (unsigned)pw->pw_gid, cfg->sync_known_hosts);
    if (cfg->sync_auth == HP_SYNC_AUTH_KEY) {
        int krc = check_key_file(cfg, user, key, sizeof key, why, whylen);
        if (krc < 0)
            return krc;
        rc += snprintf(m->opts + rc, len - (size_t)rc,
                       "IdentityFile=%s,IdentitiesOnly=yes,BatchMode=yes,"
                       "PasswordAuthentication=no",
                       key);
        *password = NULL;
    } else {
        if (!*password) {
            snprintf(why, whylen,
                     "no password of %s to mount the server home with (auth = password "
                     "needs the auth line with pam_exec expose_authtok: see homeport(8))",
                     user);
            return -EACCES;
        }
        rc += snprintf(m->opts + rc, len - (size_t)rc,
                       "password_stdin,PreferredAuthentications=password,"
                       "PubkeyAuthentication=no,NumberOfPasswordPrompts=1");
    }
    if (sshfs_has_contain_symlinks())
        rc += snprintf(m->opts + rc, len - (size_t)rc, ",no_contain_symlinks");
    if (*cfg->sshfs_options)
        snprintf(m->opts + rc, len - (size_t)rc, ",%s", cfg->sshfs_options);
    roamlist_mount(cfg, user, remote_dir, m->opts, sizeof m->opts);
    m->argv[n++] = "sshfs";
    m->argv[n++] = "-F"; /* root's ~/.ssh/config has no say */
    m->argv[n++] = "/dev/null";
    m->argv[n++] = m->src;
    m->argv[n++] = (char *)stage;
    m->argv[n++] = "-o";
    m->argv[n++] = m->opts;
    m->argv[n] = NULL;
    return 0;
}

int roam_mount(const struct hp_config *cfg, const char *user, const char *password, char *why,
               size_t whylen)
{
    struct roam_paths p;
    struct passwd *pw = getpwnam(user);
    struct mount_cmd m;
    char err[1024] = "";
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
        password = NULL;
        rc = command_argv(cfg, user, p.stage, &m, why, whylen);
    } else {
        rc = sshfs_argv(cfg, pw, p.stage, &password, &m, why, whylen);
    }
    if (rc < 0)
        return rc;
    rc = spawn_capture((const char *const *)m.argv, password, cfg->sync_mount_timeout_ms, false,
                       err, sizeof err);
    if (rc == 0 && roam_mounted(cfg, user)) {
        log_notice("server home of %s mounted on %s", user, p.stage);
        return 0;
    }
    if (rc == -ETIMEDOUT)
        snprintf(why, whylen, "mounting the server home of %s timed out after %u s", user,
                 cfg->sync_mount_timeout_ms / 1000);
    else if (rc == 127 || rc == -ENOENT)
        snprintf(why, whylen, "cannot run %s (is it installed?)", m.argv[0]);
    else
        snprintf(why, whylen, "mounting the server home of %s failed (%s exit %d)%s%s", user,
                 m.argv[0], rc, err[0] ? ": " : "", err);
    if (rc == 0) /* it said yes but nothing is there */
        return -EIO;
    if (strstr(err, "Permission denied") || strstr(err, "Authentication failed"))
        return -EACCES;
    return rc < 0 ? rc : -EIO;
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
    size_t n;
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
    for (const char *s = cfg->server_links, *w; rc == 0 && (w = next_word(&s, &n));) {
        snprintf(name, sizeof name, "%.*s", (int)n, w);
        snprintf(target, sizeof target, "%s/%s", p.stage, name);
        rc = put_link(fd, name, target, pw->pw_uid, pw->pw_gid);
    }
    if (rc == 0 && *cfg->file_server_link)
        rc = put_link(fd, cfg->file_server_link, p.stage, pw->pw_uid, pw->pw_gid);
    close(fd);
    if (rc < 0)
        snprintf(why, whylen, "cannot link %s to the server: %s", p.local, strerror(-rc));
    return rc;
}

/* ---- records -------------------------------------------------------------- */

#define ROAM_RECORD_LINE_MAX 63 /* a longer line of a record is ignored */

static void sessions_field(void *ctx, const char *key, const char *v)
{
    long *n = ctx;
    char *end;

    if (strcmp(key, "sessions") != 0)
        return;
    /* strtol, not sscanf's %d: a number past INT_MAX is no record, not undefined */
    errno = 0;
    *n = strtol(v, &end, 10);
    if (end == v || errno || *n < 0 || *n > INT_MAX)
        *n = -1;
}

int roam_get_sessions(const struct hp_config *cfg, const char *user)
{
    struct roam_paths p;
    long n = -1;

    if (roam_paths(cfg, user, &p) < 0)
        return -EINVAL;
    if (textfile_kv_read(p.record, ROAM_RECORD_LINE_MAX, sessions_field, &n) < 0 || n < 0)
        return -ENOENT;
    return (int)n;
}

int roam_set_sessions(const struct hp_config *cfg, const char *user, int sessions)
{
    struct roam_paths p;
    struct textfile_kv kv = {0};
    char dir[PATH_MAX];
    int rc;

    if (roam_paths(cfg, user, &p) < 0)
        return -EINVAL;
    snprintf(dir, sizeof dir, "%s/roam", cfg->run_dir);
    if ((rc = tree_mkdirs(dir, 0700)) < 0)
        return rc;
    textfile_kv_add(&kv, "sessions", "%d", sessions);
    return textfile_kv_replace(&kv, p.record, 0600);
}

void roam_forget(const struct hp_config *cfg, const char *user)
{
    struct roam_paths p;

    if (roam_paths(cfg, user, &p) == 0)
        unlink(p.record);
    roamlist_forget(cfg, user);
}

void roam_foreach(const struct hp_config *cfg,
                  void (*fn)(void *ctx, const char *user, int sessions, bool mounted), void *ctx)
{
    char dir[PATH_MAX];
    struct dirent *de;
    DIR *d;

    snprintf(dir, sizeof dir, "%s/roam", cfg->run_dir);
    if (!(d = opendir(dir)))
        return;
    while ((de = readdir(d))) {
        int s;
        if (!user_name_valid(de->d_name) || (s = roam_get_sessions(cfg, de->d_name)) < 0)
            continue;
        fn(ctx, de->d_name, s, roam_mounted(cfg, de->d_name));
    }
    closedir(d);
}

int roam_status(const struct hp_config *cfg, FILE *out, bool json)
{
    char dir[PATH_MAX];
    struct dirent *de;
    DIR *d;
    int bad = 0, n = 0;

    snprintf(dir, sizeof dir, "%s/roam", cfg->run_dir);
    d = opendir(dir);
    if (json)
        fprintf(out, "{\"version\": 1, \"homes\": [");
    while (d && (de = readdir(d))) {
        struct roam_paths p;
        char last[600] = "", lp[PATH_MAX + 8];
        bool m, trouble;
        int s;
        if (!user_name_valid(de->d_name) || roam_paths(cfg, de->d_name, &p) < 0 ||
            (s = roam_get_sessions(cfg, de->d_name)) < 0)
            continue;
        m = roam_mounted(cfg, de->d_name);
        snprintf(lp, sizeof lp, "%s.last", p.state);
        textfile_read_line(lp, last, sizeof last, 1);
        trouble = !m || (last[0] && !strstr(last, " result=ok "));
        bad += trouble;
        if (json) {
            fprintf(out, "%s\n  {\"user\": ", n ? "," : "");
            json_str(out, de->d_name);
            fprintf(out, ", \"mode\": \"sync\", \"local\": ");
            json_str(out, p.local);
            fprintf(out, ", \"stage\": ");
            json_str(out, p.stage);
            fprintf(out, ", \"state\": \"%s\", \"sessions\": %d, \"last_sync\": ",
                    m ? "mounted" : "not-mounted", s);
            json_str(out, last);
            fputc('}', out);
        } else {
            fprintf(out, "%s roaming home %s, server home on %s (%s), sessions %d%s%s\n",
                    de->d_name, p.local, p.stage, m ? "mounted" : "NOT MOUNTED", s,
                    last[0] ? ", last sync: " : "", last);
        }
        n++;
    }
    if (d)
        closedir(d);
    if (json)
        fprintf(out, "], \"count\": %d, \"troubled\": %d}\n", n, bad);
    else if (n == 0)
        fprintf(out, "no homes held\n");
    return bad;
}

/* ---- login, session, logout ---------------------------------------------- */

struct pass_ctx {
    progress_fn progress;
    void *ctx;
    const char *user;
    unsigned long lines;
    int64_t next, interval;
};

static void pass_line(void *v, const char *line)
{
    struct pass_ctx *c = v;

    c->lines++;
    log_info("sync %s: %s", c->user, line);
    if (c->progress && clock_ms() >= c->next) {
        char msg[128];
        snprintf(msg, sizeof msg, "Syncing your profile: %lu changes so far...", c->lines);
        c->progress(c->ctx, msg);
        c->next = clock_ms() + c->interval;
    }
}

static void summarize(const struct sync_stats *st, char *out, size_t len)
{
    snprintf(out, len,
             "%lu to the server, %lu from it, %lu deleted here, %lu deleted there, %lu conflicts, "
             "%lu errors",
             st->to_remote, st->to_local, st->del_local, st->del_remote, st->conflicts, st->errors);
}

/* A pass, logged, waiting up to wait_ms for one that is running. */
static int pass_logged(const struct hp_config *cfg, const char *user, progress_fn progress,
                       void *ctx, unsigned wait_ms, char *msg, size_t msglen)
{
    struct pass_ctx pc = {progress, ctx, user, 0, 0, cfg->progress_interval_ms};
    struct sync_stats st;
    char why[HP_WHY_MAX], sum[256];
    int64_t end = clock_ms() + wait_ms;
    int rc;

    pc.next = clock_ms() + pc.interval;
    while ((rc = roam_pass(cfg, user, 0, pass_line, &pc, NULL, &st, why, sizeof why)) == -EBUSY &&
           clock_ms() < end)
        clock_sleep_ms(200);
    if (rc < 0) {
        log_warn("sync %s: %s", user, why);
        snprintf(msg, msglen, "Profile of %s not synced: %s", user, why);
        return rc;
    }
    summarize(&st, sum, sizeof sum);
    if (st.guarded[SYNC_LOCAL] || st.guarded[SYNC_REMOTE])
        log_err("sync %s: the pass would delete %lu local and %lu server entries (more than "
                "max_delete_percent = %u%%): not done; check, then run 'homeport sync %s "
                "--allow-deletes'",
                user, st.guarded[SYNC_LOCAL], st.guarded[SYNC_REMOTE], cfg->max_delete_percent,
                user);
    log_notice("sync %s: %s%s", user, sum, st.union_mode ? " (first pass: a union)" : "");
    snprintf(msg, msglen, "Profile of %s synced: %s", user, sum);
    return st.errors ? -EIO : 0;
}

static void flag_set(const char *flag, bool on)
{
    if (on) {
        int fd = open(flag, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
            log_warn("cannot create the sync flag %s: %s", flag, strerror(errno));
        else
            close(fd);
    } else if (unlink(flag) < 0 && errno != ENOENT) {
        log_warn("cannot remove the sync flag %s: %s", flag, strerror(errno));
    }
}

int roam_login(const struct hp_config *cfg, const char *user, progress_fn progress, void *ctx,
               char *msg, size_t msglen)
{
    struct roam_paths p;
    int rc;

    if ((rc = roam_paths(cfg, user, &p)) < 0) {
        snprintf(msg, msglen, "not a valid user name: '%s'", user);
        return rc;
    }
    if (progress)
        progress(ctx, "Connecting to your home on the server...");
    rc = roam_mount(cfg, user, secret_get(user), msg, msglen);
    secret_forget(user);
    if (rc < 0 && rc != -EALREADY)
        return rc;
    if ((rc = roam_prepare_local(cfg, user, msg, msglen)) < 0) {
        char why[HP_WHY_MAX];
        roam_umount(cfg, user, why, sizeof why);
        return rc;
    }
    flag_set(p.flag, true);
    if (cfg->login_sync_background) {
        pid_t pid = fork();
        if (pid == 0) {
            char m[1024];
            /* not the job's pipe: the agent waits for its EOF before the
             * user's next stage (open_session) may run */
            enum log_target t = log_current_target();
            enum log_level l = log_current_level();
            log_close();
            spawn_close_fds(NULL, 0);
            log_open(t, l);
            pass_logged(cfg, user, NULL, NULL, 60000, m, sizeof m);
            flag_set(p.flag, false);
            _exit(0);
        }
        if (pid < 0) {
            log_warn("sync %s: cannot start the background pass: %s", user, strerror(errno));
            flag_set(p.flag, false);
        }
        snprintf(msg, msglen, "Home of %s ready on %s; its profile is being synced", user, p.local);
        return 0;
    }
    if (progress)
        progress(ctx, "Syncing your profile...");
    rc = pass_logged(cfg, user, progress, ctx, 60000, msg, msglen);
    flag_set(p.flag, false);
    if (rc < 0) /* the local copy as it was: the user can work, the next pass catches up */
        log_warn("%s; %s logs in on the local copy", msg, user);
    return 0;
}

int roam_logout(const struct hp_config *cfg, const char *user, unsigned wait_ms, char *msg,
                size_t msglen)
{
    char why[HP_WHY_MAX];
    int rc = 0;

    if (roam_mounted(cfg, user)) {
        struct roam_paths p;
        bool flag = roam_paths(cfg, user, &p) == 0;
        if (flag) /* the popup's --any: the profile is being written back */
            flag_set(p.flag, true);
        rc = pass_logged(cfg, user, NULL, NULL, wait_ms, msg, msglen);
        if (flag)
            flag_set(p.flag, false);
    } else
        snprintf(msg, msglen, "the server home of %s was not mounted any more: not synced", user);
    if (roam_umount(cfg, user, why, sizeof why) < 0 && roam_mounted(cfg, user)) {
        snprintf(msg, msglen, "%s", why);
        return -EBUSY;
    }
    roam_forget(cfg, user);
    if (rc < 0) /* the local copy keeps what was not synced: the next login here catches up */
        log_warn("%s: %s logged out with changes not on the server", msg, user);
    return 0;
}

int roam_periodic(const struct hp_config *cfg, const char *user)
{
    char msg[1024];

    return pass_logged(cfg, user, NULL, NULL, 0, msg, sizeof msg);
}
