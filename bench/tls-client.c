/* bench/tls-client.c: what reading an export over NBD costs the client
 * with homeport's static libnbd and GnuTLS, nothing else in the way (no
 * FUSE, no loop device): sequential 1 MiB nbd_pread, as the FUSE worker
 * makes them, with the worker's allocation cache (agent/alloccache.h).
 * Built and run by bench/tls-client.
 *
 *   tls-client HOST PORT MIB [PSK-FILE]
 *
 * With PSK-FILE: TLS with that key file, identity "bench".  Prints one
 * line: MB/s and the CPU (user + system) it used, in ms per GiB. */
#include <libnbd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "alloccache.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
    const size_t chunk = 1 << 20;
    struct nbd_handle *h;
    char *buf;
    long mib;
    int64_t size;

    if (argc < 4 || argc > 5 || (mib = atol(argv[3])) <= 0) {
        fprintf(stderr, "usage: %s HOST PORT MIB [PSK-FILE]\n", argv[0]);
        return 2;
    }
    alloc_cache_enable();
    h = nbd_create();
    buf = malloc(chunk);
    if (!h || !buf)
        return 1;
    /* as homeport's handles: simple replies, no zeroing before a read */
    if (nbd_set_request_structured_replies(h, false) < 0 ||
        nbd_set_pread_initialize(h, false) < 0 ||
        (argc == 5 &&
         (nbd_set_tls(h, LIBNBD_TLS_REQUIRE) < 0 || nbd_set_tls_psk_file(h, argv[4]) < 0 ||
          nbd_set_tls_username(h, "bench") < 0)) ||
        nbd_connect_tcp(h, argv[1], argv[2]) < 0 || (size = nbd_get_size(h)) < (int64_t)chunk) {
        fprintf(stderr, "tls-client: %s\n", nbd_get_error());
        return 1;
    }
    double t0 = now_s(), c0 = cpu_s();
    for (long i = 0; i < mib; i++) {
        int64_t off = (int64_t)(((uint64_t)i * chunk) % ((uint64_t)size / chunk * chunk));
        if (nbd_pread(h, buf, chunk, (uint64_t)off, 0) < 0) {
            fprintf(stderr, "tls-client: %s\n", nbd_get_error());
            return 1;
        }
    }
    double t = now_s() - t0, c = cpu_s() - c0;
    printf("%.0f MB/s %.0f cpu-ms/GiB\n", (double)mib * (double)chunk / t / 1e6,
           c * 1000 * 1024 / (double)mib);
    nbd_shutdown(h, 0);
    nbd_close(h);
    free(buf);
    return 0;
}
