/* Sync state database: the CRC-64 and the path order it relies on, the
 * in-memory set (tens of thousands of entries in its arena, copies that
 * outlive a put or a del, reserve), a round trip of odd names, the atomic
 * save and its failures, the bytes of format 2 written by hand, version 1
 * files (read, put in path order, saved as version 2), and every kind of
 * damage to a file: each byte flipped, each length cut, crafted entries
 * (re-signed here so only the entry is wrong), an unknown version, a huge
 * count. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mbedtls/sha256.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sync/crc64.h"
#include "sync/statedb.h"
#include "tap.h"

static char dir[64], dbpath[128], why[8192];

/* An entry for path whose every field depends on seed (the listings only
 * for a directory, as the engine records them). */
static struct statedb_entry entry(const char *path, unsigned seed)
{
    struct statedb_entry e = {.path = (char *)path};
    uint8_t t = (uint8_t)(1 + seed % 3);

    e.local = (struct sync_meta){t,
                                 0644 + seed % 512,
                                 seed * 1000003ull,
                                 -(int64_t)seed * 7,
                                 0xfedcba9876543210ull ^ seed,
                                 INT64_MAX - seed};
    e.remote = (struct sync_meta){t, 0600 + seed % 64, UINT64_MAX - seed, INT64_MIN + seed, 0, 0};
    for (size_t i = 0; i < STATEDB_DIGEST; i++)
        e.digest[i] = seed % 5 ? (unsigned char)(seed * 31 + i) : 0;
    if (t == SYNC_DIR) {
        e.listed[0] = (struct statedb_listing){0x8000000000000000ull | seed, INT64_MIN + 3 * seed};
        e.listed[1] = (struct statedb_listing){seed * 0x10001ull, 1700000000123456789ll + seed};
    }
    return e;
}

/* The entry a version 1 file gives: no listings. */
static struct statedb_entry entry_v1(const char *path, unsigned seed)
{
    struct statedb_entry e = entry(path, seed);

    memset(e.listed, 0, sizeof e.listed);
    return e;
}

/* A seed that depends on the path only (FNV-1a): entries that moved keep
 * theirs. */
static unsigned seed_of(const char *path)
{
    uint32_t h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % 100000;
}

static bool same_entry(const struct statedb_entry *a, const struct statedb_entry *b)
{
    return strcmp(a->path, b->path) == 0 && memcmp(&a->local, &b->local, sizeof a->local) == 0 &&
           memcmp(&a->remote, &b->remote, sizeof a->remote) == 0 &&
           memcmp(a->digest, b->digest, STATEDB_DIGEST) == 0 &&
           memcmp(a->listed, b->listed, sizeof a->listed) == 0;
}

static bool same_db(const struct statedb *a, const struct statedb *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!same_entry(&a->v[i], &b->v[i]))
            return false;
    return true;
}

/* Whether db's paths are strictly increasing in path order. */
static bool sorted(const struct statedb *db)
{
    for (size_t i = 1; i < db->n; i++)
        if (statedb_path_cmp(db->v[i - 1].path, db->v[i].path) >= 0)
            return false;
    return true;
}

/* Whether db holds exactly paths[0..n), in that order, each with the fields
 * of entry(path, seed_of(path)), without the listings for what came from a
 * file of version 1. */
static bool holds(const struct statedb *db, const char *const *paths, size_t n, unsigned version)
{
    if (db->n != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        struct statedb_entry want = (version == 1 ? entry_v1 : entry)(paths[i], seed_of(paths[i]));
        if (!same_entry(&db->v[i], &want))
            return false;
    }
    return true;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    unsigned char *buf = malloc(1 << 20);

    *len = f ? fread(buf, 1, 1 << 20, f) : 0;
    if (f)
        fclose(f);
    return buf;
}

static void spit(const char *path, const unsigned char *buf, size_t len)
{
    FILE *f = fopen(path, "we");

    if (!f || fwrite(buf, 1, len, f) != len)
        printf("# cannot write %s\n", path);
    if (f)
        fclose(f);
}

static unsigned char *put_le(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++, v >>= 8)
        p[i] = (unsigned char)v;
    return p + n;
}

static uint64_t get_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    while (n--)
        v = v << 8 | p[n];
    return v;
}

/* Write the trailer of format version (1: SHA-256, 2: CRC-64) at the end of
 * the len bytes at buf, over every byte before it. */
static void sign(unsigned char *buf, size_t len, unsigned version)
{
    if (version == 1)
        mbedtls_sha256_ret(buf, len - STATEDB_TRAILER_V1, buf + len - STATEDB_TRAILER_V1, 0);
    else
        put_le(buf + len - STATEDB_TRAILER, crc64(0, buf, len - STATEDB_TRAILER), 8);
}

/* Rewrite the trailer so that only what was patched is wrong. */
static void resign(unsigned char *buf, size_t len)
{
    sign(buf, len, 2);
}

/* A file written by hand after the format comment: version field version,
 * the entries entry(paths[i], seed_of(paths[i])) in the order given, laid
 * out and signed as in format (1: 92 bytes and the path, no listings,
 * SHA-256; 2: 124 bytes and the path, CRC-64).  Its length in *len. */
static unsigned char *hand_file(unsigned version, unsigned format, const char *const *paths,
                                size_t n, size_t *len)
{
    size_t total = STATEDB_HEADER + (format == 1 ? 32 : 8), fixed = format == 1 ? 92 : 124;
    unsigned char *buf, *p;

    for (size_t i = 0; i < n; i++)
        total += fixed + strlen(paths[i]);
    p = buf = calloc(1, total);
    memcpy(p, "HPSYNCDB", 8);
    p = put_le(p + 8, version, 4);
    p = put_le(p, 0, 4);
    p = put_le(p, n, 8);
    for (size_t i = 0; i < n; i++) {
        struct statedb_entry e = entry(paths[i], seed_of(paths[i]));
        size_t plen = strlen(paths[i]);
        unsigned char *q = p;

        q[0] = e.local.type;
        q[1] = e.remote.type;
        put_le(q + 2, e.local.mode, 4);
        put_le(q + 6, e.remote.mode, 4);
        put_le(q + 10, e.local.size, 8);
        put_le(q + 18, (uint64_t)e.local.mtime_ns, 8);
        put_le(q + 26, e.local.ino, 8);
        put_le(q + 34, (uint64_t)e.local.ctime_ns, 8);
        put_le(q + 42, e.remote.size, 8);
        put_le(q + 50, (uint64_t)e.remote.mtime_ns, 8);
        memcpy(q + 58, e.digest, STATEDB_DIGEST);
        if (format != 1) {
            put_le(q + 90, e.listed[0].ino, 8);
            put_le(q + 98, (uint64_t)e.listed[0].ctime_ns, 8);
            put_le(q + 106, e.listed[1].ino, 8);
            put_le(q + 114, (uint64_t)e.listed[1].ctime_ns, 8);
        }
        put_le(q + fixed - 2, plen, 2);
        memcpy(q + fixed, paths[i], plen);
        p += fixed + plen;
    }
    sign(buf, total, format);
    *len = total;
    return buf;
}

static int load_bytes(const unsigned char *buf, size_t len)
{
    struct statedb db;
    int rc;

    spit(dbpath, buf, len);
    why[0] = '\0';
    rc = statedb_load(&db, dbpath, why, sizeof why);
    if (rc == 0)
        statedb_free(&db);
    else if (db.n || db.v || db.mem.head)
        rc = -9999; /* a failed load leaves an empty db */
    return rc;
}

/* How many files are in dir (the temp files left behind show). */
static int files_in_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    while (d && (de = readdir(d)))
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* CRC-64/XZ a bit at a time, straight from the definition. */
static uint64_t crc64_ref(const unsigned char *p, size_t len)
{
    uint64_t crc = ~0ull;

    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = crc & 1 ? (crc >> 1) ^ 0xc96c5795d7870f42ull : crc >> 1;
    }
    return ~crc;
}

static void test_crc64(void)
{
    enum { LEN = 100003 }; /* not a multiple of 8 */
    static unsigned char buf[LEN];
    static const size_t cuts[] = {0,  1,    3,    7,     8,       9,       15, 16,
                                  17, 4095, 4096, 50001, LEN - 8, LEN - 1, LEN};
    size_t bad = 0;
    uint64_t whole;

    ok(crc64(0, "123456789", 9) == 0x995dc9bbdf1939faull, "check value of \"123456789\"");
    ok(crc64(0, "", 0) == 0 && crc64(0x1234, "", 0) == 0x1234, "no bytes: the crc passed in");
    for (size_t i = 0; i < LEN; i++)
        buf[i] = (unsigned char)(tap_rand() >> 24);
    whole = crc64(0, buf, LEN);
    ok(whole == crc64_ref(buf, LEN), "%d pseudo-random bytes: as bit by bit", LEN);
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len <= 80; len++)
            bad += crc64(0, buf + off, len) != crc64_ref(buf + off, len);
    ok(bad == 0, "every length 0..80 at every offset 0..7: as bit by bit (%zu not)", bad);
    bad = 0;
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++)
        bad += crc64(crc64(0, buf, cuts[i]), buf + cuts[i], LEN - cuts[i]) != whole;
    ok(bad == 0, "in two pieces, cut at %zu places: as in one (%zu not)",
       sizeof cuts / sizeof *cuts, bad);
    bad = 0;
    {
        uint64_t crc = 0;
        size_t at = 0;
        while (at < LEN) {
            size_t n = tap_rand() % 100;
            if (n > LEN - at)
                n = LEN - at;
            crc = crc64(crc, buf + at, n);
            at += n;
        }
        ok(crc == whole, "in pieces of 0..99 bytes: as in one");
    }
}

/* A path from an alphabet where the path order and strcmp disagree. */
static void random_path(char *buf, size_t room)
{
    static const char abc[] = "/. a0b\x01\xff";
    size_t len = tap_rand() % (room < 7 ? room : 7);

    for (size_t i = 0; i < len; i++)
        buf[i] = abc[tap_rand() % (sizeof abc - 1)];
    buf[len] = '\0';
}

/* The path order from its definition: split into components, compare them
 * as unsigned bytes (a prefix first), then the lists (a prefix first). */
static int path_cmp_ref(const char *a, const char *b)
{
    for (;;) {
        size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
        int c = memcmp(a, b, la < lb ? la : lb);
        if (c)
            return c;
        if (la != lb)
            return la < lb ? -1 : 1;
        a += la, b += lb;
        if (!*a || !*b)
            return !*a && !*b ? 0 : !*a ? -1 : 1;
        a++, b++; /* both at a '/' */
    }
}

static int sign_of(int x)
{
    return (x > 0) - (x < 0);
}

static void test_path_cmp(void)
{
    static const struct {
        const char *a, *b;
        int want;
    } t[] = {
        {"a", "a/b", -1},
        {"a/b", "a b", -1},
        {"a/b", "a.b", -1},
        {"a b", "a.b", -1},
        {"a/z", "a0", -1},
        {"a/z", "a b", -1},
        {"a/b/c", "a.b", -1},
        {"a/b/c", "a/b!", -1},
        {"a/b", "a\x01", -1},
        {"dir/sub", "dir-x", -1},
        {"dir.txt/x", "dir/y", 1},
        {"abc", "abd", -1},
        {"ab", "abc", -1},
        {"b", "a/b", 1},
        {"a\x7f", "a\x80", -1},
        {"\x80", "a", 1},
        {"a\xff", "a/b", 1},
        {"caf\xc3\xa9", "cafz", 1},
        {"\xff/a", "\xff", 1},
        {"a/b", "a/b", 0},
        {"a", "a", 0},
        {"", "", 0},
        {"a", "", 1},
        {"/", "", 1},
    };
    size_t bad = 0;
    char a[8], b[8];

    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        ok(sign_of(statedb_path_cmp(t[i].a, t[i].b)) == t[i].want &&
               sign_of(statedb_path_cmp(t[i].b, t[i].a)) == -t[i].want,
           "path_cmp('%s', '%s') %s 0 and the other way round", t[i].a, t[i].b,
           t[i].want < 0   ? "<"
           : t[i].want > 0 ? ">"
                           : "==");
    for (int i = 0; i < 100000; i++) {
        random_path(a, sizeof a);
        random_path(b, sizeof b);
        if (tap_rand() % 4 == 0)
            memcpy(b, a, sizeof a); /* equal, or sharing a prefix below */
        if (tap_rand() % 2)
            b[strlen(b) / 2] = '\0';
        bad += sign_of(statedb_path_cmp(a, b)) != sign_of(path_cmp_ref(a, b));
    }
    ok(bad == 0, "100000 random pairs: component by component (%zu not)", bad);
}

static void test_memory(void)
{
    struct statedb db = {0};
    struct statedb_entry e = entry("b", 1);
    static char long_path[STATEDB_PATH_MAX + 2];
    static const char *const bad[] = {"",   "/a",    "a/",     "a//b", ".",
                                      "..", "a/./b", "a/../b", "./a",  "a/.."};
    int rc = 0;

    rc |= statedb_put(&db, &e);
    e = entry("a", 2);
    rc |= statedb_put(&db, &e);
    e = entry("c", 3);
    rc |= statedb_put(&db, &e);
    e = entry("a/b", 4);
    rc |= statedb_put(&db, &e);
    e = entry("a.b", 5);
    rc |= statedb_put(&db, &e);
    ok(rc == 0 && db.n == 5, "5 entries put out of order");
    ok(strcmp(db.v[0].path, "a") == 0 && strcmp(db.v[1].path, "a/b") == 0 &&
           strcmp(db.v[2].path, "a.b") == 0 && strcmp(db.v[3].path, "b") == 0 &&
           strcmp(db.v[4].path, "c") == 0,
       "kept in path order (a/b right after a, before a.b)");
    ok(statedb_get(&db, "a/b") && statedb_get(&db, "a/b")->local.size == 4 * 1000003ull,
       "get finds a/b");
    ok(statedb_get(&db, "a.b") && statedb_get(&db, "a.b")->local.size == 5 * 1000003ull,
       "get finds a.b");
    ok(!statedb_get(&db, "a/c") && !statedb_get(&db, "") && !statedb_get(&db, "d") &&
           !statedb_get(&db, "a b") && !statedb_get(&db, "a/a"),
       "get: absent paths");
    e = entry("b", 9);
    ok(statedb_put(&db, &e) == 0 && db.n == 5 &&
           statedb_get(&db, "b")->local.size == 9 * 1000003ull,
       "put replaces");
    ok(statedb_get(&db, "b")->path != e.path, "the path is copied");
    ok(statedb_del(&db, "a.b") && db.n == 4 && !statedb_get(&db, "a.b"), "del removes");
    ok(!statedb_del(&db, "a.b") && db.n == 4, "del of an absent path");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        e = entry(bad[i], 1);
        ok(statedb_put(&db, &e) == -EINVAL && db.n == 4, "put rejects '%s'", bad[i]);
    }
    memset(long_path, 'x', STATEDB_PATH_MAX + 1);
    e = entry(long_path, 1);
    ok(statedb_put(&db, &e) == -EINVAL, "put rejects a path of 4097 bytes");
    long_path[STATEDB_PATH_MAX] = '\0';
    ok(statedb_put(&db, &e) == 0 && db.n == 5, "and takes one of 4096");
    ok(statedb_path_ok("a\0b", 3) == false && statedb_path_ok("..a/b..", 7),
       "path_ok: NUL rejected, '..a' is a name");
    statedb_free(&db);
    ok(db.n == 0 && db.cap == 0 && !db.v && !db.mem.head, "free empties, the arena too");
    e = entry("again", 1);
    ok(statedb_put(&db, &e) == 0 && db.n == 1 && statedb_get(&db, "again"),
       "a freed database is used again");
    statedb_free(&db);
}

#define MANY 20000

/* Path number i: distinct for each i, with '/', '.', ' ' and '-' after a
 * common prefix, where the path order is not strcmp's. */
static void many_path(char *buf, size_t len, unsigned i)
{
    static const char sep[] = "/. -";

    snprintf(buf, len, "d%u%c%u", i % 100, sep[i % 4], i / 4);
}

static char names[MANY][24];

/* qsort: indexes into names, in path order. */
static int cmp_name(const void *a, const void *b)
{
    return statedb_path_cmp(names[*(const unsigned *)a], names[*(const unsigned *)b]);
}

/* Many entries in and out, the arena under them; copies out of the db. */
static void test_many(void)
{
    static unsigned order[MANY], perm[MANY];
    struct statedb db = {0}, db2 = {0};
    struct statedb_entry e, kept_put, kept_del, want;
    size_t bad = 0;
    int rc = 0;

    for (unsigned i = 0; i < MANY; i++) {
        many_path(names[i], sizeof names[i], i);
        order[i] = perm[i] = i;
    }
    for (unsigned i = MANY - 1; i > 0; i--) { /* Fisher-Yates */
        unsigned j = tap_rand() % (i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (unsigned i = 0; i < MANY; i++) {
        e = entry(names[perm[i]], perm[i]);
        rc |= statedb_put(&db, &e);
    }
    ok(rc == 0 && db.n == MANY && db.cap >= MANY, "%d entries put in random order", MANY);
    qsort(order, MANY, sizeof *order, cmp_name);
    for (size_t i = 0; i < db.n && i < MANY; i++)
        bad += strcmp(db.v[i].path, names[order[i]]) != 0;
    ok(db.n == MANY && bad == 0 && sorted(&db), "in path order, as qsort has them (%zu not)", bad);
    for (unsigned i = 0; i < MANY; i++) {
        e = entry(names[order[i]], order[i]);
        rc |= statedb_put(&db2, &e);
    }
    ok(rc == 0 && same_db(&db, &db2), "the same %d put in order: the same database", MANY);
    statedb_free(&db2);

    bad = 0;
    for (unsigned i = 0; i < MANY; i += 2)
        bad += !statedb_del(&db, names[i]);
    ok(bad == 0 && db.n == MANY / 2 && sorted(&db), "del of every other one (%zu failed)", bad);
    bad = 0;
    for (unsigned i = 0; i < MANY; i += 2)
        bad += statedb_del(&db, names[i]);
    ok(bad == 0 && db.n == MANY / 2, "del again: none there");
    bad = 0;
    for (unsigned i = 0; i < MANY; i++) {
        const struct statedb_entry *g = statedb_get(&db, names[i]);
        want = entry(names[i], i);
        bad += i % 2 ? !g || !same_entry(g, &want) : g != NULL;
    }
    ok(bad == 0, "get of all %d: the deleted absent, the others intact (%zu not)", MANY, bad);
    bad = 0;
    for (unsigned i = 1; i < MANY; i += 2) {
        e = entry(names[i], i + MANY);
        rc |= statedb_put(&db, &e);
    }
    for (unsigned i = 1; i < MANY; i += 2) {
        const struct statedb_entry *g = statedb_get(&db, names[i]);
        want = entry(names[i], i + MANY);
        bad += !g || !same_entry(g, &want);
    }
    ok(rc == 0 && bad == 0 && db.n == MANY / 2 && sorted(&db),
       "each of them put over: replaced in place (%zu not)", bad);

    /* the header's promise: a copy keeps a valid path until statedb_free */
    kept_put = *statedb_get(&db, names[1]);
    kept_del = *statedb_get(&db, names[3]);
    e = entry(names[1], 7);
    rc = statedb_put(&db, &e);
    ok(rc == 0 && statedb_del(&db, names[3]), "put over one, del another");
    for (unsigned i = 0; i < MANY; i += 2) { /* the memory of the gone ones is not reused */
        char name[48];
        snprintf(name, sizeof name, "%.23s-a-longer-new-one", names[i]);
        e = entry(name, i);
        rc |= statedb_put(&db, &e);
    }
    want = entry(names[1], 1 + MANY);
    ok(rc == 0 && same_entry(&kept_put, &want) && kept_put.path != statedb_get(&db, names[1])->path,
       "a copy taken before a put over its path: path and fields intact");
    want = entry(names[3], 3 + MANY);
    ok(same_entry(&kept_del, &want) && !statedb_get(&db, names[3]),
       "a copy taken before a del: path and fields intact");
    statedb_free(&db);
}

static void test_reserve(void)
{
    struct statedb db = {0};
    struct statedb_entry e, *v, *copy;
    char name[32];
    bool same = true;
    int rc = 0;

    ok(statedb_reserve(&db, 0) == 0 && db.cap == 0 && db.n == 0, "reserve 0 on an empty db");
    ok(statedb_reserve(&db, 100) == 0 && db.cap >= 100 && db.n == 0 && db.v,
       "reserve 100 on an empty db: cap %zu", db.cap);
    v = db.v;
    for (unsigned i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "r%u", i * 37 % 100);
        e = entry(name, i * 37 % 100);
        rc |= statedb_put(&db, &e);
    }
    ok(rc == 0 && db.n == 100 && db.v == v, "100 puts in the room for 100: the array did not move");
    copy = malloc(100 * sizeof *copy);
    memcpy(copy, db.v, 100 * sizeof *copy);
    ok(statedb_reserve(&db, 50) == 0 && db.cap >= 100 && db.v == v && db.n == 100,
       "reserve less than cap: nothing changes");
    ok(statedb_reserve(&db, 5000) == 0 && db.cap >= 5000 && db.n == 100, "reserve 5000: cap %zu",
       db.cap);
    for (size_t i = 0; i < 100; i++)
        same &= same_entry(&db.v[i], &copy[i]) && db.v[i].path == copy[i].path;
    ok(same && sorted(&db), "the entries kept");
    v = db.v;
    for (unsigned i = 100; i < 5000; i++) {
        snprintf(name, sizeof name, "r%u", i);
        e = entry(name, i);
        rc |= statedb_put(&db, &e);
    }
    ok(rc == 0 && db.n == 5000 && db.v == v && sorted(&db),
       "4900 more puts: the array did not move");
    ok(statedb_reserve(&db, SIZE_MAX) == -ENOMEM &&
           statedb_reserve(&db, SIZE_MAX / sizeof *db.v) == -ENOMEM && db.n == 5000 && db.v == v &&
           statedb_get(&db, "r4999"),
       "an impossible reserve: -ENOMEM, the db intact");
    free(copy);
    statedb_free(&db);
}

/* Many entries, odd names: what is saved is what is loaded. */
static void test_roundtrip(void)
{
    static const char *const odd[] = {
        "with space",  "new\nline",
        "tab\there",   "caf\xc3\xa9/\xe2\x82\xac.txt",
        "bad\xff\xfe", "\x01\x7f control",
        ".hidden/.x",  "a/b/c/d/e/f/g",
        "...",         "-dash",
        "x/..y/z.",    "\xed\xa0\x80 surrogate",
        "x.y",         "x y/z",
        "x/y",         "x-",
    };
    static char big[STATEDB_PATH_MAX + 1];
    struct statedb db = {0}, back;
    struct statedb_entry e;
    char name[64];
    int rc = 0;

    for (unsigned i = 0; i < 3000; i++) {
        snprintf(name, sizeof name, "dir%u%c", i % 37, i % 3 ? '/' : '.');
        snprintf(name + strlen(name), sizeof name - strlen(name), "file%u", i * 7919 % 3000);
        e = entry(name, i);
        rc |= statedb_put(&db, &e);
    }
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        e = entry(odd[i], (unsigned)i + 5000);
        rc |= statedb_put(&db, &e);
    }
    for (size_t i = 0; i < STATEDB_PATH_MAX; i++)
        big[i] = i % 100 == 99 ? '/' : (char)('a' + i % 26);
    e = entry(big, 7);
    rc |= statedb_put(&db, &e);
    ok(rc == 0 && db.n == 3000 + sizeof odd / sizeof *odd + 1, "%zu entries built", db.n);
    rc = statedb_save(&db, dbpath, why, sizeof why);
    ok(rc == 0, "saved (%s)", rc ? why : "");
    rc = statedb_load(&back, dbpath, why, sizeof why);
    ok(rc == 0, "loaded (%s)", rc ? why : "");
    ok(rc == 0 && same_db(&db, &back), "every field of every entry back");
    ok(rc == 0 && back.version == 2, "a version 2 file: db.version 2");
    ok(rc == 0 && statedb_get(&back, big) && statedb_get(&back, "new\nline") &&
           statedb_get(&back, "bad\xff\xfe"),
       "the 4096-byte path, a newline, invalid UTF-8");
    e = entry("dir0/zzz", 1);
    ok(rc == 0 && statedb_put(&back, &e) == 0 && statedb_del(&back, "x.y") &&
           statedb_get(&back, "dir0/zzz") && !statedb_get(&back, "x.y") && sorted(&back),
       "a loaded database takes a put and a del");
    statedb_free(&back);
    statedb_free(&db);

    rc = statedb_save(&db, dbpath, why, sizeof why);
    ok(rc == 0 && statedb_load(&back, dbpath, why, sizeof why) == 0 && back.n == 0 &&
           back.version == 2,
       "an empty database round-trips");
    statedb_free(&back);
}

/* The file statedb_save writes is the format comment's, byte for byte. */
static void test_format(void)
{
    static const char *const paths[] = {"a", "a/b", "a/b/c", "a b", "a.b", "b\xff"};
    const size_t n = sizeof paths / sizeof *paths;
    struct statedb db = {0}, back;
    struct statedb_entry e;
    unsigned char *want, *got;
    size_t wlen, glen;
    int rc = 0;

    for (size_t i = n; i-- > 0;) {
        e = entry(paths[i], seed_of(paths[i]));
        rc |= statedb_put(&db, &e);
    }
    rc |= statedb_save(&db, dbpath, why, sizeof why);
    got = slurp(dbpath, &glen);
    want = hand_file(2, 2, paths, n, &wlen);
    ok(rc == 0 && glen == wlen && memcmp(got, want, wlen) == 0,
       "save writes the bytes of format 2, written here by hand (%zu bytes)", glen);
    ok(glen >= 8 && get_le(got + glen - 8, 8) == crc64(0, got, glen - 8),
       "its trailer: the CRC-64 of what is before it, little-endian");
    rc = statedb_load(&back, dbpath, why, sizeof why);
    ok(rc == 0 && holds(&back, paths, n, 2), "and it loads back, listings too");
    statedb_free(&back);
    statedb_free(&db);
    free(got);
    free(want);
}

/* Version 1: SHA-256 trailer, paths in strcmp order. */
static void test_v1(void)
{
    static const char *const v1[] = {"a", "a.b", "a/b", "b"}; /* strcmp order */
    static const char *const v2[] = {"a", "a/b", "a.b", "b"}; /* path order */
    static const char *const dot[] = {"a.b", "a/b"}, *const slash[] = {"a/b", "a.b"};
    struct statedb db, back;
    unsigned char *buf, *got;
    size_t len, glen, bad = 0, first = 0;
    int rc;

    buf = hand_file(1, 1, v1, 4, &len);
    ok(len == STATEDB_HEADER + 4 * STATEDB_ENTRY_FIXED_V1 + 8 + STATEDB_TRAILER_V1,
       "a version 1 file of %zu bytes written by hand", len);
    spit(dbpath, buf, len);
    rc = statedb_load(&db, dbpath, why, sizeof why);
    ok(rc == 0, "a version 1 file loads (%s)", rc ? why : "");
    ok(rc == 0 && db.version == 1, "db.version 1");
    ok(rc == 0 && holds(&db, v2, 4, 1),
       "its entries in path order (a, a/b, a.b, b), every field, no listings");
    ok(rc == 0 && statedb_get(&db, "a/b") && statedb_get(&db, "a.b") && !statedb_get(&db, "a b"),
       "get finds them");
    rc = statedb_save(&db, dbpath, why, sizeof why);
    got = slurp(dbpath, &glen);
    ok(rc == 0 && glen == STATEDB_HEADER + 4 * STATEDB_ENTRY_FIXED + 8 + STATEDB_TRAILER &&
           get_le(got + 8, 4) == 2,
       "saved: a version 2 file of %zu bytes", glen);
    statedb_free(&db);
    rc = statedb_load(&back, dbpath, why, sizeof why);
    ok(rc == 0 && back.version == 2 && holds(&back, v2, 4, 1), "which loads back as version 2");
    statedb_free(&back);
    free(got);

    for (size_t i = 0; i < len; i++) {
        for (unsigned x = 0x01; x <= 0x80; x <<= 7) {
            buf[i] ^= (unsigned char)x;
            if (load_bytes(buf, len) != -EBADMSG && !bad++)
                first = i;
            buf[i] ^= (unsigned char)x;
        }
    }
    ok(bad == 0, "version 1: each of the %zu bytes flipped: -EBADMSG (%zu not, first at %zu)", len,
       bad, first);
    bad = 0;
    for (size_t n = 0; n < len; n++)
        if (load_bytes(buf, n) != -EBADMSG && !bad++)
            first = n;
    ok(bad == 0, "version 1: cut at each of %zu lengths: -EBADMSG (%zu not, first at %zu)", len,
       bad, first);
    free(buf);

    buf = hand_file(1, 1, v2, 4, &len);
    rc = load_bytes(buf, len);
    ok(rc == -EBADMSG && strstr(why, "entry 2") && strstr(why, "not after"),
       "version 1 in path order, not strcmp's: -EBADMSG (%s)", why);
    free(buf);
    buf = hand_file(2, 1, v1, 4, &len);
    rc = load_bytes(buf, len);
    ok(rc == -EPROTO, "a SHA-256 trailer, version field 2: -EPROTO (%s)", why);
    free(buf);
    buf = hand_file(1, 2, v2, 4, &len);
    rc = load_bytes(buf, len);
    ok(rc == -EPROTO, "a CRC-64 trailer, version field 1: -EPROTO (%s)", why);
    free(buf);
    buf = hand_file(3, 1, v1, 4, &len);
    ok(load_bytes(buf, len) == -EPROTO, "a SHA-256 trailer, version field 3: -EPROTO");
    free(buf);

    /* "a.b" then "a/b": sorted by strcmp, not in path order */
    buf = hand_file(2, 2, dot, 2, &len);
    rc = load_bytes(buf, len);
    ok(rc == -EBADMSG && strstr(why, "not after"), "version 2, a.b then a/b: -EBADMSG (%s)", why);
    free(buf);
    buf = hand_file(2, 2, slash, 2, &len);
    ok(load_bytes(buf, len) == 0, "version 2, a/b then a.b: loads");
    free(buf);
    buf = hand_file(1, 1, slash, 2, &len);
    rc = load_bytes(buf, len);
    ok(rc == -EBADMSG && strstr(why, "not after"), "version 1, a/b then a.b: -EBADMSG (%s)", why);
    free(buf);
    buf = hand_file(1, 1, dot, 2, &len);
    spit(dbpath, buf, len);
    rc = statedb_load(&db, dbpath, why, sizeof why);
    ok(rc == 0 && db.version == 1 && holds(&db, slash, 2, 1),
       "version 1, a.b then a/b: loads as a/b, a.b");
    statedb_free(&db);
    free(buf);

    buf = hand_file(1, 1, NULL, 0, &len);
    spit(dbpath, buf, len);
    rc = statedb_load(&db, dbpath, why, sizeof why);
    ok(rc == 0 && db.version == 1 && db.n == 0 && len == STATEDB_HEADER + STATEDB_TRAILER_V1,
       "an empty version 1 file loads");
    statedb_free(&db);
    free(buf);
}

/* The database as bytes: db saved, then read back raw. */
static unsigned char *small_file(size_t *len)
{
    struct statedb db = {0};
    struct statedb_entry e = entry("abc", 1);

    statedb_put(&db, &e);
    e = entry("abd/e", 2);
    statedb_put(&db, &e);
    e = entry("b", 3);
    statedb_put(&db, &e);
    if (statedb_save(&db, dbpath, why, sizeof why) < 0)
        printf("# save: %s\n", why);
    statedb_free(&db);
    return slurp(dbpath, len);
}

static void test_atomic(void)
{
    struct statedb db = {0}, back;
    struct statedb_entry e = entry("one", 1);
    char tmp[256], sub[192];
    size_t len, len2;
    unsigned char *before, *after;
    struct rlimit old, small;
    int rc;

    statedb_put(&db, &e);
    rc = statedb_save(&db, dbpath, why, sizeof why);
    ok(rc == 0 && files_in_dir() == 1, "saved: only the database in its directory");
    struct stat st;
    ok(stat(dbpath, &st) == 0 && (st.st_mode & 07777) == 0600, "mode 0600");
    e = entry("two", 2);
    statedb_put(&db, &e);
    rc = statedb_save(&db, dbpath, why, sizeof why);
    ok(rc == 0 && files_in_dir() == 1, "saved again over the old one");
    ok(statedb_load(&back, dbpath, why, sizeof why) == 0 && same_db(&db, &back),
       "the new content replaced the old");
    statedb_free(&back);
    before = slurp(dbpath, &len);

    /* failures: the old file intact, no temp file left */
    e = entry("three", 3);
    statedb_put(&db, &e);
    snprintf(tmp, sizeof tmp, "%s/none/user.db", dir);
    rc = statedb_save(&db, tmp, why, sizeof why);
    ok(rc == -ENOENT && strstr(why, tmp), "directory missing: -ENOENT (%s)", why);
    snprintf(sub, sizeof sub, "%s/isdir", dir);
    mkdir(sub, 0700);
    rc = statedb_save(&db, sub, why, sizeof why);
    ok(rc == -EISDIR && files_in_dir() == 2, "path is a directory: -EISDIR, temp removed (%s)",
       why);
    rmdir(sub);

    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dbpath, (long)getpid());
    spit(tmp, (const unsigned char *)"x", 1);
    rc = statedb_save(&db, dbpath, why, sizeof why);
    ok(rc == -EEXIST && access(tmp, F_OK) == 0, "a temp name taken: -EEXIST, not ours to remove");
    unlink(tmp);

    /* a write that fails midway: RLIMIT_FSIZE binds root too */
    for (unsigned i = 0; i < 50; i++) {
        snprintf(tmp, sizeof tmp, "more/%u", i);
        e = entry(tmp, i);
        statedb_put(&db, &e);
    }
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old);
    small = (struct rlimit){200, old.rlim_max}; /* the soft limit only: it can go back up */
    setrlimit(RLIMIT_FSIZE, &small);
    rc = statedb_save(&db, dbpath, why, sizeof why);
    setrlimit(RLIMIT_FSIZE, &old);
    ok(rc == -EFBIG && files_in_dir() == 1, "a failed write: -EFBIG, temp removed (%s)", why);
    after = slurp(dbpath, &len2);
    ok(len == len2 && memcmp(before, after, len) == 0, "the old database intact");
    free(after);

    /* a listing on a file is not written */
    {
        struct statedb one = {0};
        struct statedb_entry f = entry("f", 3); /* seed 3: a file */
        f.listed[1].ino = 7;
        rc = statedb_put(&one, &f) == 0 ? statedb_save(&one, dbpath, why, sizeof why) : -1;
        after = slurp(dbpath, &len2);
        ok(rc == -EINVAL && len == len2 && memcmp(before, after, len) == 0 && files_in_dir() == 1,
           "a listing on a file: -EINVAL, nothing written (%s)", why);
        free(after);
        statedb_free(&one);
    }

    /* a db whose paths were broken by hand is not written (the paths are
     * the arena's: never freed one by one) */
    db.v[0].path = (char *)"zzz";
    rc = statedb_save(&db, dbpath, why, sizeof why);
    after = slurp(dbpath, &len2);
    ok(rc == -EINVAL && len == len2 && memcmp(before, after, len) == 0 && files_in_dir() == 1,
       "unsorted entries: -EINVAL, nothing written");
    free(after);
    /* sorted by strcmp, not in path order */
    db.v[0].path = (char *)"a.b";
    db.v[1].path = (char *)"a/b";
    rc = statedb_save(&db, dbpath, why, sizeof why);
    ok(rc == -EINVAL && files_in_dir() == 1, "a.b before a/b: -EINVAL");
    free(before);
    statedb_free(&db);

    rc = statedb_load(&back, dbpath, why, sizeof why);
    ok(rc == 0 && back.n == 2 && statedb_get(&back, "one") && statedb_get(&back, "two"),
       "after the failed saves, the last one saved loads");
    statedb_free(&back);
    unlink(dbpath);
    rc = statedb_load(&back, dbpath, why, sizeof why);
    ok(rc == -ENOENT && back.n == 0 && strstr(why, dbpath), "missing file: -ENOENT (%s)", why);
    snprintf(sub, sizeof sub, "%s/isdir", dir);
    mkdir(sub, 0700);
    ok(statedb_load(&back, sub, why, sizeof why) == -EISDIR, "a directory: -EISDIR");
    rmdir(sub);
}

static void test_damage(void)
{
    size_t len, bad = 0, first = 0;
    unsigned char *buf = small_file(&len), *copy = malloc(len + 1);
    int rc;

    ok(load_bytes(buf, len) == 0 &&
           len == STATEDB_HEADER + STATEDB_TRAILER + 3 * STATEDB_ENTRY_FIXED + 3 + 5 + 1,
       "a small database of %zu bytes loads", len);
    for (size_t i = 0; i < len; i++) {
        for (unsigned x = 0x01; x <= 0x80; x <<= 7) { /* a low and a high bit */
            memcpy(copy, buf, len);
            copy[i] ^= (unsigned char)x;
            if (load_bytes(copy, len) != -EBADMSG && !bad++)
                first = i;
        }
    }
    ok(bad == 0, "each of the %zu bytes flipped: -EBADMSG (%zu not, first at %zu)", len, bad,
       first);
    load_bytes(buf, len - 1);
    ok(strstr(why, dbpath) && strstr(why, "checksum"), "the message names file and fault: %s", why);
    bad = 0;
    for (size_t n = 0; n < len; n++)
        if (load_bytes(buf, n) != -EBADMSG && !bad++)
            first = n;
    ok(bad == 0, "cut at each of %zu lengths: -EBADMSG (%zu not, first at %zu)", len, bad, first);
    load_bytes(buf, 10);
    ok(strstr(why, "short file") != NULL, "%s", why);
    memcpy(copy, buf, len);
    copy[len] = 0;
    resign(copy, len + 1); /* a trailer moved one byte on: garbage before it */
    ok(load_bytes(copy, len + 1) == -EBADMSG, "a byte more: -EBADMSG (%s)", why);

    /* crafted: valid checksums, a bad header or entry */
#define CRAFT(off, val, want, what)                                                                \
    do {                                                                                           \
        memcpy(copy, buf, len);                                                                    \
        copy[off] = (unsigned char)(val);                                                          \
        resign(copy, len);                                                                         \
        rc = load_bytes(copy, len);                                                                \
        ok(rc == (want), "%s: %d (%s)", what, rc, why);                                            \
    } while (0)
    /* the same with a path of the same length in place of the one at off */
#define CRAFT_PATH(off, str, want, what)                                                           \
    do {                                                                                           \
        memcpy(copy, buf, len);                                                                    \
        memcpy(copy + (off), str, strlen(str));                                                    \
        resign(copy, len);                                                                         \
        rc = load_bytes(copy, len);                                                                \
        ok(rc == (want), "%s: %d (%s)", what, rc, why);                                            \
    } while (0)
    size_t e0 = STATEDB_HEADER, p0 = e0 + STATEDB_ENTRY_FIXED; /* "abc" */
    size_t e1 = p0 + 3, p1 = e1 + STATEDB_ENTRY_FIXED;         /* "abd/e" */
    size_t plen = STATEDB_ENTRY_FIXED - 2;                     /* the path length in an entry */
    CRAFT(8, 3, -EPROTO, "version 3");
    ok(strstr(why, "version 3") && strstr(why, dbpath), "the message says which version");
    CRAFT(8, 1, -EPROTO, "version 1 with a CRC-64 trailer");
    CRAFT(11, 1, -EPROTO, "version 2^24+2");
    CRAFT(12, 1, -EPROTO, "an unknown flag");
    CRAFT(0, 'X', -EBADMSG, "bad magic");
    CRAFT(16, 4, -EBADMSG, "count one more: cannot fit");
    CRAFT(16, 2, -EBADMSG, "count one less: bytes after the last entry");
    CRAFT(16, 0, -EBADMSG, "count zero: bytes after the (no) last entry");
    CRAFT(23, 0x10, -EBADMSG, "count 2^60: does not fit the file, nothing allocated");
    ok(strstr(why, "cannot fit") != NULL, "said so: %s", why);
    CRAFT(e0, 0, -EBADMSG, "local type 0");
    CRAFT(e0 + 1, SYNC_SPECIAL, -EBADMSG, "remote type special");
    CRAFT(e0 + plen, 0, -EBADMSG, "path length 0");
    CRAFT(e0 + plen + 1, 0xff, -EBADMSG, "path length beyond the end");
    CRAFT(e0 + plen, 4, -EBADMSG, "path length one more (the next entry misread)");
    CRAFT(e0 + 90, 0x55, 0, "a byte of a listing (version 1's path length): any value loads");
    CRAFT(e1 + 90, 1, -EBADMSG, "a local listing on a symlink");
    ok(strstr(why, "not a directory") != NULL, "said so: %s", why);
    CRAFT(e1 + 114, 1, -EBADMSG, "a remote listing (its ctime) on a symlink");
    CRAFT(p0, '/', -EBADMSG, "leading '/'");
    CRAFT(p0 + 1, 0, -EBADMSG, "NUL in a path");
    CRAFT(p1 + 3, 'e', 0, "abd/e -> abdee: still valid and sorted (crafting works)");
    CRAFT(p1 + 2, 'c', 0, "abd/e -> abc/e: right after abc");
    CRAFT(p1 + 2, 'b', -EBADMSG, "abd/e -> abb/e: before abc (unsorted)");
    CRAFT(p1 + 4, '.', -EBADMSG, "abd/e -> abd/.: a '.' component");
    /* where the path order and strcmp disagree */
    CRAFT_PATH(p0, "ab-", 0, "abc -> ab-: still before abd/e");
    CRAFT_PATH(p1, "ab/de", -EBADMSG, "abd/e -> ab/de: before abc (unsorted)");
    memcpy(buf + p0, "ab-", 3); /* the base for the next two: "ab-", "abd/e", "b" */
    CRAFT_PATH(p1, "ab/de", -EBADMSG, "ab- then ab/de (strcmp order): unsorted");
    CRAFT_PATH(p1, "ab.de", 0, "ab- then ab.de: sorted");
    memcpy(buf + p0, "a.c", 3);
    CRAFT_PATH(p1, "a/d/e", -EBADMSG, "a.c then a/d/e (strcmp order): unsorted");
    memcpy(buf + p0, "a/c", 3);
    CRAFT_PATH(p1, "a.d/e", 0, "a/c then a.d/e (not strcmp order): sorted");
    CRAFT_PATH(p1, "a/c/e", 0, "a/c then a/c/e: sorted");
    CRAFT_PATH(p1, "a/b/e", -EBADMSG, "a/c then a/b/e: unsorted");
    memcpy(buf + p0, "abc", 3); /* back to the file saved */
    memcpy(copy, buf, len);
    memcpy(copy + p1, "abc", 3); /* "abd/e" is not 3 bytes: "abc/e" != "abc" */
    copy[e1 + plen] = 3;
    memmove(copy + p1 + 3, copy + p1 + 5, len - p1 - 5);
    resign(copy, len - 2);
    ok(load_bytes(copy, len - 2) == -EBADMSG && strstr(why, "not after"), "a duplicate path: %s",
       why);
    memcpy(copy, buf, len);
    memmove(copy + len - STATEDB_TRAILER - 6, copy + len - STATEDB_TRAILER, STATEDB_TRAILER);
    resign(copy, len - 6); /* 3 entries still fit 93 bytes each: the last is cut */
    ok(load_bytes(copy, len - 6) == -EBADMSG && strstr(why, "entry 2 truncated"),
       "the last entry cut short: %s", why);
    memcpy(copy, buf, len);
    memcpy(copy + p1, "a/../", 5);
    resign(copy, len);
    ok(load_bytes(copy, len) == -EBADMSG && strstr(why, "invalid path"), "'..' component: %s", why);
#undef CRAFT
#undef CRAFT_PATH
    free(copy);
    free(buf);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* the checks before a crash show */
    if (!tap_tmpdir(dir, sizeof dir, "statedb"))
        return tap_done();
    snprintf(dbpath, sizeof dbpath, "%s/user.db", dir);
    test_crc64();
    test_path_cmp();
    test_memory();
    test_many();
    test_reserve();
    test_roundtrip();
    test_format();
    test_v1();
    test_atomic();
    test_damage();
    unlink(dbpath);
    rmdir(dir);
    return tap_done();
}
