/* fetchahead.h: a read is served only when one kept range holds all of
 * it; after close nothing is served and nothing more is kept (a put is
 * freed, not leaked: the asan build checks); the slots are bounded; reads
 * from several threads while another closes never see freed memory; a
 * read inside an announced range waits for its data, and returns (to ask
 * the server) when the range is given up or the whole is closed. */
#include <pthread.h>
#include <unistd.h>

#include "fetchahead.h"
#include "tap.h"

static uint8_t *bytes(size_t len, uint8_t first)
{
    uint8_t *p = malloc(len);
    for (size_t i = 0; p && i < len; i++)
        p[i] = (uint8_t)(first + i);
    return p;
}

static struct fetchahead shared;

static void *reader(void *arg)
{
    uint8_t buf[512];
    long bad = 0;
    (void)arg;
    for (int i = 0; i < 20000; i++)
        if (fetchahead_get(&shared, buf, sizeof buf, 4096 + (uint64_t)(i % 8) * 512))
            bad += buf[0] != (uint8_t)((i % 8) * 512) || buf[511] != (uint8_t)((i % 8) * 512 + 511);
    return (void *)bad;
}

struct waiter {
    struct fetchahead *fa;
    uint64_t off;
    bool got;
    uint8_t first;
};

static void *wait_read(void *arg)
{
    struct waiter *w = arg;
    uint8_t buf[64];
    w->got = fetchahead_get(w->fa, buf, sizeof buf, w->off);
    w->first = buf[0];
    return NULL;
}

/* A reader inside the announced range [base, +4096) of fa, started now. */
static pthread_t start_waiter(struct waiter *w, struct fetchahead *fa, uint64_t base)
{
    pthread_t t;
    *w = (struct waiter){fa, base + 64, false, 0};
    pthread_create(&t, NULL, wait_read, w);
    usleep(20000); /* it waits (or, if late, finds the data in: the same result) */
    return t;
}

static void announced(void)
{
    struct fetchahead fa;
    struct waiter w;
    pthread_t t;

    fetchahead_init(&fa);
    ok(fetchahead_expect(&fa, 1 << 20, 4096), "a range announced");
    ok(!fetchahead_expect(&fa, 1 << 20, 4096), "  once");
    t = start_waiter(&w, &fa, 1 << 20);
    fetchahead_put(&fa, 1 << 20, bytes(4096, 0), 4096);
    pthread_join(t, NULL);
    ok(w.got && w.first == 64, "a read inside it waited for its data and got it");
    ok(fetchahead_expect(&fa, 2 << 20, 4096), "another announced");
    t = start_waiter(&w, &fa, 2 << 20);
    fetchahead_put(&fa, 2 << 20, NULL, 0);
    pthread_join(t, NULL);
    ok(!w.got, "given up: the reader that waited asks the server");
    ok(fetchahead_expect(&fa, 2 << 20, 4096), "announced again (the slot was freed)");
    t = start_waiter(&w, &fa, 2 << 20);
    fetchahead_close(&fa);
    pthread_join(t, NULL);
    ok(!w.got, "closed (a write): the reader that waited asks the server");
    ok(!fetchahead_expect(&fa, 3 << 20, 4096), "nothing announced after close");
}

int main(void)
{
    struct fetchahead fa;
    uint8_t buf[4096];

    fetchahead_init(&fa);
    ok(fetchahead_put(&fa, 1024, bytes(2048, 0), 2048), "a range is kept");
    ok(fetchahead_get(&fa, buf, 1024, 1024) && buf[0] == 0 && buf[1023] == (uint8_t)1023,
       "a read at its start is served");
    ok(fetchahead_get(&fa, buf, 512, 2560) && buf[0] == (uint8_t)1536, "a read inside it");
    ok(fetchahead_get(&fa, buf, 1024, 2048) && buf[1023] == (uint8_t)2047, "a read to its end");
    ok(!fetchahead_get(&fa, buf, 1024, 2560), "a read past its end is not");
    ok(!fetchahead_get(&fa, buf, 1024, 512), "nor one that starts before it");
    ok(!fetchahead_get(&fa, buf, 16, 8192), "nor one elsewhere");
    ok(fetchahead_hits(&fa) == 3, "3 reads served");
    ok(fetchahead_put(&fa, 8192, bytes(16, 7), 16), "a second range");
    ok(fetchahead_get(&fa, buf, 16, 8192) && buf[0] == 7, "served from it");
    bool all = true;
    for (uint64_t i = 2; i < FETCHAHEAD_SLOTS; i++) /* two are in */
        all = all && fetchahead_put(&fa, 16 * i, bytes(16, 0), 16);
    ok(all, "as many ranges kept as there are slots");
    ok(!fetchahead_put(&fa, 16 * FETCHAHEAD_SLOTS, bytes(16, 0), 16), "one more is not (freed)");
    ok(!fetchahead_put(&fa, 16 * FETCHAHEAD_SLOTS, bytes(16, 0), 0), "nor an empty one");
    fetchahead_close(&fa);
    ok(!fetchahead_get(&fa, buf, 1024, 1024), "after close nothing is served");
    ok(!fetchahead_put(&fa, 1024, bytes(2048, 0), 2048), "and nothing kept (freed)");
    fetchahead_close(&fa);
    ok(fetchahead_hits(&fa) == 4, "a second close changes nothing");

    fetchahead_init(&shared);
    fetchahead_put(&shared, 4096, bytes(4096, 0), 4096);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, reader, NULL);
    fetchahead_close(&shared);
    long wrong = 0;
    for (int i = 0; i < 3; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        wrong += (long)bad;
    }
    ok(wrong == 0, "three readers while it is closed: what they got was right");
    announced();
    return tap_done();
}
