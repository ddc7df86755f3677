#include "fetchahead.h"

#include <stdlib.h>
#include <string.h>

void fetchahead_init(struct fetchahead *fa)
{
    memset(fa, 0, sizeof *fa);
    pthread_mutex_init(&fa->mu, NULL);
}

bool fetchahead_put(struct fetchahead *fa, uint64_t off, uint8_t *data, size_t len)
{
    bool kept = false;

    pthread_mutex_lock(&fa->mu);
    if (!atomic_load(&fa->closed) && fa->n < FETCHAHEAD_SLOTS && len) {
        fa->slot[fa->n].off = off;
        fa->slot[fa->n].len = len;
        fa->slot[fa->n].data = data;
        fa->n++;
        kept = true;
    }
    pthread_mutex_unlock(&fa->mu);
    if (!kept)
        free(data);
    return kept;
}

bool fetchahead_get(struct fetchahead *fa, void *buf, size_t len, uint64_t off)
{
    bool hit = false;

    if (atomic_load(&fa->closed))
        return false;
    pthread_mutex_lock(&fa->mu);
    for (size_t i = 0; i < fa->n && !hit; i++) {
        uint64_t o = fa->slot[i].off;
        if (off >= o && off - o <= fa->slot[i].len && len <= fa->slot[i].len - (off - o)) {
            memcpy(buf, fa->slot[i].data + (off - o), len);
            fa->hits++;
            hit = true;
        }
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
