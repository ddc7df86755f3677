/* sync/arena: see arena.h. */
#include "arena.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE ((size_t)2 << 20)
/* A chunk's least size: address space only, a page is materialized where
 * it is first touched, so one chunk serves several arrays and strings
 * without rounding each up to a huge page. */
#define CHUNK_MIN ((size_t)16 << 20)
#define ALIGN 16

/* Under AddressSanitizer every block is followed by a poisoned red zone,
 * so that a read or write past a block (a parser running off a file it
 * loaded here) is reported as it would be past a malloc'ed one. */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_ASAN 1
#endif
#endif
#ifdef ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define RED ALIGN
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define RED 0
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct arena_chunk {
    struct arena_chunk *prev;
    size_t size; /* of the mapping, this header included */
    size_t used; /* of data, once it is not the head any more (the head's: arena.used) */
    size_t pad;
    char data[];
};
_Static_assert(sizeof(struct arena_chunk) % ALIGN == 0, "data is ALIGN-aligned");

#define ROOM(c) ((c)->size - sizeof(struct arena_chunk))

/* A mapping of at least size bytes, HUGE-aligned and a multiple of HUGE. */
static struct arena_chunk *chunk_new(size_t size)
{
    size_t len = ((size < CHUNK_MIN ? CHUNK_MIN : size) + HUGE - 1) & ~(HUGE - 1), map;
    char *p, *start;
    struct arena_chunk *c;

    if (len < size || (map = len + HUGE) < len)
        return NULL;
    p = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    start = (char *)(((uintptr_t)p + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    if (start > p)
        munmap(p, (size_t)(start - p));
    if (start + len < p + map)
        munmap(start + len, (size_t)(p + map - (start + len)));
    madvise(start, len, MADV_HUGEPAGE); /* advice: ignored without THP */
    c = (struct arena_chunk *)(void *)start;
    c->size = len;
    return c;
}

/* size bytes at an offset that is a multiple of align (1 or ALIGN). */
/* The red zone after the size bytes at p (none without ASan). */
#ifdef ARENA_ASAN
static void red_zone(struct arena *a, char *p, size_t size)
{
    size_t room = ROOM(a->head) - (size_t)(p - a->head->data) - size;

    UNPOISON(p, size);
    POISON(p + size, room < RED ? room : RED);
}
#else
#define red_zone(a, p, size) ((void)(a), (void)(p), (void)(size))
#endif

static void *bump(struct arena *a, size_t size, size_t align)
{
    size_t at = a->head ? (a->used + RED + align - 1) & ~(align - 1) : 0;
    void *p;

    if (!a->head || at > ROOM(a->head) || ROOM(a->head) - at < size) {
        struct arena_chunk *c;
        if (size > SIZE_MAX - sizeof *c - HUGE || !(c = chunk_new(size + sizeof *c)))
            return NULL;
        if (a->head)
            a->head->used = a->used;
        c->prev = a->head;
        a->head = c;
        at = 0;
    }
    p = a->head->data + at;
    a->used = at + size;
    a->last = p;
    red_zone(a, p, size);
    return p;
}

void *arena_alloc(struct arena *a, size_t size)
{
    return bump(a, size ? size : 1, ALIGN); /* 0: still a block of its own */
}

void *arena_grow(struct arena *a, void *p, size_t old_size, size_t size)
{
    void *q;

    if (p && p == a->last) {
        size_t at = (size_t)((char *)p - a->head->data);
        if (ROOM(a->head) - at >= size) {
            if (size < a->used - at)
                POISON((char *)p + size, a->used - at - size);
            a->used = at + size;
            red_zone(a, p, size);
            return p;
        }
    }
    if (!(q = arena_alloc(a, size)))
        return NULL;
    if (p)
        memcpy(q, p, old_size < size ? old_size : size);
    return q;
}

char *arena_strndup(struct arena *a, const char *s, size_t len)
{
    char *p = len < SIZE_MAX ? bump(a, len + 1, 1) : NULL;

    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

void arena_free(struct arena *a)
{
#ifdef ARENA_ASAN
    if (a->head)
        a->head->used = a->used;
#endif
    while (a->head) {
        struct arena_chunk *prev = a->head->prev;
#ifdef ARENA_ASAN
        /* a later mapping at this address starts clean */
        size_t used = a->head->used, room = ROOM(a->head);
        UNPOISON(a->head->data, used + RED < room ? used + RED : room);
#endif
        munmap(a->head, a->head->size);
        a->head = prev;
    }
    a->used = 0;
    a->last = NULL;
}
