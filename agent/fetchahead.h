/* fetchahead: a few byte ranges of a disk, fetched before they are asked
 * for and served from memory until the first write to the disk.  It holds
 * the reads of a mount (ext4meta.h) for the seconds the mount takes; it is
 * not a page cache (the loop device above has one).
 *
 * Thread-safe.  Coherence: a writer calls fetchahead_close() before it
 * sends a write, and fetchahead_put() refuses once closed, so a range read
 * before the write can neither be served after it nor be kept after it. */
#ifndef HOMEPORT_FETCHAHEAD_H
#define HOMEPORT_FETCHAHEAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FETCHAHEAD_SLOTS 4

struct fetchahead {
    pthread_mutex_t mu;
    atomic_bool closed; /* read without the lock: the common case after the mount */
    size_t n;
    struct {
        uint64_t off;
        size_t len;
        uint8_t *data;
    } slot[FETCHAHEAD_SLOTS];
    uint64_t hits; /* reads served */
};

void fetchahead_init(struct fetchahead *fa);

/* Keep data (len bytes of the disk at off; malloc'd, taken over in every
 * case).  False when it was not kept: closed, or all slots used. */
bool fetchahead_put(struct fetchahead *fa, uint64_t off, uint8_t *data, size_t len);

/* Copy the len bytes at off into buf when one kept range holds them all. */
bool fetchahead_get(struct fetchahead *fa, void *buf, size_t len, uint64_t off);

/* Drop what is kept and keep nothing more: before a write, when the mount
 * is long done, at the end.  Once closed, a call costs an atomic load. */
void fetchahead_close(struct fetchahead *fa);

/* The number of reads served from memory. */
uint64_t fetchahead_hits(struct fetchahead *fa);

#endif
