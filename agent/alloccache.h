/* alloccache: freed blocks of 4 to 256 KiB kept for reuse, in the processes
 * that move a home's data (the FUSE worker, the kernel path's TLS relay).
 *
 * Why: musl's allocator gives a freed block of that size back to the kernel
 * at once (madvise or munmap), and GnuTLS allocates and frees a buffer for
 * every 16 KiB record it reads or writes.  A worker reading a home over TLS
 * made 4 madvise calls a record, then faulted the pages in again: with the
 * TLB flushes, a quarter of its CPU (perf), more than the AES-GCM itself.
 * glibc keeps such blocks in its arenas; this does the same, bounded.
 *
 * How: the static (musl) build links with -Wl,--wrap=malloc,--wrap=free, so
 * every malloc and free in the binary, homeport's and its libraries', come
 * here first.  Until alloc_cache_enable() they go straight to musl, so the
 * agent and the commands never keep a block.  Other builds (glibc, the
 * sanitizers) have no wrapping: there alloc_cache_enable() returns false. */
#ifndef HOMEPORT_ALLOCCACHE_H
#define HOMEPORT_ALLOCCACHE_H

#include <stdbool.h>
#include <stddef.h>

/* Blocks kept per size class (powers of two from 4 to 256 KiB): at most
 * ALLOC_CACHE_PER_CLASS * 508 KiB held in all, about 2 MiB. */
#define ALLOC_CACHE_PER_CLASS 4

/* From now on, this process keeps freed blocks for reuse.  Returns false
 * where the build has no cache (then nothing changes). */
bool alloc_cache_enable(void);

struct alloc_cache_stats {
    unsigned long hits;     /* malloc served from the cache */
    unsigned long misses;   /* malloc of a cached size that went to musl */
    unsigned long kept;     /* free that kept its block */
    unsigned long released; /* free of a cached size that went to musl (class full) */
    size_t held;            /* bytes held now */
};
void alloc_cache_get_stats(struct alloc_cache_stats *st);

#endif
