/* fetchahead: a few byte ranges of a disk, fetched before they are asked
 * for and served from memory until the first write to the disk.  It holds
 * the reads of a mount (ext4meta.h) for the seconds the mount takes; it is
 * not a page cache (the loop device above has one).
 *
 * A range can be announced before its data is in (fetchahead_expect): a
 * read inside it then waits for the data rather than asking the server a
 * second time, so the fetcher runs alongside the mount, not before it.
 *
 * Thread-safe.  Coherence: a writer calls fetchahead_close() before it
 * sends a write, and fetchahead_put() refuses once closed, so a range read
 * before the write can neither be served after it nor be kept after it;
 * close also wakes the readers that wait, which then ask the server. */
#ifndef HOMEPORT_FETCHAHEAD_H
#define HOMEPORT_FETCHAHEAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FETCHAHEAD_SLOTS 8

struct fetchahead {
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* a range came in or was given up */
    atomic_bool closed; /* read without the lock: the common case after the mount */
    size_t n;
    struct {
        uint64_t off;
        size_t len;
        uint8_t *data; /* NULL: expected, not in yet */
    } slot[FETCHAHEAD_SLOTS];
    uint64_t hits; /* reads served */
};

void fetchahead_init(struct fetchahead *fa);

/* Announce that len bytes at off are being fetched.  False when closed or
 * all slots are used (then nothing waits for it). */
bool fetchahead_expect(struct fetchahead *fa, uint64_t off, size_t len);

/* The data of the range at off (len bytes, malloc'd, taken over in every
 * case), announced or not; data NULL: the fetch failed, the range is given
 * up.  False when it was not kept: closed, or all slots used. */
bool fetchahead_put(struct fetchahead *fa, uint64_t off, uint8_t *data, size_t len);

/* Copy the len bytes at off into buf when one range holds them all,
 * waiting for it when it is announced but not in yet.  False: ask the
 * server. */
bool fetchahead_get(struct fetchahead *fa, void *buf, size_t len, uint64_t off);

/* Drop what is kept, wake the readers that wait, keep nothing more:
 * before a write, when the mount is long done, at the end.  Once closed, a
 * call costs an atomic load. */
void fetchahead_close(struct fetchahead *fa);

/* The number of reads served from memory. */
uint64_t fetchahead_hits(struct fetchahead *fa);

#endif
