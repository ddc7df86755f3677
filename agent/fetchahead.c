#include "fetchahead.h"

#include <stdlib.h>
#include <string.h>

void fetchahead_init(struct fetchahead *fa)
{
    memset(fa, 0, sizeof *fa);
    pthread_mutex_init(&fa->mu, NULL);
    pthread_cond_init(&fa->cv, NULL);
}

/* The slot of the range at off, or -1.  Under mu. */
static int find(const struct fetchahead *fa, uint64_t off)
{
    for (size_t i = 0; i < fa->n; i++)
        if (fa->slot[i].off == off)
            return (int)i;
    return -1;
}

bool fetchahead_expect(struct fetchahead *fa, uint64_t off, size_t len)
{
    bool ok = false;

    pthread_mutex_lock(&fa->mu);
    if (!atomic_load(&fa->closed) && fa->n < FETCHAHEAD_SLOTS && len && find(fa, off) < 0) {
        fa->slot[fa->n].off = off;
        fa->slot[fa->n].len = len;
        fa->slot[fa->n].data = NULL;
        fa->n++;
        ok = true;
    }
    pthread_mutex_unlock(&fa->mu);
    return ok;
}

bool fetchahead_put(struct fetchahead *fa, uint64_t off, uint8_t *data, size_t len)
{
    bool kept = false;

    pthread_mutex_lock(&fa->mu);
    int i = find(fa, off);
    if (!atomic_load(&fa->closed) && data && len) {
        if (i < 0 && fa->n < FETCHAHEAD_SLOTS)
            i = (int)fa->n++;
        if (i >= 0 && !fa->slot[i].data) {
            fa->slot[i].off = off;
            fa->slot[i].len = len;
            fa->slot[i].data = data;
            kept = true;
        }
    } else if (i >= 0 && !fa->slot[i].data) { /* given up: forget it */
        fa->slot[i] = fa->slot[--fa->n];
    }
    pthread_cond_broadcast(&fa->cv);
    pthread_mutex_unlock(&fa->mu);
    if (!kept)
        free(data);
    return kept;
}

/* A slot holding [off, off + len) whole, one with its data in first; -1
 * when none does.  Under mu. */
static int holding(const struct fetchahead *fa, uint64_t off, size_t len)
{
    int expected = -1;

    for (size_t i = 0; i < fa->n; i++) {
        uint64_t o = fa->slot[i].off;
        if (off < o || off - o > fa->slot[i].len || len > fa->slot[i].len - (off - o))
            continue;
        if (fa->slot[i].data)
            return (int)i;
        expected = (int)i;
    }
    return expected;
}

bool fetchahead_get(struct fetchahead *fa, void *buf, size_t len, uint64_t off)
{
    bool hit = false;
    int i;

    if (atomic_load(&fa->closed))
        return false;
    pthread_mutex_lock(&fa->mu);
    while ((i = holding(fa, off, len)) >= 0 && !fa->slot[i].data)
        pthread_cond_wait(&fa->cv, &fa->mu); /* announced: it comes, or is given up */
    if (i >= 0) {
        memcpy(buf, fa->slot[i].data + (off - fa->slot[i].off), len);
        fa->hits++;
        hit = true;
    }
    pthread_mutex_unlock(&fa->mu);
    return hit;
}

void fetchahead_close(struct fetchahead *fa)
{
    if (atomic_load(&fa->closed))
        return;
    pthread_mutex_lock(&fa->mu);
    atomic_store(&fa->closed, true);
    for (size_t i = 0; i < fa->n; i++)
        free(fa->slot[i].data);
    fa->n = 0;
    pthread_cond_broadcast(&fa->cv);
    pthread_mutex_unlock(&fa->mu);
}

uint64_t fetchahead_hits(struct fetchahead *fa)
{
    uint64_t hits;

    pthread_mutex_lock(&fa->mu);
    hits = fa->hits;
    pthread_mutex_unlock(&fa->mu);
    return hits;
}
