/* tap.h: the smallest TAP producer that does the job.  Each check prints
 * "ok N - what" or "not ok N - what" with the failing expression. */
#ifndef HOMEPORT_TAP_H
#define HOMEPORT_TAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                                              \
    do {                                                                                           \
        int ok_ = !!(cond);                                                                        \
        printf("%sok %d - ", ok_ ? "" : "not ", ++tap_n);                                          \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        if (!ok_) {                                                                                \
            tap_failed++;                                                                          \
            printf("#   failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);                         \
        }                                                                                          \
    } while (0)

#define is_str(got, want, ...)                                                                     \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        ok(g_ &&w_ &&strcmp(g_, w_) == 0, __VA_ARGS__);                                            \
        if (!(g_ && w_ && strcmp(g_, w_) == 0))                                                    \
            printf("#   got '%s', want '%s'\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)");           \
    } while (0)

/* A fresh private directory /tmp/homeport-TAG-XXXXXX in dir (at least 64
 * bytes); a failing check when it cannot be made. */
static inline bool tap_tmpdir(char *dir, size_t len, const char *tag)
{
    snprintf(dir, len, "/tmp/homeport-%s-XXXXXX", tag);
    if (mkdtemp(dir))
        return true;
    ok(0, "mkdtemp %s", dir);
    return false;
}

/* A reproducible pseudo-random stream (xorshift32, fixed seed) for tests
 * that need many varied inputs. */
static inline uint32_t tap_rand(void)
{
    static uint32_t x = 2463534242u;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

static inline int tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
