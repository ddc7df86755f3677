/* Sync arena: blocks 16-aligned and a fresh one zeroed, 100 000 string
 * copies over many chunks all intact and none overlapping, a block larger
 * than a chunk, arena_grow in place and by copy (the old block intact),
 * impossible sizes, arena_free and reuse, a zeroed struct with no init, and
 * that arena_free gives the memory back. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "sync/arena.h"
#include "tap.h"

#define MIB ((size_t)1 << 20)
#define BEYOND (20 * MIB) /* more than a chunk holds (arena.c: CHUNK_MIN, 16 MiB) */

static bool aligned(const void *p)
{
    return p && (uintptr_t)p % 16 == 0;
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* n bytes that depend on seed and on their place. */
static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *q = p;

    for (size_t i = 0; i < n; i++)
        q[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 8));
}

static bool filled(const void *p, size_t n, unsigned seed)
{
    const unsigned char *q = p;

    for (size_t i = 0; i < n; i++)
        if (q[i] != (unsigned char)(seed * 131 + i * 7 + (i >> 8)))
            return false;
    return true;
}

/* The process's mapped size (VmSize) in bytes, 0 if unknown. */
static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long pages = 0;

    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

static void test_alloc(void)
{
    struct arena a = {0};
    static void *blocks[600];
    static size_t sizes[600];
    bool align = true, zero = true, intact = true;

    for (unsigned i = 0; i < 600; i++) {
        sizes[i] = i < 300 ? i + 1 : tap_rand() % 3000 + 1;
        blocks[i] = arena_alloc(&a, sizes[i]);
        align &= aligned(blocks[i]);
        zero &= blocks[i] && all_zero(blocks[i], sizes[i]);
        if (blocks[i])
            fill(blocks[i], sizes[i], i);
        arena_strndup(&a, "1234567", i % 8); /* 0 to 7 bytes: the next block off alignment */
    }
    ok(align, "600 blocks of 1..3000 bytes between strings of 0..7: each 16-aligned");
    ok(zero, "each reads as zero (a fresh arena)");
    for (unsigned i = 0; i < 600; i++)
        intact &= blocks[i] && filled(blocks[i], sizes[i], i);
    ok(intact, "each one written: all intact afterwards (no overlap)");
    arena_free(&a);
}

struct copy {
    const char *p;
    size_t len, off;
};

static int cmp_copy(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct copy *)a)->p,
              y = (uintptr_t)((const struct copy *)b)->p;

    return (x > y) - (x < y);
}

static void test_strndup(void)
{
    enum { N = 100000 };
    static char src[4096 + 256];
    struct copy *c = calloc(N, sizeof *c);
    struct arena a = {0};
    size_t bad = 0, overlaps = 0, total = 0, windows = 1;
    bool got_all = true;

    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (char)(i * 13 + (i >> 8) + 1); /* NULs too: a copy is len bytes, not a string */
    for (size_t i = 0; i < N; i++) {
        c[i].len = i % 10 == 0 ? tap_rand() % 4097 : tap_rand() % 48;
        if (i == 1)
            c[i].len = 4096;
        c[i].off = tap_rand() % 256;
        c[i].p = arena_strndup(&a, src + c[i].off, c[i].len);
        got_all &= c[i].p != NULL;
        total += c[i].len + 1;
    }
    ok(got_all, "%d copies of 0..4096 bytes, %zu bytes in all", N, total);
    for (size_t i = 0; i < N && got_all; i++)
        bad += memcmp(c[i].p, src + c[i].off, c[i].len) != 0 || c[i].p[c[i].len] != '\0';
    ok(got_all && bad == 0, "each one intact afterwards, its NUL after it (%zu not)", bad);
    qsort(c, N, sizeof *c, cmp_copy);
    for (size_t i = 1; i < N && got_all; i++) {
        overlaps += (uintptr_t)c[i - 1].p + c[i - 1].len + 1 > (uintptr_t)c[i].p;
        windows += (uintptr_t)c[i - 1].p >> 21 != (uintptr_t)c[i].p >> 21;
    }
    ok(got_all && overlaps == 0, "none overlaps the next in memory (%zu do)", overlaps);
    ok(windows >= total / (2 * MIB), "they span %zu 2 MiB windows: the chunks chain", windows);
    arena_free(&a);
    free(c);
}

static void test_big(void)
{
    struct arena a = {0};
    unsigned char *small = arena_alloc(&a, 100), *big, *big2, *after;
    char *s;
    bool ones = true;

    fill(small, 100, 1);
    big = arena_alloc(&a, 5 * MIB);
    ok(aligned(big) && all_zero(big, 5 * MIB), "5 MiB in one block: aligned, zero");
    if (!big)
        return;
    memset(big, 0xa5, 5 * MIB);
    for (size_t i = 0; i < 5 * MIB; i++)
        ones &= big[i] == 0xa5;
    ok(ones && big[0] == 0xa5 && big[5 * MIB - 1] == 0xa5, "written end to end");
    big2 = arena_grow(&a, big, 5 * MIB, 5 * MIB + MIB / 2);
    ok(big2 == big && big2[5 * MIB - 1] == 0xa5, "grown in place to 5.5 MiB (its chunk has room)");
    memset(big2 + 5 * MIB, 0x5a, MIB / 2);
    big2 = arena_grow(&a, big, 5 * MIB + MIB / 2, BEYOND);
    ok(big2 && big2 != big && big2[0] == 0xa5 && big2[5 * MIB - 1] == 0xa5 &&
           big2[5 * MIB] == 0x5a && big2[5 * MIB + MIB / 2 - 1] == 0x5a && big[0] == 0xa5 &&
           big[5 * MIB + MIB / 2 - 1] == 0x5a,
       "grown to 20 MiB: copied, the old block intact");
    if (big2)
        memset(big2, 0x3c, BEYOND);
    after = arena_alloc(&a, 100);
    fill(after, 100, 2);
    ok(after && filled(small, 100, 1) && big[0] == 0xa5 && big2 && big2[BEYOND - 1] == 0x3c,
       "a small block after it: the one before still intact");
    s = malloc(3 * MIB + 1);
    memset(s, 'q', 3 * MIB);
    s[3 * MIB] = '\0';
    {
        char *d = arena_strndup(&a, s, 3 * MIB);
        ok(d && strcmp(d, s) == 0 && filled(after, 100, 2), "a string of 3 MiB copied");
    }
    free(s);
    arena_free(&a);
}

static void test_grow(void)
{
    struct arena a = {0};
    unsigned char *p, *q, *r, *s, *t;
    char *str, *str2;

    p = arena_alloc(&a, 100);
    fill(p, 100, 1);
    q = arena_grow(&a, p, 100, 1000);
    ok(q == p && filled(q, 100, 1), "the latest block grows in place, its bytes kept");
    fill(q, 1000, 2);
    r = arena_alloc(&a, 64);
    fill(r, 64, 3);
    ok(r && (r >= q + 1000 || r + 64 <= q), "the next block comes after the grown one");
    s = arena_grow(&a, q, 1000, 2000);
    ok(s && s != q && aligned(s) && filled(s, 1000, 2),
       "another block after it: copied, 16-aligned, its bytes kept");
    fill(s, 2000, 4);
    ok(filled(q, 1000, 2) && filled(r, 64, 3), "the old block and the one after intact");
    t = arena_grow(&a, s, 2000, 10);
    ok(t == s && filled(t, 10, 4), "shrinking the latest: in place");
    t = arena_grow(&a, NULL, 0, 256);
    ok(aligned(t), "grow(NULL, 0, 256): a new block, 16-aligned");
    if (t)
        fill(t, 256, 5);
    ok(t && arena_grow(&a, t, 256, 512) == t && filled(t, 256, 5),
       "which is the latest: grows in place");
    ok(filled(s, 10, 4) && filled(q, 1000, 2) && filled(r, 64, 3), "the others intact");

    p = arena_alloc(&a, MIB);
    fill(p, MIB, 6);
    q = arena_grow(&a, p, MIB, BEYOND);
    ok(q && q != p && aligned(q) && filled(q, MIB, 6) && filled(p, MIB, 6),
       "the latest, no room left in its chunk: copied, the old block intact");

    str = arena_strndup(&a, "hello", 5);
    str2 = arena_grow(&a, str, 6, 12);
    ok(str2 == str && strcmp(str2, "hello") == 0, "a string just copied grows in place");
    arena_free(&a);

    t = arena_grow(&a, NULL, 0, 100);
    ok(aligned(t) && all_zero(t, 100), "grow(NULL, 0, 100) on an empty arena: a fresh block");
    arena_free(&a);
}

static void test_limits(void)
{
    struct arena a = {0};
    void *p = arena_alloc(&a, 32);

    ok(!arena_alloc(&a, SIZE_MAX) && !arena_alloc(&a, SIZE_MAX - 16) &&
           !arena_alloc(&a, SIZE_MAX / 2 + 1),
       "an impossible size: NULL");
    ok(!arena_strndup(&a, "x", SIZE_MAX), "a copy of SIZE_MAX bytes: NULL");
    ok(p && !arena_grow(&a, p, 32, SIZE_MAX - 64), "an impossible grow: NULL");
    ok(p && arena_grow(&a, p, 32, 64) == p, "the block still the latest: grows in place");
    ok(aligned(arena_alloc(&a, 16)), "the arena still works");
    arena_free(&a);
}

static struct arena zeroed; /* never initialized but by the C runtime */

static void test_free(void)
{
    struct arena a = {0};
    unsigned char *p;
    size_t before, during, after;
    bool got_all = true;

    arena_free(&a);
    ok(!a.head && a.used == 0 && !a.last, "arena_free of an arena never used");
    p = arena_alloc(&zeroed, 48);
    ok(aligned(p) && all_zero(p, 48), "a zeroed struct arena, no init: works");
    if (p)
        fill(p, 48, 1);
    arena_free(&zeroed);
    ok(!zeroed.head && zeroed.used == 0 && !zeroed.last, "arena_free: empty again");
    p = arena_alloc(&zeroed, 48);
    ok(aligned(p) && all_zero(p, 48) && arena_strndup(&zeroed, "again", 5),
       "and used again: a fresh block");
    arena_free(&zeroed);
    arena_free(&zeroed);
    ok(!zeroed.head, "arena_free twice");

    before = vm_size();
    for (unsigned i = 0; i < 64; i++) {
        p = arena_alloc(&a, MIB - 64);
        got_all &= p != NULL;
        if (p)
            memset(p, 1, MIB - 64);
    }
    during = vm_size();
    arena_free(&a);
    after = vm_size();
    ok(got_all && during >= before + 60 * MIB, "64 MiB taken: mapped size %zu -> %zu KiB",
       before >> 10, during >> 10);
    ok(after <= before + 2 * MIB, "arena_free gives it back: %zu KiB", after >> 10);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* the checks before a crash show */
    test_alloc();
    test_strndup();
    test_big();
    test_grow();
    test_limits();
    test_free();
    return tap_done();
}
