/* clock: the monotonic clock in milliseconds, and a sleep that finishes
 * (signals do not cut it short).  Timeouts and deadlines use these. */
#ifndef HOMEPORT_CLOCK_H
#define HOMEPORT_CLOCK_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static inline int64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Microseconds, for the phase times the logs give. */
static inline int64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline void clock_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* A wait of about ms, at random from half of it to one and a half times
 * it: many clients lose their server at once (a restart) and must not all
 * come back in step.  seed: the caller's, for rand_r. */
static inline unsigned clock_jitter_ms(unsigned ms, unsigned *seed)
{
    return ms / 2 + (unsigned)rand_r(seed) % (ms + 1);
}

/* The next wait of a growing one: ms doubled, up to max. */
static inline unsigned clock_doubled(unsigned ms, unsigned max)
{
    return ms > max / 2 ? max : ms * 2;
}

/* A reconnect's wait: clock_jitter_ms(*backoff_ms), asleep (a signal cuts
 * it short, so a stop is not held up), then the next backoff doubled, up
 * to 2 s. */
static inline void clock_backoff(unsigned *backoff_ms, unsigned *seed)
{
    unsigned ms = clock_jitter_ms(*backoff_ms, seed);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
    *backoff_ms = clock_doubled(*backoff_ms, 2000);
}

/* A seed for clock_jitter_ms that differs between processes. */
static inline unsigned clock_seed(void)
{
    return (unsigned)getpid() ^ (unsigned)clock_us();
}

#endif
