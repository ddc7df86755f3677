/* tap.h: the smallest TAP producer that does the job.  Each check prints
 * "ok N - what" or "not ok N - what" with the failing expression. */
#ifndef HOMEPORT_TAP_H
#define HOMEPORT_TAP_H

#include <stdio.h>
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

static inline int tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
