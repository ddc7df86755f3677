#include "spawn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"

static const char *const extra_dirs[] = {"/usr/sbin", "/sbin"};

/* Find the tool: a name with a '/' as is, else PATH, then the sbin dirs. */
static int find_tool(const char *name, char *out, size_t len)
{
    const char *path = getenv("PATH");
    char *copy, *save = NULL;

    if (strchr(name, '/')) {
        snprintf(out, len, "%s", name);
        return access(out, X_OK) == 0 ? 0 : -errno;
    }
    copy = strdup(path ? path : "/usr/bin:/bin");
    if (!copy)
        return -ENOMEM;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, len, "%s/%s", dir, name);
        if (access(out, X_OK) == 0) {
            free(copy);
            return 0;
        }
    }
    free(copy);
    for (size_t i = 0; i < sizeof extra_dirs / sizeof extra_dirs[0]; i++) {
        snprintf(out, len, "%s/%s", extra_dirs[i], name);
        if (access(out, X_OK) == 0)
            return 0;
    }
    return -ENOENT;
}

int spawn_wait(const char *const argv[], int quiet)
{
    char exe[4096];
    int rc = find_tool(argv[0], exe, sizeof exe), status;
    pid_t pid;

    if (rc < 0)
        return rc;
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            if (quiet) {
                dup2(null, STDOUT_FILENO);
                dup2(null, STDERR_FILENO);
            }
        }
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

/* Read what the child pid writes on fd into out (len bytes, got so far)
 * until it exits or end (ms, monotonic) passes: then kill it.  -ETIMEDOUT
 * or 0, *status set. */
static int collect(pid_t pid, int fd, int64_t end, char *out, size_t len, size_t *got, int *status)
{
    struct pollfd pf = {fd, POLLIN, 0};

    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);
        int64_t now = clock_ms();
        if (w == pid)
            break;
        if (now >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, status, 0);
            return -ETIMEDOUT;
        }
        if (poll(&pf, 1, (int)(end - now < 100 ? end - now : 100)) > 0) {
            ssize_t r = read(fd, out + *got, len - *got - 1);
            if (r > 0)
                *got += (size_t)r;
            else if (r == 0)
                pf.fd = -1;
        }
    }
    /* what is left in the pipe, without waiting for a daemon's EOF */
    ssize_t r;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    while (*got + 1 < len && (r = read(fd, out + *got, len - *got - 1)) > 0)
        *got += (size_t)r;
    return 0;
}

int spawn_capture(const char *const argv[], const char *input, unsigned timeout_ms, bool stdout_too,
                  char *out, size_t outlen)
{
    char exe[4096];
    int in[2], err[2], status = 0, rc = find_tool(argv[0], exe, sizeof exe);
    size_t got = 0;
    int64_t end = clock_ms() + timeout_ms;
    pid_t pid;

    out[0] = '\0';
    if (rc < 0)
        return rc;
    if (pipe2(in, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(err, O_CLOEXEC) < 0) {
        rc = -errno;
        close(in[0]);
        close(in[1]);
        return rc;
    }
    pid = fork();
    if (pid < 0) {
        rc = -errno;
        close(in[0]);
        close(in[1]);
        close(err[0]);
        close(err[1]);
        return rc;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(in[0], 0);
        dup2(stdout_too ? err[1] : null, 1);
        dup2(err[1], 2);
        spawn_close_fds(NULL, 0);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(err[1]);
    if (input) {
        size_t n = strlen(input);
        signal(SIGPIPE, SIG_IGN);
        if (write(in[1], input, n) != (ssize_t)n || write(in[1], "\n", 1) != 1)
            log_debug("%s did not read its input", argv[0]);
    }
    close(in[1]);
    rc = collect(pid, err[0], end, out, outlen, &got, &status);
    close(err[0]);
    out[got] = '\0';
    while (got > 0 && (out[got - 1] == '\n' || out[got - 1] == '\r'))
        out[--got] = '\0';
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    if (rc < 0)
        return rc;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool kept(int fd, const int *keep, size_t nkeep)
{
    for (size_t i = 0; i < nkeep; i++)
        if (keep[i] == fd)
            return true;
    return false;
}

void spawn_close_fds(const int *keep, size_t nkeep)
{
    unsigned from = 3;
    int fds[1024], n = 0;
    DIR *d;
    struct dirent *de;

#ifdef SYS_close_range
    /* close the ranges between the kept descriptors, in increasing order */
    bool ok = true;
    for (;;) {
        unsigned next = ~0U;
        for (size_t i = 0; i < nkeep; i++)
            if (keep[i] >= (int)from && (unsigned)keep[i] < next)
                next = (unsigned)keep[i];
        if (next > from && syscall(SYS_close_range, from, next == ~0U ? ~0U : next - 1, 0U) < 0) {
            ok = false;
            break;
        }
        if (next == ~0U)
            break;
        from = next + 1;
    }
    if (ok)
        return;
#endif
    /* older kernels: walk /proc/self/fd (collect first, then close) */
    d = opendir("/proc/self/fd");
    if (!d) {
        for (int fd = 3; fd < 1024; fd++)
            if (!kept(fd, keep, nkeep))
                close(fd);
        return;
    }
    while ((de = readdir(d)) && n < 1024) {
        int fd = atoi(de->d_name);
        if (fd >= 3 && !kept(fd, keep, nkeep) && fd != dirfd(d))
            fds[n++] = fd;
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

int spawn_detach(enum log_target target)
{
    int null;

    setsid();
    if (chdir("/") < 0)
        return -errno;
    null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO)
            close(null);
    }
    log_open(target == LOG_TO_STDERR ? LOG_TO_AUTO : target, log_current_level());
    return 0;
}
