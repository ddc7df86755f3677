/* sync/engine: see engine.h. */
#include "engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <mbedtls/sha256.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../log.h"
#include "../tree.h"
#include "arena.h"
#include "decide.h"
#include "listing.h"
#include "statedb.h"

#define COPY_BUF ((size_t)256 * 1024)
/* A directory's listing is recorded only when its ctime is older than the
 * pass by this much: more than the timestamp granularity of any file system
 * keeps_ctimes accepts (1 s at worst: ext3's small inodes). */
#define TRUST_MARGIN_NS ((int64_t)2000000000)
#define LINE_MAX_OUT (3 * STATEDB_PATH_MAX + 512)
/* The server's lister is given up on when it says nothing for this long. */
#define LIST_IDLE_MS 60000

/* What a walk found at one path on one side. */
struct node {
    char *path;
    struct sync_node n;
    /* A directory: its inode and ctime as the walk found them (0 when its
     * side keeps no trustworthy ctimes); whether every name the walk found
     * in it became a node (nothing excluded, special, unreadable or gone);
     * whether its names and what the pass leaves in the database differ. */
    struct statedb_listing listed;
    bool clean, mismatch;
};

struct nodes {
    struct node *v;
    size_t n, cap;
};

/* An open directory, reached from the root: the last one asked for is kept,
 * one slot for the tree and one for its trash (actions come in path order,
 * so neighbours share it). */
struct dcache {
    char path[STATEDB_PATH_MAX + 64];
    int fd; /* -1: empty */
};

struct side {
    enum sync_side id;
    const char *name; /* "local", "remote" */
    int root;
    struct nodes walk;
    char **blind; /* directories that could not be read: nothing below is decided */
    size_t nblind;
    struct dcache cache[2];
    bool stamps; /* a file system whose directories' ctimes can be trusted (listings) */
    unsigned long dirs_read, dirs_trusted; /* directories read, names taken from the database */
    char *chunk;                           /* the walk's buffer: getdents64, readlink */
    struct arena mem;                      /* the walk's array of nodes, then its paths */
    struct {
        char *b;
        size_t len, cap;
    } names; /* the walk's stack of directory listings (read_dir) */
    struct {
        struct name {
            size_t off; /* where it starts in names */
            size_t dbi; /* its database entry when the name came from there, or NODB */
        } * v;
        size_t n, cap;
    } offs;
};

/* One path's decision. */
struct item {
    const char *path;                 /* a walk's or the database's: they outlive the items */
    struct sync_node *l, *r;          /* into the walks (hashed there); NULL: absent */
    const struct statedb_entry *base; /* into the database; NULL: no base */
    enum sync_action act;
    bool held; /* a deletion the guard held back */
};

struct eng {
    const struct sync_opts *o;
    struct sync_stats *st;
    struct side s[2];
    struct statedb db, out;
    bool have_db, dirty;
    bool out_real; /* else the result is db.v[0 .. kept): out_real() */
    size_t kept;
    struct arena mem;     /* the decisions */
    size_t *end;          /* db.v[i]'s subtree is db.v[i + 1 .. end[i] - 1] */
    int64_t trust_before; /* a listing is recorded only for a ctime before this */
    char stamp[32];       /* YYYY-MM-DD_HHMMSS */
    unsigned char *buf;
    FILE *serve; /* sync_list_serve: the walk's errors go into the listing, with their path */
};

/* ---- reporting ---------------------------------------------------------- */

/* path with control bytes and '\' escaped (\ooo, \\): one line per action. */
static void esc(char *out, size_t len, const char *s)
{
    size_t o = 0;

    for (; *s && o + 5 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || c == '\\')
            o += (size_t)snprintf(out + o, len - o, c == '\\' ? "\\\\" : "\\%03o", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
}

__attribute__((format(printf, 2, 3))) static void report(struct eng *e, const char *fmt, ...)
{
    char line[LINE_MAX_OUT];
    va_list ap;

    if (!e->o->report)
        return;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): false positive, ap is started */
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    e->o->report(e->o->ctx, line);
}

/* The two walks run in two threads: what they report is serialized. */
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

static void report_err(struct eng *e, const char *path, int err, const char *what)
{
    char p[LINE_MAX_OUT / 3];

    esc(p, sizeof p, path);
    pthread_mutex_lock(&report_lock);
    e->st->errors++;
    if (e->serve) { /* the reader counts it, unless the path is excluded there */
        char line[LINE_MAX_OUT];
        snprintf(line, sizeof line, "error %s: %s%s%s", p, what, err ? ": " : "",
                 err ? strerror(-err) : "");
        listing_put_error(e->serve, path, line);
    } else {
        report(e, "error %s: %s%s%s", p, what, err ? ": " : "", err ? strerror(-err) : "");
    }
    pthread_mutex_unlock(&report_lock);
}

/* ---- metadata and digests ------------------------------------------------ */

static uint8_t type_of(mode_t m)
{
    if (S_ISREG(m))
        return SYNC_FILE;
    if (S_ISDIR(m))
        return SYNC_DIR;
    if (S_ISLNK(m))
        return SYNC_LINK;
    return SYNC_SPECIAL;
}

static int64_t ns(struct timespec t)
{
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void meta_of(const struct stat *st, enum sync_side side, struct sync_meta *m)
{
    m->type = type_of(st->st_mode);
    m->mode = st->st_mode & 07777;
    m->size = (uint64_t)st->st_size;
    m->mtime_ns = ns(st->st_mtim);
    m->ino = side == SYNC_LOCAL ? (uint64_t)st->st_ino : 0;
    m->ctime_ns = side == SYNC_LOCAL ? ns(st->st_ctim) : 0;
}

static bool known(const unsigned char *digest)
{
    for (size_t i = 0; i < STATEDB_DIGEST; i++)
        if (digest[i])
            return true;
    return false;
}

static void sha(const void *p, size_t n, unsigned char *out)
{
    mbedtls_sha256_ret(p, n, out, 0);
}

/* SHA-256 of what fd reads from its current offset. */
static int hash_fd(int fd, unsigned char *buf, unsigned char *out)
{
    mbedtls_sha256_context c;
    ssize_t r;
    int rc = 0;

    mbedtls_sha256_init(&c);
    mbedtls_sha256_starts_ret(&c, 0);
    while ((r = read(fd, buf, COPY_BUF)) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        mbedtls_sha256_update_ret(&c, buf, (size_t)r);
    }
    if (rc == 0)
        mbedtls_sha256_finish_ret(&c, out);
    mbedtls_sha256_free(&c);
    return rc;
}

/* ---- reaching paths without following symlinks ----------------------------- */

static void cache_drop(struct side *sd)
{
    for (int i = 0; i < 2; i++) {
        if (sd->cache[i].fd >= 0)
            close(sd->cache[i].fd);
        sd->cache[i].fd = -1;
        sd->cache[i].path[0] = '\0';
    }
}

/* The directory dir ("" = the root, "a/b") of side, opened one component at a
 * time with O_NOFOLLOW.  create: missing components are made (mode: the
 * other side's directory's, else 0700) and given the side's owner.  The fd
 * belongs to the cache slot: do not close it. */
static int open_dir(struct eng *e, struct side *sd, const char *dir, bool create, int slot)
{
    struct dcache *c = &sd->cache[slot];
    char comp[NAME_MAX + 1];
    const char *p = dir;
    int fd, rc;

    if (c->fd >= 0 && !strcmp(c->path, dir))
        return c->fd;
    if (strlen(dir) >= sizeof c->path)
        return -ENAMETOOLONG;
    fd = dup(sd->root);
    if (fd < 0)
        return -errno;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        int next;

        if (n == 0 || n > NAME_MAX) {
            close(fd);
            return -EINVAL;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT && create) {
            struct stat o;
            mode_t mode = 0700;
            struct side *other = &e->s[!sd->id];
            int ofd;
            char sub[sizeof c->path];

            snprintf(sub, sizeof sub, "%.*s", (int)(p - dir + (ptrdiff_t)n), dir);
            if (slot == 0 && (ofd = open_dir(e, other, "", false, 1)) >= 0 &&
                fstatat(ofd, sub, &o, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(o.st_mode))
                mode = o.st_mode & 07777;
            if (mkdirat(fd, comp, 0700) < 0 && errno != EEXIST) {
                rc = -errno;
                close(fd);
                return rc;
            }
            if (e->o->owner[sd->id] != (uid_t)-1)
                fchownat(fd, comp, e->o->owner[sd->id], e->o->group[sd->id], AT_SYMLINK_NOFOLLOW);
            fchmodat(fd, comp, mode, 0);
            next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        rc = -errno;
        close(fd);
        if (next < 0)
            return rc == -ELOOP ? -ENOTDIR : rc;
        fd = next;
        p += n;
        if (*p == '/')
            p++;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = fd;
    snprintf(c->path, sizeof c->path, "%s", dir);
    return fd;
}

/* Split path into its directory (in dir) and final name. */
static const char *split(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');

    if (!slash) {
        dir[0] = '\0';
        return path;
    }
    snprintf(dir, len, "%.*s", (int)(slash - path), path);
    return slash + 1;
}

/* The parent directory of path on side; *name is its final component. */
static int open_parent(struct eng *e, struct side *sd, const char *path, bool create,
                       const char **name)
{
    char dir[STATEDB_PATH_MAX + 1];

    *name = split(path, dir, sizeof dir);
    return open_dir(e, sd, dir, create, 0);
}

static int lstat_path(struct eng *e, struct side *sd, const char *path, struct stat *st)
{
    const char *name;
    int fd = open_parent(e, sd, path, false, &name);

    if (fd < 0)
        return fd == -ENOTDIR ? -ENOENT : fd;
    return fstatat(fd, name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* ---- the walk -------------------------------------------------------------- */

static bool is_tmp_name(const char *name)
{
    size_t n = strlen(name), s = strlen(SYNC_TMP_SUFFIX);

    return name[0] == '.' && n > s && !strcmp(name + n - s, SYNC_TMP_SUFFIX);
}

/* v (cap elements of size bytes) with room for need: the same or a larger
 * copy (cap updated), NULL when out of memory (v still valid). */
static void *grow(void *v, size_t *cap, size_t need, size_t size)
{
    size_t c = *cap ? *cap : 4096 / size;
    void *g;

    if (need <= *cap)
        return v;
    while (c < need)
        c *= 2;
    if (!(g = realloc(v, c * size)))
        return NULL;
    *cap = c;
    return g;
}

static int push_node(struct side *sd, const char *path, size_t len, const struct sync_node *n,
                     struct statedb_listing listed)
{
    struct nodes *v = &sd->walk;

    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 1024;
        struct node *g = arena_grow(&sd->mem, v->v, v->n * sizeof *g, cap * sizeof *g);
        if (!g)
            return -ENOMEM;
        v->v = g;
        v->cap = cap;
    }
    if (!(v->v[v->n].path = arena_strndup(&sd->mem, path, len)))
        return -ENOMEM;
    v->v[v->n].n = *n;
    v->v[v->n].listed = listed;
    v->v[v->n].clean = v->v[v->n].mismatch = false;
    v->n++;
    return 0;
}

static int add_blind(struct side *sd, const char *path)
{
    char **g = realloc(sd->blind, (sd->nblind + 1) * sizeof *g);

    if (!g)
        return -ENOMEM;
    sd->blind = g;
    if (!(g[sd->nblind] = strdup(path)))
        return -ENOMEM;
    sd->nblind++;
    return 0;
}

/* Whether path is at or below a directory some side could not read. */
static bool blind(const struct eng *e, const char *path)
{
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < e->s[s].nblind; i++) {
            const char *b = e->s[s].blind[i];
            size_t n = strlen(b);
            if (n == 0 || (!strncmp(path, b, n) && (path[n] == '\0' || path[n] == '/')))
                return true; /* "": the root itself could not be read */
        }
    return false;
}

/* The names in the directory open at fd (not "." and ".."), appended with
 * their NULs to sd->names, and where each starts to sd->offs, in the order
 * of strcmp: getdents64 with a large buffer, straight on fd (no DIR, no
 * second open, no fstat: a walk spends its time in system calls).  *n: how
 * many.  0 or -errno (nothing appended). */
struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

#define DIR_CHUNK 32768
#define ROOT SIZE_MAX /* walk()'s self for the root, which has no node */
#define NODB SIZE_MAX /* a name read from the directory, not from the database */

static __thread const char *sort_base; /* the names being sorted, per walk thread */

static int cmp_off(const void *a, const void *b)
{
    return strcmp(sort_base + ((const struct name *)a)->off,
                  sort_base + ((const struct name *)b)->off);
}

/* Append the name nm (nl bytes) to sd->names and sd->offs. */
static int add_name(struct side *sd, const char *nm, size_t nl, size_t dbi)
{
    char *nb = grow(sd->names.b, &sd->names.cap, sd->names.len + nl + 1, 1);
    struct name *ov = nb ? grow(sd->offs.v, &sd->offs.cap, sd->offs.n + 1, sizeof *ov) : NULL;

    if (nb)
        sd->names.b = nb;
    if (!ov)
        return -ENOMEM;
    sd->offs.v = ov;
    memcpy(sd->names.b + sd->names.len, nm, nl);
    sd->names.b[sd->names.len + nl] = '\0';
    sd->offs.v[sd->offs.n++] = (struct name){sd->names.len, dbi};
    sd->names.len += nl + 1;
    return 0;
}

static int read_dir(struct side *sd, int fd, size_t *n)
{
    size_t len0 = sd->names.len, n0 = sd->offs.n;
    long got;

    *n = 0;
    while ((got = syscall(SYS_getdents64, fd, sd->chunk, DIR_CHUNK)) != 0) {
        if (got < 0) {
            int rc = -errno;
            if (errno == EINTR)
                continue;
            sd->names.len = len0;
            sd->offs.n = n0;
            return rc;
        }
        for (long off = 0; off < got;) {
            const struct linux_dirent64 *d = (const void *)(sd->chunk + off);
            size_t nl = strlen(d->d_name);
            off += d->d_reclen;
            if (d->d_name[0] == '.' && (nl == 1 || (nl == 2 && d->d_name[1] == '.')))
                continue;
            if (add_name(sd, d->d_name, nl, NODB) < 0) {
                sd->names.len = len0;
                sd->offs.n = n0;
                return -ENOMEM;
            }
        }
    }
    *n = sd->offs.n - n0;
    if (*n > 1) {
        sort_base = sd->names.b;
        qsort(sd->offs.v + n0, *n, sizeof *sd->offs.v, cmp_off);
    }
    return 0;
}

/* The names of the directory whose node is sd->walk.v[self], from the
 * database instead of the directory itself, when that is safe: the side
 * keeps ctimes, and the last pass recorded a listing of it (it found the
 * same names there as it left in the database: see stamp_listings) with
 * the inode and ctime it has now, so nothing was added, removed or renamed
 * in it since.  Appended as read_dir does; *n how many.  false: read the
 * directory. */
static bool trusted_names(struct eng *e, struct side *sd, size_t self, size_t dbi, size_t *n)
{
    const struct node *d = &sd->walk.v[self];
    const struct statedb_entry *b;
    size_t i, len0 = sd->names.len, n0 = sd->offs.n, plen;

    if (!sd->stamps || !e->have_db || !d->listed.ino)
        return false;
    b = dbi != NODB ? &e->db.v[dbi] : statedb_get(&e->db, d->path); /* known: no search */
    if (!b || b->listed[sd->id].ino != d->listed.ino ||
        b->listed[sd->id].ctime_ns != d->listed.ctime_ns)
        return false;
    i = (size_t)(b - e->db.v);
    plen = strlen(b->path);
    for (size_t c = i + 1; c < e->end[i]; c = e->end[c]) {
        const char *nm = e->db.v[c].path + plen + 1;
        if (strchr(nm, '/') || add_name(sd, nm, strlen(nm), c) < 0) { /* a parent missing: read */
            sd->names.len = len0;
            sd->offs.n = n0;
            return false;
        }
    }
    *n = sd->offs.n - n0;
    sd->dirs_trusted++;
    return true;
}

/* Walk the directory open at dfd, whose path is path (plen bytes, "" for the
 * root), into sd->walk, in path order (statedb_path_cmp): each directory's
 * names sorted, each subdirectory's tree right after it.  Unreadable
 * directories go to sd->blind. */
static int walk(struct eng *e, struct side *sd, int dfd, char *path, size_t plen, size_t self,
                size_t dbi)
{
    size_t n, len0 = sd->names.len, n0 = sd->offs.n;
    int rc = 0;

    if (self == ROOT || !trusted_names(e, sd, self, dbi, &n)) {
        rc = read_dir(sd, dfd, &n);
        sd->dirs_read++;
    }
    if (self != ROOT)
        sd->walk.v[self].clean = rc == 0;
    if (rc < 0) {
        if (rc == -ENOMEM)
            return rc;
        report_err(e, plen ? path : ".", rc,
                   sd->id == SYNC_LOCAL ? "cannot read the local directory"
                                        : "cannot read the remote directory");
        return add_blind(sd, path);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        /* the buffer may move while a subdirectory is walked: by offset */
        const char *nm = sd->names.b + sd->offs.v[n0 + i].off;
        size_t cdbi = sd->offs.v[n0 + i].dbi; /* its database entry, when known */
        size_t nl = strlen(nm), len = plen + (plen ? 1 : 0) + nl;
        struct sync_node node = {0};
        struct statedb_listing listed = {0, 0};
        bool was_clean = self != ROOT && sd->walk.v[self].clean;
        struct stat st;

        if (plen == 0 && !strcmp(nm, SYNC_TRASH))
            continue;
        if (self != ROOT) /* until it is a node */
            sd->walk.v[self].clean = false;
        if (is_tmp_name(nm)) { /* a pass interrupted during a copy */
            if (!e->o->dry_run && unlinkat(dfd, nm, 0) == 0)
                log_info("removed %s/%s%s%s, left by an interrupted pass", sd->name, path,
                         plen ? "/" : "", nm);
            continue;
        }
        if (len > STATEDB_PATH_MAX) {
            report_err(e, path, -ENAMETOOLONG, "a name below is too long to sync");
            continue;
        }
        if (plen)
            path[plen] = '/';
        memcpy(path + plen + (plen ? 1 : 0), nm, nl + 1);
        if (fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            /* gone since the listing: absent.  Anything else (EIO from a
             * server that went away) must not look like a deletion. */
            if (errno != ENOENT) {
                report_err(e, path, -errno, "cannot stat it: left as it is");
                rc = add_blind(sd, path);
            }
            path[plen] = '\0';
            continue;
        }
        meta_of(&st, sd->id, &node.m);
        if (e->o->exclude && exclude_match(e->o->exclude, path, S_ISDIR(st.st_mode))) {
            path[plen] = '\0';
            continue;
        }
        if (S_ISLNK(st.st_mode)) {
            char *target = sd->chunk; /* free again: the listing is done */
            ssize_t tl = readlinkat(dfd, nm, target, DIR_CHUNK);
            if (tl < 0) {
                if (errno != ENOENT) {
                    report_err(e, path, -errno, "cannot read the link: left as it is");
                    rc = add_blind(sd, path);
                }
                path[plen] = '\0';
                continue;
            }
            node.m.size = (uint64_t)tl;
            sha(target, (size_t)tl, node.digest);
        }
        if (S_ISDIR(st.st_mode) && sd->stamps)
            listed = (struct statedb_listing){(uint64_t)st.st_ino, ns(st.st_ctim)};
        rc = push_node(sd, path, len, &node, listed);
        if (self != ROOT && rc == 0 && node.m.type != SYNC_SPECIAL)
            sd->walk.v[self].clean = was_clean;
        if (rc == 0 && S_ISDIR(st.st_mode)) {
            int sub = openat(dfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                report_err(e, path, -errno,
                           sd->id == SYNC_LOCAL ? "cannot open the local directory"
                                                : "cannot open the remote directory");
                rc = add_blind(sd, path);
            } else {
                rc = walk(e, sd, sub, path, len, sd->walk.n - 1, cdbi);
                close(sub);
            }
        }
        path[plen] = '\0';
    }
    sd->names.len = len0;
    sd->offs.n = n0;
    return rc;
}

struct walker {
    struct eng *e;
    struct side *sd;
    int rc;
};

/* ---- the remote walk, done on the server (listing.h) ----------------------- */

/* The lines of a listing (buf, len bytes, changed in place) into sd->walk
 * and sd->blind, the E lines' texts into errs.  0, or -EBADMSG with why. */
static int take_lines(struct eng *e, struct side *sd, char *buf, size_t len, char ***errs,
                      size_t *nerr, char *why, size_t whylen)
{
    const char *prev = NULL;
    unsigned long nodes = 0, lineno = 0;
    bool header = false, end = false;

    for (char *p = buf, *nl; p < buf + len; p = nl + 1) {
        struct listing_line l;
        lineno++;
        if (!(nl = memchr(p, '\n', (size_t)(buf + len - p))) || end) {
            snprintf(why, whylen, "line %lu: %s", lineno, end ? "after the end" : "cut short");
            return -EBADMSG;
        }
        *nl = '\0';
        if (listing_parse(p, &l) < 0 || (l.kind == 'H') == header ||
            (l.kind == 'n' && prev && statedb_path_cmp(prev, l.text) >= 0)) {
            snprintf(why, whylen, "line %lu: %s", lineno,
                     !header && l.kind != 'H' ? "no listing (not homeport sync-list)"
                                              : "not a line of a listing, or out of order");
            return -EBADMSG;
        }
        header = true;
        if (l.kind == 'Z') {
            if (l.count != nodes) {
                snprintf(why, whylen, "%lu entries, the end says %lu", nodes, l.count);
                return -EBADMSG;
            }
            end = true;
        } else if (l.kind == 'E' || l.kind == 'B') {
            if (e->o->exclude && strcmp(l.path, ".") != 0 &&
                exclude_match(e->o->exclude, l.path, false))
                continue; /* below an excluded directory: the walk of the mount never looks */
        }
        if (l.kind == 'E') {
            char **g = realloc(*errs, (*nerr + 1) * sizeof *g);
            if (!g)
                return -ENOMEM;
            *errs = g;
            g[(*nerr)++] = l.text;
        } else if (l.kind == 'B') {
            if (add_blind(sd, !strcmp(l.path, ".") ? "" : l.path) < 0)
                return -ENOMEM;
        } else if (l.kind == 'n') {
            nodes++;
            prev = l.text;
            if (e->o->exclude && exclude_match(e->o->exclude, l.text, l.n.m.type == SYNC_DIR))
                continue;
            if (push_node(sd, l.text, l.len, &l.n, (struct statedb_listing){0, 0}) < 0)
                return -ENOMEM;
        }
    }
    if (!end)
        snprintf(why, whylen, "%s", header ? "cut short (no end line)" : "empty");
    return end ? 0 : -EBADMSG;
}

/* The remote walk from the server's lister (sync_opts.remote_list).  0 with
 * sd->walk and sd->blind filled; -errno with the reason in st->list_why
 * and the side as it was (the caller walks the tree). */
static int list_remote(struct eng *e, struct side *sd)
{
    struct sync_stats *st = e->st;
    char *buf = NULL, **errs = NULL, why[200];
    size_t len, nerr = 0;
    /* without a database every file on both sides is compared: hashed there */
    int flags = (e->o->dry_run ? LISTING_DRY_RUN : 0) | (e->have_db ? 0 : LISTING_HASH);
    int rc = listing_fetch(e->o->remote_list, e->o->remote_dir ? e->o->remote_dir : "", flags,
                           LIST_IDLE_MS, &buf, &len, st->list_why, sizeof st->list_why);

    if (rc == 0 && (rc = take_lines(e, sd, buf, len, &errs, &nerr, why, sizeof why)) < 0)
        snprintf(st->list_why, sizeof st->list_why, "%s: %s", e->o->remote_list[0], why);
    if (rc == 0) {
        pthread_mutex_lock(&report_lock);
        for (size_t i = 0; i < nerr; i++) {
            st->errors++;
            report(e, "%s (on the server)", errs[i]);
        }
        pthread_mutex_unlock(&report_lock);
        st->listed = 1;
    } else {
        st->listed = rc < 0 ? rc : rc == 255 ? -ECONNRESET : -EPROTO; /* 255: ssh's own failure */
        sd->walk.n = 0;
        for (size_t i = 0; i < sd->nblind; i++)
            free(sd->blind[i]);
        sd->nblind = 0;
    }
    free(errs);
    free(buf);
    return rc;
}

static void *walk_side(void *v)
{
    struct walker *w = v;
    char *path = malloc(STATEDB_PATH_MAX + 2);
    int fd = openat(w->sd->root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* its own offset */

    size_t guess = w->e->db.n + 64; /* about as many as last time: no growth */
    struct node *nodes = arena_alloc(&w->sd->mem, guess * sizeof *nodes);

    if (nodes) {
        w->sd->walk.v = nodes;
        w->sd->walk.cap = guess;
    }
    w->sd->chunk = malloc(DIR_CHUNK);
    if (!path || !w->sd->chunk || fd < 0) {
        w->rc = fd < 0 ? -errno : -ENOMEM;
    } else if (w->sd->id == SYNC_REMOTE && w->e->o->remote_list && list_remote(w->e, w->sd) == 0) {
        w->rc = 0;
    } else {
        path[0] = '\0';
        w->rc = walk(w->e, w->sd, fd, path, 0, ROOT, NODB);
    }
    if (fd >= 0)
        close(fd);
    free(path);
    free(w->sd->chunk);
    w->sd->chunk = NULL;
    free(w->sd->names.b);
    free(w->sd->offs.v);
    memset(&w->sd->names, 0, sizeof w->sd->names);
    memset(&w->sd->offs, 0, sizeof w->sd->offs);
    return NULL;
}

/* Both trees at once: each walk waits on its own system calls (and, for
 * the remote one, on the network). */
static int walk_both(struct eng *e)
{
    struct walker w[2] = {{e, &e->s[SYNC_LOCAL], 0}, {e, &e->s[SYNC_REMOTE], 0}};
    pthread_attr_t a;
    pthread_t t;
    bool threaded;

    /* musl's default thread stack is 128 KiB; a walk recurses once a level */
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, (size_t)16 << 20);
    threaded = pthread_create(&t, &a, walk_side, &w[SYNC_REMOTE]) == 0;
    pthread_attr_destroy(&a);

    walk_side(&w[SYNC_LOCAL]);
    if (threaded)
        pthread_join(t, NULL);
    else
        walk_side(&w[SYNC_REMOTE]);
    return w[SYNC_LOCAL].rc < 0 ? w[SYNC_LOCAL].rc : w[SYNC_REMOTE].rc;
}

/* ---- trash ----------------------------------------------------------------- */

/* Move path on side to ROOT/.homeport-trash/STAMP/path. */
static int trash(struct eng *e, struct side *sd, const char *path)
{
    char tpath[STATEDB_PATH_MAX + 64], tdir[sizeof tpath], dst[NAME_MAX + 1];
    const char *name, *tname;
    int fd, tfd;
    struct stat st;

    snprintf(tpath, sizeof tpath, "%s/%s/%s", SYNC_TRASH, e->stamp, path);
    fd = open_parent(e, sd, path, false, &name);
    if (fd < 0)
        return fd;
    tname = split(tpath, tdir, sizeof tdir);
    tfd = open_dir(e, sd, tdir, true, 1);
    if (tfd < 0) /* a trash that is a file or a symlink: never "gone", always an error */
        return tfd == -ENOENT || tfd == -ENOTDIR ? -ENOTRECOVERABLE : tfd;
    snprintf(dst, sizeof dst, "%.*s", NAME_MAX, tname);
    for (unsigned k = 2; fstatat(tfd, dst, &st, AT_SYMLINK_NOFOLLOW) == 0 && k < 1000; k++)
        snprintf(dst, sizeof dst, "%.*s.%u", NAME_MAX - 5, tname, k);
    if (renameat(fd, name, tfd, dst) < 0)
        return -errno;
    cache_drop(sd); /* a directory may have moved */
    return 0;
}

/* Remove trash folders older than trash_days on side. */
static void purge_trash(struct eng *e, struct side *sd)
{
    int fd = openat(sd->root, SYNC_TRASH, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    char **names;
    size_t n;

    if (fd < 0)
        return;
    if (tree_list_names(fd, &names, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            struct tm tm = {0};
            char tail;
            time_t t;
            int sub;
            struct tree_stats ts = {0};

            if (sscanf(names[i], "%4d-%2d-%2d_%2d%2d%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                       &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &tail) != 6)
                continue;
            tm.tm_year -= 1900;
            tm.tm_mon -= 1;
            t = timegm(&tm);
            if (t == (time_t)-1 || e->o->now - t < (time_t)e->o->trash_days * 86400)
                continue;
            sub = openat(fd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0)
                continue;
            if (tree_empty(sub, &ts) == 0 && unlinkat(fd, names[i], AT_REMOVEDIR) == 0)
                log_info("%s trash: removed %s (older than %u days)", sd->name, names[i],
                         e->o->trash_days);
            else
                log_warn("%s trash: cannot remove %s: %s", sd->name, names[i],
                         strerror(ts.first_err ? -ts.first_err : errno));
            close(sub);
        }
    }
    tree_free_names(names, n);
    close(fd);
}

/* ---- copies ---------------------------------------------------------------- */

static void own(struct eng *e, struct side *sd, int dfd, const char *name)
{
    if (e->o->owner[sd->id] != (uid_t)-1)
        fchownat(dfd, name, e->o->owner[sd->id], e->o->group[sd->id], AT_SYMLINK_NOFOLLOW);
}

/* Make room at name in dfd for a new entry of type t: a directory of
 * another type goes to the trash (a type change). */
static int make_room(struct eng *e, struct side *sd, const char *path, uint8_t t)
{
    struct stat st;
    int rc = lstat_path(e, sd, path, &st);

    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    if (S_ISDIR(st.st_mode) && t != SYNC_DIR)
        return trash(e, sd, path);
    return 0;
}

static void tmp_name(const char *name, char *out, size_t len)
{
    size_t room = NAME_MAX - 1 - strlen(SYNC_TMP_SUFFIX);

    snprintf(out, len, ".%.*s%s", (int)room, name, SYNC_TMP_SUFFIX);
}

/* Copy the regular file path from side a to side b; digest: its content's. */
static int copy_file(struct eng *e, struct side *a, struct side *b, const char *path,
                     unsigned char *digest)
{
    char tmp[NAME_MAX + 1];
    const char *name;
    struct stat before, after;
    mbedtls_sha256_context c;
    int sfd, dfd, tfd, rc = 0, pfd;
    ssize_t r;

    pfd = open_parent(e, a, path, false, &name);
    if (pfd < 0)
        return pfd;
    sfd = openat(pfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (sfd < 0)
        return -errno;
    if (fstat(sfd, &before) < 0 || !S_ISREG(before.st_mode)) {
        close(sfd);
        return -ESTALE; /* replaced since the walk */
    }
    rc = make_room(e, b, path, SYNC_FILE);
    dfd = rc < 0 ? rc : open_parent(e, b, path, true, &name);
    if (dfd < 0) {
        close(sfd);
        return dfd;
    }
    tmp_name(name, tmp, sizeof tmp);
    unlinkat(dfd, tmp, 0);
    tfd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (tfd < 0) {
        rc = -errno;
        close(sfd);
        return rc;
    }
    mbedtls_sha256_init(&c);
    mbedtls_sha256_starts_ret(&c, 0);
    while ((r = read(sfd, e->buf, COPY_BUF)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        mbedtls_sha256_update_ret(&c, e->buf, (size_t)r);
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(tfd, e->buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = w < 0 ? -errno : -EIO;
                break;
            }
            off += w;
        }
        if (rc < 0)
            break;
    }
    mbedtls_sha256_finish_ret(&c, digest);
    mbedtls_sha256_free(&c);
    if (rc == 0 && (fstat(sfd, &after) < 0 || after.st_size != before.st_size ||
                    ns(after.st_mtim) != ns(before.st_mtim)))
        rc = -EAGAIN; /* written to while copied: the next pass takes it */
    close(sfd);
    if (rc == 0 && fchmod(tfd, before.st_mode & 07777) < 0)
        rc = -errno;
    if (rc == 0 && e->o->owner[b->id] != (uid_t)-1 &&
        fchown(tfd, e->o->owner[b->id], e->o->group[b->id]) < 0 && b->id == SYNC_LOCAL)
        rc = -errno;
    if (rc == 0 && fsync(tfd) < 0)
        rc = -errno;
    if (close(tfd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0) { /* after close: a network filesystem may touch mtime on its last flush */
        struct timespec t[2] = {before.st_atim, before.st_mtim};
        if (utimensat(dfd, tmp, t, AT_SYMLINK_NOFOLLOW) < 0)
            rc = -errno;
    }
    if (rc == 0 && renameat(dfd, tmp, dfd, name) < 0)
        rc = -errno;
    if (rc < 0)
        unlinkat(dfd, tmp, 0);
    return rc;
}

static int copy_link(struct eng *e, struct side *a, struct side *b, const char *path)
{
    char target[PATH_MAX], tmp[NAME_MAX + 1];
    const char *name;
    struct stat st;
    ssize_t tl;
    int fd = open_parent(e, a, path, false, &name), rc;

    if (fd < 0)
        return fd;
    if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if ((tl = readlinkat(fd, name, target, sizeof target - 1)) < 0)
        return -errno;
    target[tl] = '\0';
    if ((rc = make_room(e, b, path, SYNC_LINK)) < 0)
        return rc;
    if ((fd = open_parent(e, b, path, true, &name)) < 0)
        return fd;
    tmp_name(name, tmp, sizeof tmp);
    unlinkat(fd, tmp, 0);
    if (symlinkat(target, fd, tmp) < 0)
        return -errno;
    own(e, b, fd, tmp);
    {
        struct timespec t[2] = {st.st_atim, st.st_mtim};
        utimensat(fd, tmp, t,
                  AT_SYMLINK_NOFOLLOW); /* not everywhere: a link's mtime is not compared */
    }
    if (renameat(fd, tmp, fd, name) < 0) {
        rc = -errno;
        unlinkat(fd, tmp, 0);
        return rc;
    }
    return 0;
}

static int copy_dir(struct eng *e, struct side *a, struct side *b, const char *path)
{
    const char *name;
    struct stat st, d;
    int fd = open_parent(e, a, path, false, &name), rc;

    if (fd < 0)
        return fd;
    if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ESTALE;
    if ((fd = open_parent(e, b, path, true, &name)) < 0)
        return fd;
    if (fstatat(fd, name, &d, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(d.st_mode)) {
        if ((rc = trash(e, b, path)) < 0)
            return rc;
        if ((fd = open_parent(e, b, path, true, &name)) < 0)
            return fd;
    }
    if (mkdirat(fd, name, 0700) == 0)
        own(e, b, fd, name);
    else if (errno != EEXIST)
        return -errno;
    return fchmodat(fd, name, st.st_mode & 07777, 0) < 0 ? -errno : 0;
}

/* Copy path from side a to side b, whatever its type. */
static int copy_any(struct eng *e, struct side *a, struct side *b, const char *path, uint8_t type,
                    unsigned char *digest)
{
    switch (type) {
    case SYNC_FILE: return copy_file(e, a, b, path, digest);
    case SYNC_LINK: return copy_link(e, a, b, path);
    case SYNC_DIR: return copy_dir(e, a, b, path);
    default: return -EINVAL;
    }
}

/* ---- recording ------------------------------------------------------------- */

/* The database the pass writes is e->db.v[0 .. kept) as long as the
 * pass keeps the entries it read, in order, and adds none: most passes
 * change nothing, and copying every entry would then be for nothing.  The
 * first other change makes it real: e->out, with the entries kept so far
 * (their paths borrowed from e->db, which outlives it). */
static int out_real(struct eng *e)
{
    if (e->out_real)
        return 0;
    if (statedb_reserve(&e->out, e->db.n + 64) < 0)
        return -ENOMEM;
    if (e->kept)
        memcpy(e->out.v, e->db.v, e->kept * sizeof *e->out.v);
    e->out.n = e->kept;
    e->out_real = true;
    return 0;
}

/* The database the pass leaves (NULL: out of memory). */
static struct statedb *result(struct eng *e)
{
    if (!e->out_real && e->kept == e->db.n)
        return &e->db;
    return out_real(e) < 0 ? NULL : &e->out;
}

/* Put path into the new database with both sides' metadata as they are now;
 * digest: known content (NULL: none; symlinks are hashed here). */
static int record_as(struct eng *e, const char *path, const unsigned char *digest,
                     const struct sync_meta *remote)
{
    struct statedb_entry en = {.path = (char *)path};
    struct stat l, r;
    int rc;

    if ((rc = lstat_path(e, &e->s[SYNC_LOCAL], path, &l)) < 0 ||
        (!remote && (rc = lstat_path(e, &e->s[SYNC_REMOTE], path, &r)) < 0))
        return rc;
    meta_of(&l, SYNC_LOCAL, &en.local);
    if (remote)
        en.remote = *remote;
    else
        meta_of(&r, SYNC_REMOTE, &en.remote);
    if (en.local.type != en.remote.type)
        return -ESTALE;
    if (en.local.type == SYNC_LINK) {
        char target[PATH_MAX];
        const char *name;
        int fd = open_parent(e, &e->s[SYNC_LOCAL], path, false, &name);
        ssize_t tl = fd < 0 ? -1 : readlinkat(fd, name, target, sizeof target);
        if (tl < 0)
            return -ESTALE;
        en.local.size = en.remote.size = (uint64_t)tl;
        sha(target, (size_t)tl, en.digest);
    } else if (en.local.type == SYNC_FILE && digest) {
        memcpy(en.digest, digest, STATEDB_DIGEST);
    }
    e->dirty = true;
    return (rc = out_real(e)) < 0 ? rc : statedb_put(&e->out, &en);
}

/* record_as with the remote side stat'ed again. */
static int record(struct eng *e, const char *path, const unsigned char *digest)
{
    return record_as(e, path, digest, NULL);
}

static int keep_base(struct eng *e, const struct item *it)
{
    int rc;

    if (!it->base)
        return 0;
    if (!e->out_real && it->base == &e->db.v[e->kept]) {
        e->kept++; /* still the database's own entries, in order */
        return 0;
    }
    return (rc = out_real(e)) < 0 ? rc : statedb_put_borrowed(&e->out, it->base);
}

/* ---- one path ------------------------------------------------------------- */

static int hash_side(struct eng *e, struct side *sd, const char *path, struct sync_node *n)
{
    const char *name;
    int pfd = open_parent(e, sd, path, false, &name), fd, rc;

    if (n->m.type != SYNC_FILE || known(n->digest)) /* known: the server's listing hashed it */
        return 0;
    if (pfd < 0)
        return pfd;
    fd = openat(pfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = hash_fd(fd, e->buf, n->digest);
    close(fd);
    return rc;
}

static int decide(struct eng *e, struct item *it)
{
    int rc;

    it->act = sync_decide(it->base, it->l, it->r, e->have_db);
    if (it->act != SYNC_COMPARE)
        return 0;
    if (it->l && (rc = hash_side(e, &e->s[SYNC_LOCAL], it->path, it->l)) < 0)
        return rc;
    if (it->r && (rc = hash_side(e, &e->s[SYNC_REMOTE], it->path, it->r)) < 0)
        return rc;
    it->act = sync_decide(it->base, it->l, it->r, e->have_db);
    return it->act == SYNC_COMPARE ? -EIO : 0;
}

/* A name for the conflict's loser that neither side has. */
static int conflict_name(struct eng *e, const char *path, char *out, size_t len)
{
    struct stat st;

    for (unsigned seq = 1; seq < 100; seq++) {
        int rc = sync_conflict_name(path, e->o->host, e->o->now, seq, out, len);
        if (rc < 0)
            return rc;
        if (lstat_path(e, &e->s[SYNC_LOCAL], out, &st) == -ENOENT &&
            lstat_path(e, &e->s[SYNC_REMOTE], out, &st) == -ENOENT)
            return 0;
    }
    return -EEXIST;
}

static int conflict(struct eng *e, struct item *it)
{
    enum sync_side win = it->act == SYNC_CONFLICT_KEEP_LOCAL ? SYNC_LOCAL : SYNC_REMOTE;
    struct side *w = &e->s[win], *l = &e->s[!win];
    const struct sync_node *wn = win == SYNC_LOCAL ? it->l : it->r;
    const struct sync_node *ln = win == SYNC_LOCAL ? it->r : it->l;
    char cname[STATEDB_PATH_MAX + 128], p[LINE_MAX_OUT / 3], c[LINE_MAX_OUT / 3];
    unsigned char wd[STATEDB_DIGEST], ld[STATEDB_DIGEST];
    const char *name, *cbase;
    int rc, fd;

    if ((rc = conflict_name(e, it->path, cname, sizeof cname)) < 0)
        return rc;
    esc(p, sizeof p, it->path);
    esc(c, sizeof c, cname);
    e->st->conflicts++;
    report(e, "conflict %s: %s keeps the name, the other is %s", p, w->name, c);
    if (e->o->dry_run)
        return 0;
    memcpy(wd, wn->digest, sizeof wd);
    memcpy(ld, ln->digest, sizeof ld);
    /* the loser's version moves aside on its side, then each side gets the
     * version it lacks */
    if ((fd = open_parent(e, l, it->path, false, &name)) < 0)
        return fd;
    cbase = strrchr(cname, '/') ? strrchr(cname, '/') + 1 : cname;
    if (renameat(fd, name, fd, cbase) < 0)
        return -errno;
    if (ln->m.type == SYNC_DIR)
        cache_drop(l);
    if ((rc = copy_any(e, w, l, it->path, wn->m.type, wd)) < 0 ||
        (rc = copy_any(e, l, w, cname, ln->m.type, ld)) < 0)
        return rc;
    e->dirty = true;
    if (wn->m.type != SYNC_DIR && (rc = record(e, it->path, wd)) < 0)
        return rc;
    if (wn->m.type == SYNC_DIR && (rc = record(e, it->path, NULL)) < 0)
        return rc;
    return record(e, cname, ld);
}

static const char *arrow(enum sync_action a)
{
    return a == SYNC_COPY_TO_REMOTE ? "to-remote" : "to-local";
}

/* Apply one decision (not a directory's deletion: see finish_dirs). */
static int apply(struct eng *e, struct item *it, bool *defer)
{
    char p[LINE_MAX_OUT / 3];
    int rc = 0;

    if (it->act == SYNC_NOTHING) { /* most paths, most passes */
        e->st->in_step++;
        return keep_base(e, it);
    }
    esc(p, sizeof p, it->path);
    switch (it->act) {
    case SYNC_NOTHING: break;
    case SYNC_RECORD:
        e->st->in_step++;
        if (e->o->dry_run)
            return 0;
        /* nothing was written: over the server's listing, the remote side
         * as listed (what sshfs shows) instead of a round trip an entry */
        rc = record_as(e, it->path,
                       it->l && known(it->l->digest) ? it->l->digest
                       : it->base                    ? it->base->digest
                                                     : NULL,
                       e->st->listed == 1 && it->r ? &it->r->m : NULL);
        break;
    case SYNC_COPY_TO_REMOTE:
    case SYNC_COPY_TO_LOCAL: {
        enum sync_side from = it->act == SYNC_COPY_TO_REMOTE ? SYNC_LOCAL : SYNC_REMOTE;
        const struct sync_node *src = from == SYNC_LOCAL ? it->l : it->r;
        unsigned char d[STATEDB_DIGEST] = {0};

        if (from == SYNC_LOCAL)
            e->st->to_remote++;
        else
            e->st->to_local++;
        report(e, "%s %s", arrow(it->act), p);
        if (e->o->dry_run)
            return 0;
        rc = copy_any(e, &e->s[from], &e->s[!from], it->path, src->m.type, d);
        if (rc == 0)
            rc = record(e, it->path, src->m.type == SYNC_FILE ? d : NULL);
        break;
    }
    case SYNC_DELETE_LOCAL:
    case SYNC_DELETE_REMOTE: {
        enum sync_side on = it->act == SYNC_DELETE_LOCAL ? SYNC_LOCAL : SYNC_REMOTE;
        const struct sync_node *n = on == SYNC_LOCAL ? it->l : it->r;

        if (it->held)
            return keep_base(e, it);
        if (n->m.type == SYNC_DIR) {
            *defer = true;
            return 0;
        }
        if (on == SYNC_LOCAL)
            e->st->del_local++;
        else
            e->st->del_remote++;
        report(e, "delete-%s %s", e->s[on].name, p);
        if (e->o->dry_run)
            return 0;
        {
            struct stat st;
            rc = lstat_path(e, &e->s[on], it->path, &st);
            if (rc == -ENOENT)
                rc = 0; /* gone already, with a directory replaced above it */
            else if (rc == 0)
                rc = trash(e, &e->s[on], it->path);
        }
        if (rc == 0)
            e->dirty = true;
        break;
    }
    case SYNC_FORGET: e->dirty = true; return 0;
    case SYNC_CONFLICT_KEEP_LOCAL:
    case SYNC_CONFLICT_KEEP_REMOTE: rc = conflict(e, it); break;
    case SYNC_SKIP_SPECIAL:
        e->st->special++;
        report(e, "special %s (%s): not synced", p,
               it->l && it->l->m.type == SYNC_SPECIAL ? "local" : "remote");
        return keep_base(e, it);
    case SYNC_COMPARE: rc = -EIO; break;
    }
    if (rc < 0) {
        report_err(e, it->path, rc == -ENOTRECOVERABLE ? 0 : rc,
                   rc == -EAGAIN            ? "changed while it was copied (next pass)"
                   : rc == -ENOTRECOVERABLE ? "not deleted: its side's " SYNC_TRASH
                                              " is not a directory (move it away)"
                                            : "not synced");
        if (e->o->dry_run)
            return 0;
        return keep_base(e, it) < 0 ? -ENOMEM : 0;
    }
    return 0;
}

/* A directory deleted on one side: removed from the other once what was
 * below it is decided.  When something is left in it that the other side
 * has again (a change below it won), it stays; when what is left was never
 * synced (excluded, special), it goes to the trash whole. */
static int finish_dir(struct eng *e, struct item *it)
{
    enum sync_side on = it->act == SYNC_DELETE_LOCAL ? SYNC_LOCAL : SYNC_REMOTE;
    struct side *sd = &e->s[on];
    char p[LINE_MAX_OUT / 3];
    const char *name;
    struct stat st;
    int fd, rc;

    esc(p, sizeof p, it->path);
    if (e->o->dry_run) {
        on == SYNC_LOCAL ? e->st->del_local++ : e->st->del_remote++;
        report(e, "delete-%s %s", sd->name, p);
        return 0;
    }
    if ((fd = open_parent(e, sd, it->path, false, &name)) < 0)
        return fd == -ENOENT || fd == -ENOTDIR ? 0 : fd;
    if (unlinkat(fd, name, AT_REMOVEDIR) == 0)
        rc = 0;
    else if (errno == ENOENT || errno == ENOTDIR)
        return 0;
    else if (errno != ENOTEMPTY && errno != EEXIST)
        rc = -errno;
    else if (lstat_path(e, &e->s[!on], it->path, &st) == 0 && S_ISDIR(st.st_mode))
        return record(e, it->path, NULL); /* something below was kept */
    else
        rc = trash(e, sd, it->path);
    cache_drop(sd);
    if (rc < 0) {
        report_err(e, it->path, rc == -ENOTRECOVERABLE ? 0 : rc,
                   rc == -ENOTRECOVERABLE ? "directory not deleted: its side's " SYNC_TRASH
                                            " is not a directory (move it away)"
                                          : "directory not deleted");
        return keep_base(e, it) < 0 ? -ENOMEM : 0;
    }
    on == SYNC_LOCAL ? e->st->del_local++ : e->st->del_remote++;
    report(e, "delete-%s %s", sd->name, p);
    e->dirty = true;
    return 0;
}

/* A copied directory gets its source's mtime once everything below it is
 * in place (what was written into it moved it). */
static void dir_time(struct eng *e, const struct item *it)
{
    enum sync_side from = it->act == SYNC_COPY_TO_REMOTE ? SYNC_LOCAL : SYNC_REMOTE;
    const struct sync_node *src = from == SYNC_LOCAL ? it->l : it->r;
    struct stat st;
    const char *name;
    int fd;

    if ((it->act != SYNC_COPY_TO_REMOTE && it->act != SYNC_COPY_TO_LOCAL) || !src ||
        src->m.type != SYNC_DIR || lstat_path(e, &e->s[from], it->path, &st) < 0 ||
        !S_ISDIR(st.st_mode) || (fd = open_parent(e, &e->s[!from], it->path, false, &name)) < 0) {
        return;
    }
    struct timespec t[2] = {st.st_atim, st.st_mtim};
    utimensat(fd, name, t, AT_SYMLINK_NOFOLLOW);
}

/* ---- the pass --------------------------------------------------------------- */

/* Merge the two walks and the database into one decision per path. */
static int plan(struct eng *e, struct item **out, size_t *nout)
{
    struct nodes *L = &e->s[SYNC_LOCAL].walk, *R = &e->s[SYNC_REMOTE].walk;
    size_t i = 0, j = 0, k = 0, n = 0;
    struct item *v = arena_alloc(&e->mem, (L->n + R->n + e->db.n + 1) * sizeof *v); /* at most */

    if (!v)
        return -ENOMEM;
    while (i < L->n || j < R->n || k < e->db.n) {
        const char *lp = i < L->n ? L->v[i].path : NULL, *rp = j < R->n ? R->v[j].path : NULL;
        const char *bp = k < e->db.n ? e->db.v[k].path : NULL, *p = lp;
        struct item *it;

        if (rp && (!p || statedb_path_cmp(rp, p) < 0))
            p = rp;
        if (bp && (!p || statedb_path_cmp(bp, p) < 0))
            p = bp;
        if (!p)
            break;
        it = &v[n];
        memset(it, 0, sizeof *it);
        it->path = p;
        if (lp && (lp == p || !strcmp(lp, p)))
            it->l = &L->v[i++].n;
        if (rp && (rp == p || !strcmp(rp, p)))
            it->r = &R->v[j++].n;
        if (bp && (bp == p || !strcmp(bp, p)))
            it->base = &e->db.v[k++];
        n++;
        if (blind(e, it->path)) {
            it->act = SYNC_NOTHING; /* a side could not be read here: as it was */
            continue;
        }
        if (!it->l && !it->r && it->base && e->o->exclude &&
            exclude_match(e->o->exclude, it->path, it->base->local.type == SYNC_DIR)) {
            it->act = SYNC_FORGET; /* excluded since: dropped, never deleted */
            continue;
        }
        int rc = decide(e, it);
        if (rc < 0) {
            report_err(e, it->path, rc, "cannot compare the two versions");
            it->act = SYNC_NOTHING;
        }
    }
    *out = v;
    *nout = n;
    return 0;
}

/* The mass-delete guard (engine.h). */
static void guard(struct eng *e, struct item *v, size_t n)
{
    unsigned long del[2] = {0, 0};

    for (size_t i = 0; i < n; i++) {
        if (v[i].act == SYNC_DELETE_LOCAL)
            del[SYNC_LOCAL]++;
        else if (v[i].act == SYNC_DELETE_REMOTE)
            del[SYNC_REMOTE]++;
    }
    for (int s = 0; s < 2; s++) {
        unsigned long total = e->db.n;
        e->st->entries[s] = total;
        if (e->o->allow_deletes || del[s] <= SYNC_GUARD_MIN || e->o->max_delete_percent >= 100 ||
            del[s] * 100 <= (unsigned long)e->o->max_delete_percent * total)
            continue;
        e->st->guarded[s] = del[s];
        for (size_t i = 0; i < n; i++)
            if (v[i].act == (s == SYNC_LOCAL ? SYNC_DELETE_LOCAL : SYNC_DELETE_REMOTE))
                v[i].held = true;
        report(
            e,
            "guard %s: %lu of %lu entries would be deleted (more than %u%%): not deleted; run with "
            "--allow-deletes to confirm",
            e->s[s].name, del[s], total, e->o->max_delete_percent);
    }
}

/* ---- listings (statedb.h: struct statedb_listing) --------------------------- */

/* Whether the file system of fd sets a directory's ctime on every change to
 * its names, from this machine's clock: the local ones.  Not FUSE (sshfs:
 * the server's clock, whole seconds), nor NFS or CIFS (attribute caches,
 * other clients): there every directory is read at every pass. */
static bool keeps_ctimes(int fd)
{
    struct statfs f;

    if (fstatfs(fd, &f) < 0)
        return false;
    switch ((unsigned long)f.f_type) {
    case EXT4_SUPER_MAGIC: /* ext2 and ext3 too */
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
    case TMPFS_MAGIC:
    case F2FS_SUPER_MAGIC: return true;
    default: return false;
    }
}

/* e->end: where each database entry's subtree ends (path order keeps a
 * subtree right after its directory), so that a directory's children are
 * found by hopping from one to the next. */
static int subtree_ends(struct eng *e)
{
    size_t n = e->db.n, top = 0, *stack;

    if (!(e->end = arena_alloc(&e->mem, (n + 1) * sizeof *e->end)) ||
        !(stack = arena_alloc(&e->mem, (n + 1) * sizeof *stack)))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *p = e->db.v[i].path;
        while (top > 0) {
            const char *d = e->db.v[stack[top - 1]].path;
            size_t dl = strlen(d);
            if (!strncmp(p, d, dl) && p[dl] == '/')
                break;
            e->end[stack[--top]] = i;
        }
        stack[top++] = i;
    }
    while (top > 0)
        e->end[stack[--top]] = n;
    return 0;
}

/* Mark the node of path's directory on sd: its names and the result differ. */
static void mark_parent(struct side *sd, const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[STATEDB_PATH_MAX + 1];
    size_t lo = 0, hi = sd->walk.n;

    if (!slash)
        return; /* the root's: no listing is kept for it */
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = statedb_path_cmp(sd->walk.v[mid].path, dir);
        if (c == 0) {
            sd->walk.v[mid].mismatch = true;
            return;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
}

/* The listings a later pass may trust, into res (replacing those kept
 * from the base): a directory's, on a side that keeps ctimes, when every
 * name this walk found in it became a node (clean), those names are
 * exactly its children in the database this pass leaves (so no name the
 * database lacks, special, excluded, failed or held back, hides behind the
 * listing), and its ctime was older than the pass by more than any file
 * system's timestamp granularity (a change made after the walk read the
 * names then always moves the ctime).  Sets e->dirty when one changed. */
static void stamp_listings(struct eng *e, struct statedb *res)
{
    for (int s = 0; s < 2; s++) {
        struct side *sd = &e->s[s];
        struct nodes *w = &sd->walk;
        size_t i = w->n, j = res->n;

        /* Backwards: a directory's paths come after it, so whether its names
         * and its children in res differ is known when it is reached. */
        while (j > 0) {
            struct statedb_entry *en = &res->v[j - 1];
            struct statedb_listing l = {0, 0};
            int c = !sd->stamps ? 0 : i == 0 ? -1 : statedb_path_cmp(w->v[i - 1].path, en->path);

            if (c > 0) { /* the walk's only */
                mark_parent(sd, w->v[--i].path);
                continue;
            }
            if (c < 0) { /* res's only */
                mark_parent(sd, en->path);
            } else if (sd->stamps) {
                const struct node *nd = &w->v[--i];
                if (nd->n.m.type == SYNC_DIR && nd->clean && !nd->mismatch && nd->listed.ino &&
                    nd->listed.ctime_ns < e->trust_before)
                    l = nd->listed;
            }
            if (l.ino != en->listed[s].ino || l.ctime_ns != en->listed[s].ctime_ns) {
                en->listed[s] = l;
                e->dirty = true;
            }
            j--;
        }
    }
}

static int open_root(const char *path, char *why, size_t len, const char *what)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        snprintf(why, len, "%s %s: %s", what, path, strerror(errno));
    return fd < 0 ? -errno : fd;
}

/* More descriptors for deep trees: the walk holds one per level. */
static void raise_nofile(void)
{
    struct rlimit r;

    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

/* One pass at a time on a database: STATE.lock, held for the pass. */
static int lock_state(const char *state, char *why, size_t len)
{
    char path[PATH_MAX];
    int fd;

    if ((size_t)snprintf(path, sizeof path, "%s.lock", state) >= sizeof path) {
        snprintf(why, len, "%s: path too long", state);
        return -ENAMETOOLONG;
    }
    fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rc = -errno;
        snprintf(why, len, "cannot open %s: %s", path, strerror(errno));
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        snprintf(why, len, "%s: %s", path,
                 rc == -EBUSY ? "another sync pass of this home is running" : strerror(-rc));
        close(fd);
        return rc;
    }
    return fd;
}

static void eng_free(struct eng *e)
{
    for (int s = 0; s < 2; s++) {
        struct side *sd = &e->s[s];
        cache_drop(sd);
        if (sd->root >= 0)
            close(sd->root);
        arena_free(&sd->mem);
        for (size_t i = 0; i < sd->nblind; i++)
            free(sd->blind[i]);
        free(sd->blind);
    }
    statedb_free(&e->db);
    statedb_free(&e->out);
    arena_free(&e->mem);
    free(e->buf);
}

static void sides_init(struct eng *e)
{
    for (int s = 0; s < 2; s++) {
        e->s[s].id = (enum sync_side)s;
        e->s[s].name = s == SYNC_LOCAL ? "local" : "remote";
        e->s[s].root = -1;
        e->s[s].cache[0].fd = e->s[s].cache[1].fd = -1;
    }
}

int sync_run(const struct sync_opts *o, struct sync_stats *st, char *why, size_t whylen)
{
    struct eng e = {.o = o, .st = st};
    struct item *v = NULL;
    size_t n = 0, *dirs = NULL, ndirs = 0;
    struct tm tm;
    struct timespec now;
    struct statedb *res = NULL;
    int rc, lockfd;

    memset(st, 0, sizeof *st);
    why[0] = '\0';
    sides_init(&e);
    raise_nofile();
    if ((rc = lock_state(o->state, why, whylen)) < 0)
        return rc;
    lockfd = rc;
    if (!(e.buf = malloc(COPY_BUF))) {
        close(lockfd);
        return -ENOMEM;
    }
    gmtime_r(&o->now, &tm);
    strftime(e.stamp, sizeof e.stamp, "%Y-%m-%d_%H%M%S", &tm);
    if ((rc = e.s[SYNC_LOCAL].root = open_root(o->local, why, whylen, "local tree")) < 0 ||
        (rc = e.s[SYNC_REMOTE].root = open_root(o->remote, why, whylen, "remote tree")) < 0)
        goto out;
    for (int s = 0; s < 2; s++)
        e.s[s].stamps = keeps_ctimes(e.s[s].root);
    clock_gettime(CLOCK_REALTIME, &now);
    e.trust_before = ns(now) - TRUST_MARGIN_NS;
    rc = statedb_load(&e.db, o->state, why, whylen);
    if (rc == 0 && (rc = subtree_ends(&e)) < 0) {
        snprintf(why, whylen, "%s: out of memory", o->state);
        goto out;
    }
    if (rc == 0) {
        e.have_db = true;
        e.dirty = e.db.version != STATEDB_VERSION; /* an older format: rewritten */
    } else if (rc == -ENOENT || rc == -EBADMSG) {
        if (rc == -EBADMSG)
            log_warn("%s: the state database is damaged: this pass is a union (nothing deleted); "
                     "a new database is written after it",
                     why);
        else
            log_info("%s: no state database yet: this pass is a union (nothing deleted)", o->state);
        st->union_mode = true;
        e.dirty = true;
        why[0] = '\0';
    } else {
        goto out; /* -EPROTO (a newer homeport's) or unreadable: touch nothing */
    }
    if (!o->dry_run) {
        purge_trash(&e, &e.s[SYNC_LOCAL]);
        purge_trash(&e, &e.s[SYNC_REMOTE]);
    }
    if ((rc = walk_both(&e)) < 0) {
        snprintf(why, whylen, "walking the trees: %s", strerror(-rc));
        goto out;
    }
    if ((rc = plan(&e, &v, &n)) < 0) {
        snprintf(why, whylen, "planning: %s", strerror(-rc));
        goto out;
    }
    guard(&e, v, n);
    if (!(dirs = arena_alloc(&e.mem, (n + 1) * sizeof *dirs))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        bool defer = false;
        if (o->stop && *o->stop) {
            st->stopped = true;
            for (; i < n; i++)
                if (keep_base(&e, &v[i]) < 0)
                    break;
            break;
        }
        if ((rc = apply(&e, &v[i], &defer)) < 0) {
            snprintf(why, whylen, "%s: %s", v[i].path, strerror(-rc));
            goto out;
        }
        if (defer)
            dirs[ndirs++] = i;
    }
    while (ndirs > 0) /* deepest first */
        if ((rc = finish_dir(&e, &v[dirs[--ndirs]])) < 0) {
            snprintf(why, whylen, "%s: %s", v[dirs[ndirs]].path, strerror(-rc));
            goto out;
        }
    for (size_t i = n; !o->dry_run && i > 0; i--)
        dir_time(&e, &v[i - 1]);
    rc = 0;
    if (st->listed == 1)
        log_info("directories: local %lu read, %lu unchanged since the last pass; remote listed "
                 "by the server (%zu entries)",
                 e.s[SYNC_LOCAL].dirs_read, e.s[SYNC_LOCAL].dirs_trusted, e.s[SYNC_REMOTE].walk.n);
    else
        log_info("directories: local %lu read, %lu unchanged since the last pass; remote %lu "
                 "read, %lu unchanged",
                 e.s[SYNC_LOCAL].dirs_read, e.s[SYNC_LOCAL].dirs_trusted,
                 e.s[SYNC_REMOTE].dirs_read, e.s[SYNC_REMOTE].dirs_trusted);
    if (o->dry_run)
        goto out;
    if (!(res = result(&e))) {
        rc = -ENOMEM;
        snprintf(why, whylen, "%s: out of memory", o->state);
        goto out;
    }
    stamp_listings(&e, res);
    if (e.dirty || res != &e.db)
        rc = statedb_save(res, o->state, why, whylen);
out:

    eng_free(&e);
    close(lockfd);
    return rc;
}

/* ---- the server's side of the remote walk ------------------------------------ */

int sync_list_serve(FILE *in, FILE *out, char *why, size_t whylen)
{
    char line[4 * STATEDB_PATH_MAX + 64], dir[STATEDB_PATH_MAX + 1], *nl;
    struct sync_opts o = {0};
    struct sync_stats st = {0};
    struct eng e = {.o = &o, .st = &st, .serve = out};
    struct side *sd = &e.s[SYNC_REMOTE];
    struct walker w = {&e, sd, 0};
    int rc = 0, flags;

    if (!fgets(line, sizeof line, in) || !(nl = strchr(line, '\n')) ||
        (*nl = '\0', listing_parse_request(line, dir, sizeof dir, &flags) < 0)) {
        snprintf(why, whylen, "no request on stdin (this verb is run by homeport sync over ssh)");
        return -EBADMSG;
    }
    o.dry_run = flags & LISTING_DRY_RUN;
    sides_init(&e);
    raise_nofile();
    if ((rc = sd->root = open_root(dir, why, whylen, "tree")) < 0)
        return rc;
    fputs(LISTING_MAGIC "\n", out);
    walk_side(&w);
    if ((flags & LISTING_HASH) && w.rc == 0 && !(e.buf = malloc(COPY_BUF)))
        w.rc = -ENOMEM;
    for (size_t i = 0; w.rc == 0 && i < sd->walk.n; i++) {
        struct node *nd = &sd->walk.v[i];
        if ((flags & LISTING_HASH) && nd->n.m.type == SYNC_FILE &&
            hash_side(&e, sd, nd->path, &nd->n) < 0)
            memset(nd->n.digest, 0, sizeof nd->n.digest); /* the pass reads it through sshfs */
        if (listing_put_node(out, nd->path, &nd->n) < 0)
            w.rc = -EIO;
    }
    for (size_t i = 0; w.rc == 0 && i < sd->nblind; i++)
        if (listing_put_text(out, 'B', sd->blind[i]) < 0)
            w.rc = -EIO;
    if (w.rc == 0 && (fprintf(out, "END %zu\n", sd->walk.n) < 0 || fflush(out) == EOF))
        w.rc = -EIO;
    if ((rc = w.rc) < 0)
        snprintf(why, whylen, "listing %s: %s", dir, strerror(-rc));
    eng_free(&e);
    return rc;
}
