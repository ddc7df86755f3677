/* sync/statedb: see statedb.h. */
#include "statedb.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool statedb_path_ok(const char *path, size_t len)
{
    size_t start = 0;

    if (len == 0 || len > STATEDB_PATH_MAX || memchr(path, '\0', len))
        return false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        size_t n = i - start; /* the component path[start..i) */
        if (n == 0 || (n == 1 && path[start] == '.') ||
            (n == 2 && path[start] == '.' && path[start + 1] == '.'))
            return false;
        start = i + 1;
    }
    return true;
}

/* Where path is, or would go: *found says which. */
static size_t find(const struct statedb *db, const char *path, bool *found)
{
    size_t lo = 0, hi = db->n;

    *found = false;
    if (db->n > 0 && strcmp(db->v[db->n - 1].path, path) < 0)
        return db->n; /* appending in order: the walk's case */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(db->v[mid].path, path);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct statedb_entry *statedb_get(const struct statedb *db, const char *path)
{
    bool found;
    size_t i = find(db, path, &found);

    return found ? &db->v[i] : NULL;
}

int statedb_put(struct statedb *db, const struct statedb_entry *e)
{
    size_t len = strlen(e->path);
    bool found;
    size_t i;
    char *p;

    if (!statedb_path_ok(e->path, len))
        return -EINVAL;
    if (!(p = strdup(e->path)))
        return -ENOMEM;
    i = find(db, e->path, &found);
    if (found) {
        free(db->v[i].path);
        db->v[i] = *e;
        db->v[i].path = p;
        return 0;
    }
    if (db->n == db->cap) {
        size_t cap = db->cap ? 2 * db->cap : 64;
        struct statedb_entry *v = realloc(db->v, cap * sizeof *v);
        if (!v) {
            free(p);
            return -ENOMEM;
        }
        db->v = v, db->cap = cap;
    }
    memmove(&db->v[i + 1], &db->v[i], (db->n - i) * sizeof *db->v);
    db->v[i] = *e;
    db->v[i].path = p;
    db->n++;
    return 0;
}

bool statedb_del(struct statedb *db, const char *path)
{
    bool found;
    size_t i = find(db, path, &found);

    if (!found)
        return false;
    free(db->v[i].path);
    memmove(&db->v[i], &db->v[i + 1], (db->n - i - 1) * sizeof *db->v);
    db->n--;
    return true;
}

void statedb_free(struct statedb *db)
{
    for (size_t i = 0; i < db->n; i++)
        free(db->v[i].path);
    free(db->v);
    memset(db, 0, sizeof *db);
}

/* ---- encoding ------------------------------------------------------------ */

static uint64_t get_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    while (n--)
        v = v << 8 | p[n];
    return v;
}

static unsigned char *put_le(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++, v >>= 8)
        p[i] = (unsigned char)v;
    return p + n;
}

static bool type_ok(unsigned t)
{
    return t == SYNC_FILE || t == SYNC_DIR || t == SYNC_LINK;
}

/* Decode the entry at p (STATEDB_ENTRY_FIXED bytes are there) into e, the
 * path not yet: its length is returned. */
static size_t decode_fixed(const unsigned char *p, struct statedb_entry *e)
{
    e->local.type = p[0];
    e->remote.type = p[1];
    e->local.mode = (uint32_t)get_le(p + 2, 4);
    e->remote.mode = (uint32_t)get_le(p + 6, 4);
    e->local.size = get_le(p + 10, 8);
    e->local.mtime_ns = (int64_t)get_le(p + 18, 8);
    e->local.ino = get_le(p + 26, 8);
    e->local.ctime_ns = (int64_t)get_le(p + 34, 8);
    e->remote.size = get_le(p + 42, 8);
    e->remote.mtime_ns = (int64_t)get_le(p + 50, 8);
    memcpy(e->digest, p + 58, STATEDB_DIGEST);
    return (size_t)get_le(p + 90, 2);
}

static unsigned char *encode(unsigned char *p, const struct statedb_entry *e, size_t len)
{
    *p++ = e->local.type;
    *p++ = e->remote.type;
    p = put_le(p, e->local.mode, 4);
    p = put_le(p, e->remote.mode, 4);
    p = put_le(p, e->local.size, 8);
    p = put_le(p, (uint64_t)e->local.mtime_ns, 8);
    p = put_le(p, e->local.ino, 8);
    p = put_le(p, (uint64_t)e->local.ctime_ns, 8);
    p = put_le(p, e->remote.size, 8);
    p = put_le(p, (uint64_t)e->remote.mtime_ns, 8);
    memcpy(p, e->digest, STATEDB_DIGEST);
    p = put_le(p + STATEDB_DIGEST, len, 2);
    memcpy(p, e->path, len);
    return p + len;
}

/* ---- load ---------------------------------------------------------------- */

/* Read all of fd (a regular file) into *buf.  0 or -errno. */
static int slurp(int fd, unsigned char **buf, size_t *len)
{
    struct stat st;
    size_t got = 0;

    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EISDIR;
    if (!(*buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1)))
        return -ENOMEM;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, *buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break; /* shrunk meanwhile: short, the checksum will say */
        got += (size_t)n;
    }
    *len = got;
    return 0;
}

#define BAD(...) (snprintf(why, whylen, __VA_ARGS__), -EBADMSG)

/* Decode buf into db.  0, -EBADMSG or -EPROTO with why. */
static int parse(struct statedb *db, const unsigned char *buf, size_t len, const char *path,
                 char *why, size_t whylen)
{
    unsigned char sum[32];
    const unsigned char *p = buf + STATEDB_HEADER, *end;
    uint64_t count, version, flags;

    if (len < STATEDB_HEADER + STATEDB_TRAILER)
        return BAD("%s: short file (%zu bytes)", path, len);
    if (memcmp(buf, STATEDB_MAGIC, 8) != 0)
        return BAD("%s: not a sync state database (bad magic)", path);
    end = buf + len - STATEDB_TRAILER;
    if (mbedtls_sha256_ret(buf, (size_t)(end - buf), sum, 0) != 0 || memcmp(sum, end, 32) != 0)
        return BAD("%s: checksum mismatch (torn or damaged)", path);
    version = get_le(buf + 8, 4);
    flags = get_le(buf + 12, 4);
    count = get_le(buf + 16, 8);
    if (version != STATEDB_VERSION || flags != 0) {
        snprintf(why, whylen, "%s: format version %llu flags %#llx, this homeport reads version %u",
                 path, (unsigned long long)version, (unsigned long long)flags, STATEDB_VERSION);
        return -EPROTO;
    }
    if (count > (uint64_t)(end - p) / (STATEDB_ENTRY_FIXED + 1))
        return BAD("%s: %llu entries cannot fit in %zu bytes", path, (unsigned long long)count,
                   len);
    if (count > 0 && !(db->v = calloc((size_t)count, sizeof *db->v))) {
        snprintf(why, whylen, "%s: out of memory", path);
        return -ENOMEM;
    }
    db->cap = (size_t)count;
    for (uint64_t i = 0; i < count; i++) {
        struct statedb_entry *e = &db->v[i];
        size_t plen;

        if ((size_t)(end - p) < STATEDB_ENTRY_FIXED)
            return BAD("%s: entry %llu truncated", path, (unsigned long long)i);
        plen = decode_fixed(p, e);
        p += STATEDB_ENTRY_FIXED;
        if (!type_ok(e->local.type) || !type_ok(e->remote.type))
            return BAD("%s: entry %llu: bad type %u/%u", path, (unsigned long long)i, e->local.type,
                       e->remote.type);
        if (plen > (size_t)(end - p))
            return BAD("%s: entry %llu: path length %zu beyond the end", path,
                       (unsigned long long)i, plen);
        if (!statedb_path_ok((const char *)p, plen))
            return BAD("%s: entry %llu: invalid path", path, (unsigned long long)i);
        if (!(e->path = strndup((const char *)p, plen))) {
            snprintf(why, whylen, "%s: out of memory", path);
            return -ENOMEM;
        }
        db->n++;
        p += plen;
        if (i > 0 && strcmp(db->v[i - 1].path, e->path) >= 0)
            return BAD("%s: entry %llu: path not after the previous one", path,
                       (unsigned long long)i);
    }
    if (p != end)
        return BAD("%s: %zu bytes after the last entry", path, (size_t)(end - p));
    return 0;
}

int statedb_load(struct statedb *db, const char *path, char *why, size_t whylen)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int fd, rc;

    memset(db, 0, sizeof *db);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        snprintf(why, whylen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    rc = slurp(fd, &buf, &len);
    close(fd);
    if (rc < 0)
        snprintf(why, whylen, "%s: %s", path, strerror(-rc));
    else
        rc = parse(db, buf, len, path, why, whylen);
    free(buf);
    if (rc < 0)
        statedb_free(db);
    return rc;
}

/* ---- save ---------------------------------------------------------------- */

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n, len -= (size_t)n;
    }
    return 0;
}

static int fsync_dir(const char *path)
{
    char *copy = strdup(path);
    int fd, rc = 0;

    if (!copy)
        return -ENOMEM;
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

/* The whole file in memory.  NULL: -EINVAL (bad or unsorted paths) or
 * -ENOMEM in *rc. */
static unsigned char *serialize(const struct statedb *db, size_t *len, int *rc)
{
    size_t total = STATEDB_HEADER + STATEDB_TRAILER;
    unsigned char *buf, *p;

    *rc = -EINVAL;
    for (size_t i = 0; i < db->n; i++) {
        size_t plen = strlen(db->v[i].path);
        if (!statedb_path_ok(db->v[i].path, plen) || !type_ok(db->v[i].local.type) ||
            !type_ok(db->v[i].remote.type) ||
            (i > 0 && strcmp(db->v[i - 1].path, db->v[i].path) >= 0))
            return NULL;
        total += STATEDB_ENTRY_FIXED + plen;
    }
    *rc = -ENOMEM;
    if (!(buf = malloc(total)))
        return NULL;
    memcpy(buf, STATEDB_MAGIC, 8);
    p = put_le(buf + 8, STATEDB_VERSION, 4);
    p = put_le(p, 0, 4);
    p = put_le(p, db->n, 8);
    for (size_t i = 0; i < db->n; i++)
        p = encode(p, &db->v[i], strlen(db->v[i].path));
    *rc = mbedtls_sha256_ret(buf, (size_t)(p - buf), p, 0) == 0 ? 0 : -EIO;
    *len = total;
    if (*rc < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

int statedb_save(const struct statedb *db, const char *path, char *why, size_t whylen)
{
    char tmp[STATEDB_PATH_MAX + 32];
    unsigned char *buf;
    size_t len = 0;
    int fd, rc;

    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        snprintf(why, whylen, "%s: path too long", path);
        return -ENAMETOOLONG;
    }
    if (!(buf = serialize(db, &len, &rc))) {
        snprintf(why, whylen, "%s: %s", path,
                 rc == -EINVAL ? "entries with bad or unsorted paths or types" : strerror(-rc));
        return rc;
    }
    fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        snprintf(why, whylen, "%s: %s", tmp, strerror(-rc));
        free(buf);
        return rc;
    }
    rc = write_all(fd, buf, len);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    free(buf);
    if (rc < 0) {
        snprintf(why, whylen, "%s: %s", tmp, strerror(-rc));
        unlink(tmp);
        return rc;
    }
    if ((rc = fsync_dir(path)) < 0)
        snprintf(why, whylen, "%s: fsync of its directory: %s", path, strerror(-rc));
    return rc;
}
