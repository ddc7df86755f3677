/* sync/statedb: see statedb.h. */
#include "statedb.h"

#include <errno.h>
#include <fcntl.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../textfile.h"
#include "crc64.h"

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

int statedb_path_cmp(const char *a, const char *b)
{
    const unsigned char *p = (const unsigned char *)a, *q = (const unsigned char *)b;

    while (*p && *p == *q)
        p++, q++;
    /* '\0' < '/' < every other byte: map '/' to 1 and the others up by one */
    return (*p == '/' ? 1 : *p ? *p + 1 : 0) - (*q == '/' ? 1 : *q ? *q + 1 : 0);
}

/* Where path is, or would go: *found says which. */
static size_t find(const struct statedb *db, const char *path, bool *found)
{
    size_t lo = 0, hi = db->n;

    *found = false;
    if (db->n > 0 && statedb_path_cmp(db->v[db->n - 1].path, path) < 0)
        return db->n; /* appending in order: the walk's case */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = statedb_path_cmp(db->v[mid].path, path);
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

/* Put e with p as its path (owned by the caller or by db). */
static int put(struct statedb *db, const struct statedb_entry *e, char *p)
{
    bool found;
    size_t i = find(db, e->path, &found);

    if (found) {
        db->v[i] = *e;
        db->v[i].path = p;
        return 0;
    }
    if (db->n == db->cap && statedb_reserve(db, db->cap ? 2 * db->cap : 64) < 0)
        return -ENOMEM;
    memmove(&db->v[i + 1], &db->v[i], (db->n - i) * sizeof *db->v);
    db->v[i] = *e;
    db->v[i].path = p;
    db->n++;
    return 0;
}

int statedb_put(struct statedb *db, const struct statedb_entry *e)
{
    size_t len = strlen(e->path);
    char *p;

    if (!statedb_path_ok(e->path, len))
        return -EINVAL;
    if (!(p = arena_strndup(&db->mem, e->path, len)))
        return -ENOMEM;
    return put(db, e, p);
}

int statedb_put_borrowed(struct statedb *db, const struct statedb_entry *e)
{
    return put(db, e, e->path);
}

int statedb_reserve(struct statedb *db, size_t n)
{
    struct statedb_entry *v;

    if (n <= db->cap)
        return 0;
    if (n > SIZE_MAX / sizeof *v ||
        !(v = arena_grow(&db->mem, db->v, db->n * sizeof *v, n * sizeof *v)))
        return -ENOMEM;
    db->v = v;
    db->cap = n;
    return 0;
}

bool statedb_del(struct statedb *db, const char *path)
{
    bool found;
    size_t i = find(db, path, &found);

    if (!found)
        return false;
    memmove(&db->v[i], &db->v[i + 1], (db->n - i - 1) * sizeof *db->v);
    db->n--;
    return true;
}

void statedb_free(struct statedb *db)
{
    arena_free(&db->mem);
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

/* A side's listing is a directory's. */
static bool listings_ok(const struct statedb_entry *e)
{
    return (e->local.type == SYNC_DIR || (!e->listed[0].ino && !e->listed[0].ctime_ns)) &&
           (e->remote.type == SYNC_DIR || (!e->listed[1].ino && !e->listed[1].ctime_ns));
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

/* The same for version 2, whose entries have the listings. */
static size_t decode_fixed_v2(const unsigned char *p, struct statedb_entry *e)
{
    decode_fixed(p, e);
    e->listed[0].ino = get_le(p + 90, 8);
    e->listed[0].ctime_ns = (int64_t)get_le(p + 98, 8);
    e->listed[1].ino = get_le(p + 106, 8);
    e->listed[1].ctime_ns = (int64_t)get_le(p + 114, 8);
    return (size_t)get_le(p + 122, 2);
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
    p = put_le(p + STATEDB_DIGEST, e->listed[0].ino, 8);
    p = put_le(p, (uint64_t)e->listed[0].ctime_ns, 8);
    p = put_le(p, e->listed[1].ino, 8);
    p = put_le(p, (uint64_t)e->listed[1].ctime_ns, 8);
    p = put_le(p, len, 2);
    memcpy(p, e->path, len);
    return p + len;
}

/* ---- load ---------------------------------------------------------------- */

/* Read all of fd (a regular file) into *buf, from a.  0 or -errno. */
static int slurp(int fd, struct arena *a, unsigned char **buf, size_t *len)
{
    struct stat st;
    size_t got = 0;

    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EISDIR;
    if ((uint64_t)st.st_size > SIZE_MAX / 2 ||
        !(*buf = arena_alloc(a, st.st_size > 0 ? (size_t)st.st_size : 1)))
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

static int cmp_entry(const void *a, const void *b)
{
    return statedb_path_cmp(((const struct statedb_entry *)a)->path,
                            ((const struct statedb_entry *)b)->path);
}

/* Which version's trailer checks out: 2 (CRC-64), 1 (SHA-256), or 0. */
static unsigned checked(const unsigned char *buf, size_t len)
{
    unsigned char sum[32];

    if (len >= STATEDB_HEADER + STATEDB_TRAILER &&
        crc64(0, buf, len - STATEDB_TRAILER) == get_le(buf + len - STATEDB_TRAILER, 8))
        return 2;
    if (len >= STATEDB_HEADER + STATEDB_TRAILER_V1 &&
        mbedtls_sha256_ret(buf, len - STATEDB_TRAILER_V1, sum, 0) == 0 &&
        memcmp(sum, buf + len - STATEDB_TRAILER_V1, 32) == 0)
        return 1;
    return 0;
}

/* Decode buf into db.  0, -EBADMSG or -EPROTO with why. */
static int parse(struct statedb *db, unsigned char *buf, size_t len, const char *path, char *why,
                 size_t whylen)
{
    unsigned char *p = buf + STATEDB_HEADER, *end;
    uint64_t count, version, flags;
    unsigned format;
    size_t fixed;
    int (*cmp)(const char *, const char *);

    if (len < STATEDB_HEADER + STATEDB_TRAILER)
        return BAD("%s: short file (%zu bytes)", path, len);
    if (memcmp(buf, STATEDB_MAGIC, 8) != 0)
        return BAD("%s: not a sync state database (bad magic)", path);
    if (!(format = checked(buf, len)))
        return BAD("%s: checksum mismatch (torn or damaged)", path);
    end = buf + len - (format == 1 ? STATEDB_TRAILER_V1 : STATEDB_TRAILER);
    cmp = format == 1 ? strcmp : statedb_path_cmp;
    version = get_le(buf + 8, 4);
    flags = get_le(buf + 12, 4);
    count = get_le(buf + 16, 8);
    if (version != format || flags != 0) {
        snprintf(why, whylen,
                 "%s: format version %llu, flags %#llx, checksum of version %u: this homeport "
                 "reads versions 1 and %u, flags 0",
                 path, (unsigned long long)version, (unsigned long long)flags, format,
                 STATEDB_VERSION);
        return -EPROTO;
    }
    fixed = format == 1 ? STATEDB_ENTRY_FIXED_V1 : STATEDB_ENTRY_FIXED;
    if (count > (uint64_t)(end - p) / (fixed + 1))
        return BAD("%s: %llu entries cannot fit in %zu bytes", path, (unsigned long long)count,
                   len);
    if (statedb_reserve(db, (size_t)count) < 0) {
        snprintf(why, whylen, "%s: out of memory", path);
        return -ENOMEM;
    }
    for (uint64_t i = 0; i < count; i++) {
        struct statedb_entry *e = &db->v[i];
        size_t plen;

        if ((size_t)(end - p) < fixed)
            return BAD("%s: entry %llu truncated", path, (unsigned long long)i);
        memset(e, 0, sizeof *e);
        plen = format == 1 ? decode_fixed(p, e) : decode_fixed_v2(p, e);
        p += fixed;
        if (!type_ok(e->local.type) || !type_ok(e->remote.type))
            return BAD("%s: entry %llu: bad type %u/%u", path, (unsigned long long)i, e->local.type,
                       e->remote.type);
        if (!listings_ok(e))
            return BAD("%s: entry %llu: a listing on what is not a directory", path,
                       (unsigned long long)i);
        if (plen > (size_t)(end - p))
            return BAD("%s: entry %llu: path length %zu beyond the end", path,
                       (unsigned long long)i, plen);
        if (!statedb_path_ok((const char *)p, plen))
            return BAD("%s: entry %llu: invalid path", path, (unsigned long long)i);
        e->path = (char *)p; /* its NUL comes below */
        db->n++;
        p += plen;
    }
    if (p != end)
        return BAD("%s: %zu bytes after the last entry", path, (size_t)(end - p));
    /* The paths stay in buf: each ends where the next entry starts (decoded
     * above, so that byte is free) or where the trailer does (checked). */
    for (size_t i = 0; i < db->n; i++) {
        db->v[i].path[(i + 1 < db->n ? (char *)db->v[i + 1].path - fixed : (char *)end) -
                      db->v[i].path] = '\0';
        if (i > 0 && cmp(db->v[i - 1].path, db->v[i].path) >= 0)
            return BAD("%s: entry %zu: path not after the previous one", path, i);
    }
    if (format == 1 && db->n > 1) /* byte order: into path order */
        qsort(db->v, db->n, sizeof *db->v, cmp_entry);
    db->version = format;
    return 0;
}

int statedb_load_mem(struct statedb *db, const void *data, size_t len, const char *name, char *why,
                     size_t whylen)
{
    unsigned char *buf;
    int rc;

    memset(db, 0, sizeof *db);
    if (!(buf = arena_alloc(&db->mem, len))) {
        snprintf(why, whylen, "%s: out of memory", name);
        return -ENOMEM;
    }
    memcpy(buf, data, len);
    rc = parse(db, buf, len, name, why, whylen);
    if (rc < 0)
        statedb_free(db);
    return rc;
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
    rc = slurp(fd, &db->mem, &buf, &len); /* the paths will stay in it */
    close(fd);
    if (rc < 0)
        snprintf(why, whylen, "%s: %s", path, strerror(-rc));
    else
        rc = parse(db, buf, len, path, why, whylen);
    if (rc < 0)
        statedb_free(db);
    return rc;
}

/* ---- save ---------------------------------------------------------------- */

unsigned char *statedb_encode(const struct statedb *db, size_t *len, int *rc)
{
    size_t total = STATEDB_HEADER + STATEDB_TRAILER;
    unsigned char *buf, *p;

    *rc = -EINVAL;
    for (size_t i = 0; i < db->n; i++) {
        size_t plen = strlen(db->v[i].path);
        if (!statedb_path_ok(db->v[i].path, plen) || !type_ok(db->v[i].local.type) ||
            !type_ok(db->v[i].remote.type) || !listings_ok(&db->v[i]) ||
            (i > 0 && statedb_path_cmp(db->v[i - 1].path, db->v[i].path) >= 0))
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
    put_le(p, crc64(0, buf, (size_t)(p - buf)), STATEDB_TRAILER);
    *rc = 0;
    *len = total;
    return buf;
}

int statedb_save(const struct statedb *db, const char *path, char *why, size_t whylen)
{
    unsigned char *buf;
    size_t len = 0;
    int rc;

    if (!(buf = statedb_encode(db, &len, &rc))) {
        snprintf(why, whylen, "%s: %s", path,
                 rc == -EINVAL ? "entries with bad or unsorted paths, types or listings"
                               : strerror(-rc));
        return rc;
    }
    /* a temp file already there is another pass's (the lock failed?): left */
    rc = textfile_replace(path, buf, len, 0600, TEXTFILE_EXCL | TEXTFILE_SYNC_DIR);
    free(buf);
    if (rc < 0)
        snprintf(why, whylen, "%s: %s", path, strerror(-rc));
    return rc;
}
