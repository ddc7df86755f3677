/* Sync state database: the in-memory set, a round trip of odd names, the
 * atomic save and its failures, and every kind of damage to a file: each
 * byte flipped, each length cut, crafted entries (re-signed here so only
 * the entry is wrong), an unknown version, a huge count. */
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

#include "sync/statedb.h"
#include "tap.h"

static char dir[64], dbpath[128], why[8192];

/* An entry for path whose every field depends on seed. */
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
    return e;
}

static bool same_entry(const struct statedb_entry *a, const struct statedb_entry *b)
{
    return strcmp(a->path, b->path) == 0 && memcmp(&a->local, &b->local, sizeof a->local) == 0 &&
           memcmp(&a->remote, &b->remote, sizeof a->remote) == 0 &&
           memcmp(a->digest, b->digest, STATEDB_DIGEST) == 0;
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

/* Rewrite the trailer so that only what was patched is wrong. */
static void resign(unsigned char *buf, size_t len)
{
    mbedtls_sha256_ret(buf, len - STATEDB_TRAILER, buf + len - STATEDB_TRAILER, 0);
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
    else if (db.n || db.v)
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
    ok(strcmp(db.v[0].path, "a") == 0 && strcmp(db.v[1].path, "a.b") == 0 &&
           strcmp(db.v[2].path, "a/b") == 0 && strcmp(db.v[3].path, "b") == 0 &&
           strcmp(db.v[4].path, "c") == 0,
       "kept in byte order ('.' before '/')");
    ok(statedb_get(&db, "a/b") && statedb_get(&db, "a/b")->local.size == 4 * 1000003ull,
       "get finds a/b");
    ok(!statedb_get(&db, "a/c") && !statedb_get(&db, "") && !statedb_get(&db, "d"),
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
    ok(db.n == 0 && !db.v, "free empties");
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
    };
    static char big[STATEDB_PATH_MAX + 1];
    struct statedb db = {0}, back;
    struct statedb_entry e;
    char name[64];
    int rc = 0;

    for (unsigned i = 0; i < 3000; i++) {
        snprintf(name, sizeof name, "dir%u/file%u", i % 37, i * 7919 % 3000);
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
    ok(rc == 0 && statedb_get(&back, big) && statedb_get(&back, "new\nline") &&
           statedb_get(&back, "bad\xff\xfe"),
       "the 4096-byte path, a newline, invalid UTF-8");
    statedb_free(&back);
    statedb_free(&db);

    rc = statedb_save(&db, dbpath, why, sizeof why);
    ok(rc == 0 && statedb_load(&back, dbpath, why, sizeof why) == 0 && back.n == 0,
       "an empty database round-trips");
    statedb_free(&back);
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

    /* a db whose paths were broken by hand is not written */
    free(db.v[0].path);
    db.v[0].path = strdup("zzz");
    rc = statedb_save(&db, dbpath, why, sizeof why);
    after = slurp(dbpath, &len2);
    ok(rc == -EINVAL && len == len2 && memcmp(before, after, len) == 0 && files_in_dir() == 1,
       "unsorted entries: -EINVAL, nothing written");
    free(after);
    free(before);
    statedb_free(&db);

    rc = statedb_load(&back, dbpath, why, sizeof why);
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
    size_t e0 = STATEDB_HEADER, p0 = e0 + STATEDB_ENTRY_FIXED; /* "abc" */
    size_t e1 = p0 + 3, p1 = e1 + STATEDB_ENTRY_FIXED;         /* "abd/e" */
    CRAFT(8, 2, -EPROTO, "version 2");
    ok(strstr(why, "version 2") && strstr(why, dbpath), "the message says which version");
    CRAFT(11, 1, -EPROTO, "version 2^24+1");
    CRAFT(12, 1, -EPROTO, "an unknown flag");
    CRAFT(0, 'X', -EBADMSG, "bad magic");
    CRAFT(16, 4, -EBADMSG, "count one more: cannot fit");
    CRAFT(16, 2, -EBADMSG, "count one less: bytes after the last entry");
    CRAFT(16, 0, -EBADMSG, "count zero: bytes after the (no) last entry");
    CRAFT(23, 0x10, -EBADMSG, "count 2^60: does not fit the file, nothing allocated");
    ok(strstr(why, "cannot fit") != NULL, "said so: %s", why);
    CRAFT(e0, 0, -EBADMSG, "local type 0");
    CRAFT(e0 + 1, SYNC_SPECIAL, -EBADMSG, "remote type special");
    CRAFT(e0 + 90, 0, -EBADMSG, "path length 0");
    CRAFT(e0 + 91, 0xff, -EBADMSG, "path length beyond the end");
    CRAFT(e0 + 90, 4, -EBADMSG, "path length one more (the next entry misread)");
    CRAFT(p0, '/', -EBADMSG, "leading '/'");
    CRAFT(p0 + 1, 0, -EBADMSG, "NUL in a path");
    CRAFT(p1 + 3, 'e', 0, "abd/e -> abdee: still valid and sorted (crafting works)");
    CRAFT(p1 + 2, 'c', 0, "abd/e -> abc/e: still after abc");
    CRAFT(p1 + 2, 'b', -EBADMSG, "abd/e -> abb/e: before abc (unsorted)");
    CRAFT(p1 + 4, '.', -EBADMSG, "abd/e -> abd/.: a '.' component");
    memcpy(copy, buf, len);
    memcpy(copy + p1, "abc", 3); /* "abd/e" is not 3 bytes: "abc/e" != "abc" */
    copy[e1 + 90] = 3;
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
    free(copy);
    free(buf);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* the checks before a crash show */
    if (!tap_tmpdir(dir, sizeof dir, "statedb"))
        return tap_done();
    snprintf(dbpath, sizeof dbpath, "%s/user.db", dir);
    test_memory();
    test_roundtrip();
    test_atomic();
    test_damage();
    unlink(dbpath);
    rmdir(dir);
    return tap_done();
}
