/* bench/unitcost: what the small steps of a login cost on this machine
 * (bench/unitcost builds and runs it; bench/login-faults too).  Static
 * musl, as homeport is.  Medians of ROUNDS rounds:
 *   cow       a write to a page shared with a parent after fork (copied)
 *   new       a write to an anonymous page never touched (zero-filled)
 *   populate  the same pages made present by one MADV_POPULATE_WRITE
 *   fork      fork, the child's _exit and the parent's waitpid, for a
 *             process of 1 MiB of written memory
 *   cpuid     one cpuid instruction (a trap to the hypervisor in a VM)
 *   kmsg      an open and close of /dev/kmsg for writing
 *   mountinfo a read of the whole of /proc/self/mountinfo
 *   status    a read of /proc/PID/status for every process (the scan for
 *             a user's processes at logout, before homeport asks first)
 *   probe     a child that takes an unused uid, lowers its RLIMIT_NPROC
 *             to 2 and forks (how homeport's logout asks whether the user
 *             has any process: the fork fails when another task has uid;
 *             homeport's child also drops its capabilities, one syscall
 *             more, left out here: <linux/capability.h> is not among the
 *             headers this one-file build has)
 * With "--exit" it exits at once: the shell script times its exec. */
#define _GNU_SOURCE /* setresuid */
#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGES 256
#define SPAN ((size_t)PAGES * 4096)
#define ROUNDS 9
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return v[n / 2];
}

static char *fresh(void)
{
    char *p = mmap(NULL, SPAN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("faultcost: mmap");
        exit(1);
    }
    return p;
}

static void touch(volatile char *p)
{
    for (size_t off = 0; off < SPAN; off += 4096)
        p[off] = 1;
}

/* One round in a child: the us a page of each kind, on the pipe. */
static void child_round(char *shared, int fd)
{
    double r[3], t0 = now_us();
    char *p;

    touch(shared); /* shared with the parent: copy-on-write */
    r[0] = (now_us() - t0) / PAGES;
    p = fresh();
    t0 = now_us();
    touch(p);
    r[1] = (now_us() - t0) / PAGES;
    p = fresh();
    t0 = now_us();
    if (madvise(p, SPAN, MADV_POPULATE_WRITE) < 0)
        r[2] = -1;
    else
        r[2] = (now_us() - t0) / PAGES;
    if (write(fd, r, sizeof r) != (ssize_t)sizeof r)
        _exit(1);
    _exit(0);
}

/* The us one call of f takes, as the median of ROUNDS rounds of n calls. */
static double per_call(void (*f)(void), int n)
{
    double v[ROUNDS];

    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_us();
        for (int i = 0; i < n; i++)
            f();
        v[r] = (now_us() - t0) / n;
    }
    return median(v, ROUNDS);
}

static void one_cpuid(void)
{
    unsigned a, b, c, d;
    __cpuid(0, a, b, c, d);
    __asm__ volatile("" : : "r"(a), "r"(b), "r"(c), "r"(d));
}

static void one_kmsg(void)
{
    int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
    if (fd >= 0)
        close(fd);
}

static void one_mountinfo(void)
{
    static char buf[1 << 16];
    int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    while (read(fd, buf, sizeof buf) > 0)
        ;
    close(fd);
}

static int nprocs;

static void one_status_scan(void)
{
    static char buf[4096];
    DIR *d = opendir("/proc");
    struct dirent *de;

    nprocs = 0;
    while (d && (de = readdir(d))) {
        char path[300];
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/status", de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        nprocs += read(fd, buf, sizeof buf) > 0;
        close(fd);
    }
    if (d)
        closedir(d);
}

static void one_probe(void)
{
    pid_t pid = fork();

    if (pid == 0) {
        struct rlimit two = {2, 2};
        if (setresuid(64123, 64123, 64123) < 0 || setrlimit(RLIMIT_NPROC, &two) < 0)
            _exit(2);
        pid_t c = vfork();
        if (c == 0)
            _exit(0);
        if (c < 0)
            _exit(errno == EAGAIN ? 1 : 2);
        waitpid(c, NULL, 0);
        _exit(0);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

int main(int argc, char **argv)
{
    double cow[ROUNDS], fresh_us[ROUNDS], pop[ROUNDS], forks[ROUNDS];

    if (argc > 1 && !strcmp(argv[1], "--exit"))
        return 0;
    char *shared = fresh();
    int fd[2];

    touch(shared);
    if (pipe(fd) < 0)
        return 1;
    for (int i = 0; i < ROUNDS; i++) {
        double r[3], t0;
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0)
            child_round(shared, fd[1]);
        if (read(fd[0], r, sizeof r) != (ssize_t)sizeof r || waitpid(pid, NULL, 0) != pid)
            return 1;
        cow[i] = r[0], fresh_us[i] = r[1], pop[i] = r[2];
        t0 = now_us();
        pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid < 0 || waitpid(pid, NULL, 0) != pid)
            return 1;
        forks[i] = now_us() - t0;
    }
    printf("page faults, median of %d rounds of %d pages: copy-on-write %.2f us a page, "
           "new (zero-filled) %.2f us, MADV_POPULATE_WRITE %.2f us a page\n",
           ROUNDS, PAGES, median(cow, ROUNDS), median(fresh_us, ROUNDS), median(pop, ROUNDS));
    printf("fork+exit+wait of a 1 MiB process %.0f us\n", median(forks, ROUNDS));
    printf("cpuid %.2f us, open+close of /dev/kmsg %.1f us, a read of /proc/self/mountinfo "
           "(%s lines) %.1f us\n",
           per_call(one_cpuid, 1000), per_call(one_kmsg, 1000), argc > 1 ? argv[1] : "?",
           per_call(one_mountinfo, 1000));
    double scan = per_call(one_status_scan, 20);
    printf("a read of every /proc/PID/status (%d processes) %.0f us, ", nprocs, scan);
    printf("a uid probe (fork, setresuid, RLIMIT_NPROC 2, vfork, wait) %.0f us\n",
           per_call(one_probe, 100));
    return 0;
}
