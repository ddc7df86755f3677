/* alloccache: see alloccache.h. */
#include "alloccache.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef HP_ALLOC_CACHE

#define MIN_SHIFT 12 /* 4 KiB */
#define MAX_SHIFT 18 /* 256 KiB */
#define NCLASS (MAX_SHIFT - MIN_SHIFT + 1)

void *__real_malloc(size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void __wrap_free(void *p);

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int enabled;
static void *blocks[NCLASS][ALLOC_CACHE_PER_CLASS];
static int nblocks[NCLASS];
static struct alloc_cache_stats stats;

/* The class a request of n bytes is served from: the smallest power of two
 * that holds it. */
static int class_of_request(size_t n)
{
    int shift = MIN_SHIFT;
    while (((size_t)1 << shift) < n)
        shift++;
    return shift - MIN_SHIFT;
}

/* The class a block of usable size u can serve: the largest power of two
 * it holds (a block that came from elsewhere, calloc or realloc, may have
 * any size).  -1: too small or too large to keep. */
static int class_of_block(size_t u)
{
    if (u < ((size_t)1 << MIN_SHIFT) || u >= ((size_t)2 << MAX_SHIFT))
        return -1;
    int shift = MAX_SHIFT;
    while (((size_t)1 << shift) > u)
        shift--;
    return shift - MIN_SHIFT;
}

void *__wrap_malloc(size_t n)
{
    if (!atomic_load_explicit(&enabled, memory_order_relaxed) || n < ((size_t)1 << MIN_SHIFT) ||
        n > ((size_t)1 << MAX_SHIFT))
        return __real_malloc(n);
    int c = class_of_request(n);
    void *p = NULL;
    pthread_mutex_lock(&mu);
    if (nblocks[c] > 0) {
        p = blocks[c][--nblocks[c]];
        stats.held -= malloc_usable_size(p);
        stats.hits++;
    } else {
        stats.misses++;
    }
    pthread_mutex_unlock(&mu);
    return p ? p : __real_malloc((size_t)1 << (c + MIN_SHIFT));
}

void __wrap_free(void *p)
{
    if (!p)
        return;
    if (atomic_load_explicit(&enabled, memory_order_relaxed)) {
        size_t u = malloc_usable_size(p);
        int c = class_of_block(u);
        if (c >= 0) {
            pthread_mutex_lock(&mu);
            if (nblocks[c] < ALLOC_CACHE_PER_CLASS) {
                blocks[c][nblocks[c]++] = p;
                stats.held += u;
                stats.kept++;
                p = NULL;
            } else {
                stats.released++;
            }
            pthread_mutex_unlock(&mu);
        }
    }
    if (p)
        __real_free(p);
}

bool alloc_cache_enable(void)
{
    atomic_store(&enabled, 1);
    return true;
}

#else

bool alloc_cache_enable(void)
{
    return false;
}

#endif

void alloc_cache_get_stats(struct alloc_cache_stats *st)
{
#ifdef HP_ALLOC_CACHE
    pthread_mutex_lock(&mu);
    *st = stats;
    pthread_mutex_unlock(&mu);
#else
    memset(st, 0, sizeof *st);
#endif
}
