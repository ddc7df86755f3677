/* sync/arena: memory handed out by bumping a pointer, freed all at once.
 *
 * A pass keeps tens of thousands of paths and entries (two walks, the
 * state database read and the one written, the decisions) that all live
 * until its end: one malloc each costs more than the system calls that
 * found them, and the two walk threads would contend on the allocator's
 * lock.  The chunks are 2 MiB-aligned mappings of 16 MiB or more
 * (address space: memory comes where it is touched) advised MADV_HUGEPAGE: a
 * pass touches megabytes once, and where a page fault is dear (in a VM, a
 * first touch of a 4 KiB page costs ~14 us here: bench/README.md), one
 * fault a 2 MiB page instead of 512 is most of the difference.  Without
 * transparent huge pages it is ordinary memory.
 *
 * An arena is owned by one thread at a time.  A zeroed struct arena is an
 * empty arena; nothing is allocated before the first call.
 */
#ifndef HOMEPORT_SYNC_ARENA_H
#define HOMEPORT_SYNC_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *head; /* the chunk being filled; older ones behind it */
    size_t used;              /* bytes used in head */
    void *last;               /* the latest block (arena_grow extends it in place) */
};

/* size bytes (0 is taken as 1: every block is distinct), 16-aligned,
 * uninitialized (a new chunk reads as zero), valid until arena_free.  NULL
 * when out of memory. */
void *arena_alloc(struct arena *a, size_t size);

/* A block of size bytes holding the first old_size bytes of p (a block of
 * this arena, or NULL): p itself, extended, when it is the latest block and
 * its chunk has room; else a copy (p stays valid).  NULL when out of memory
 * (p unchanged). */
void *arena_grow(struct arena *a, void *p, size_t old_size, size_t size);

/* A NUL-terminated copy of the len bytes at s.  NULL when out of memory. */
char *arena_strndup(struct arena *a, const char *s, size_t len);

/* Everything the arena handed out, at once; a is empty again. */
void arena_free(struct arena *a);

#endif
