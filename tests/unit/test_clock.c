/* clock.h's jitter: every wait between half and one and a half times the
 * backoff, spread over that span (not in step), different from process to
 * process; clock_backoff sleeps within it and doubles the backoff
 * (clock_doubled: up to a bound);
 * clock_us counts forward. */
#include "clock.h"
#include "tap.h"

int main(void)
{
    unsigned seed = 42, other = 43, lo = ~0u, hi = 0, same = 0;
    int64_t t0 = clock_us();

    for (int i = 0; i < 10000; i++) {
        unsigned ms = clock_jitter_ms(800, &seed);
        lo = ms < lo ? ms : lo;
        hi = ms > hi ? ms : hi;
    }
    ok(lo >= 400 && hi <= 1200, "10000 waits of about 800 ms: from %u to %u ms", lo, hi);
    ok(lo < 450 && hi > 1150, "  spread over the whole span");
    seed = 42;
    for (int i = 0; i < 100; i++)
        same += clock_jitter_ms(100, &seed) == clock_jitter_ms(100, &other);
    ok(same < 20, "two seeds: %u of 100 waits alike", same);
    ok(clock_jitter_ms(0, &seed) == 0, "no backoff, no wait");
    unsigned s1 = clock_seed();
    clock_sleep_ms(1);
    ok(clock_seed() != s1, "seeds taken 1 ms apart differ");
    unsigned backoff = 100;
    int64_t b0 = clock_us();
    clock_backoff(&backoff, &seed);
    int64_t slept = clock_us() - b0;
    ok(slept >= 50000 && slept < 1000000, "clock_backoff of 100 ms slept %lld us",
       (long long)slept);
    ok(backoff == 200, "  and doubled the next one");
    ok(clock_doubled(1, 20) == 2 && clock_doubled(16, 20) == 20 && clock_doubled(20, 20) == 20,
       "clock_doubled doubles up to its bound");
    ok(clock_doubled(30000, 60000) == 60000 && clock_doubled(~0u, 60000) == 60000,
       "  and never past it, nor round");
    clock_sleep_ms(2);
    ok(clock_us() - t0 >= 2000, "clock_us moved on by the 2 ms slept");
    return tap_done();
}
