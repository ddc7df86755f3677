/* test_alloccache: the workers' cache of freed 4-256 KiB blocks (static
 * musl build only; elsewhere the whole test is skipped). */
#include <malloc.h>
#include <pthread.h>

#include "alloccache.h"
#include "tap.h"

static void *churn(void *arg)
{
    uint32_t x = (uint32_t)(uintptr_t)arg; /* xorshift32: tap_rand is not thread-safe */

    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        size_t n = 4096 + x % (300 * 1024);
        unsigned char *p = malloc(n);
        if (!p)
            return (void *)1;
        p[0] = p[n - 1] = (unsigned char)i;
        if (malloc_usable_size(p) < n)
            return (void *)2;
        free(p);
    }
    return NULL;
}

int main(void)
{
    struct alloc_cache_stats st;
    void *a, *b, *held[ALLOC_CACHE_PER_CLASS + 2];

    /* Off until enabled: a freed block is not kept. */
    a = malloc(20000);
    free(a);
    alloc_cache_get_stats(&st);
    if (!alloc_cache_enable()) {
        printf("1..0 # SKIP this build has no allocation cache (only the static musl one)\n");
        return 0;
    }
    ok(st.kept == 0 && st.hits == 0, "nothing kept before alloc_cache_enable");

    /* A 16 KiB record buffer, freed and allocated again: the same block,
     * with room for the request. */
    a = malloc(16384 + 29);
    ok(a && malloc_usable_size(a) >= 16384 + 29,
       "a request past 16 KiB gets a block that holds it");
    free(a);
    b = malloc(16384 + 100);
    ok(b == a, "the freed block serves the next request of its class");
    alloc_cache_get_stats(&st);
    ok(st.hits == 1 && st.kept == 1, "one kept, one hit (hits %lu kept %lu)", st.hits, st.kept);
    free(b);

    /* Outside 4 KiB..256 KiB: never kept. */
    alloc_cache_get_stats(&st);
    a = malloc(1000);
    free(a);
    a = malloc(1 << 20);
    free(a);
    struct alloc_cache_stats st2;
    alloc_cache_get_stats(&st2);
    ok(st2.kept == st.kept && st2.held == st.held, "small and 1 MiB blocks are not kept");

    /* A class holds ALLOC_CACHE_PER_CLASS blocks; the rest go back to musl. */
    for (int i = 0; i < ALLOC_CACHE_PER_CLASS + 2; i++)
        held[i] = malloc(100000);
    alloc_cache_get_stats(&st);
    for (int i = 0; i < ALLOC_CACHE_PER_CLASS + 2; i++)
        free(held[i]);
    alloc_cache_get_stats(&st2);
    ok(st2.released - st.released >= 2, "a full class releases the extra blocks (%lu)",
       st2.released - st.released);
    ok(st2.held <= (size_t)ALLOC_CACHE_PER_CLASS * 508 * 1024, "held bytes bounded (%zu)",
       st2.held);

    /* A block from calloc (not through the cache) may be kept and reused. */
    a = calloc(1, 40000);
    free(a);
    b = malloc(32768);
    ok(b && malloc_usable_size(b) >= 32768, "a calloc block serves a smaller class");
    free(b);

    /* Threads: the cache is shared; every block holds its request. */
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(2463534242u + i));
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += r != NULL;
    }
    ok(bad == 0, "4 threads x 20000 mallocs of 4-300 KiB: every block holds its request");
    alloc_cache_get_stats(&st);
    ok(st.held <= (size_t)ALLOC_CACHE_PER_CLASS * 508 * 1024, "held bytes still bounded (%zu)",
       st.held);
    return tap_done();
}
