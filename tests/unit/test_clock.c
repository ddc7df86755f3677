/* clock.h's jitter: every wait between half and one and a half times the
 * backoff, spread over that span (not in step), different from process to
 * process; clock_us counts forward. */
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
    ok(clock_seed() != 0 || clock_seed() != 0, "a seed");
    clock_sleep_ms(2);
    ok(clock_us() - t0 >= 2000, "clock_us moved on by the 2 ms slept");
    return tap_done();
}
