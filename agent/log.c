#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

static enum log_target cur_target = LOG_TO_STDERR;
static enum log_level cur_level = LOG_LVL_NOTICE;
static int kmsg_fd = -1;

static enum log_target resolve_auto(void)
{
    struct stat st;

    if (isatty(STDERR_FILENO))
        return LOG_TO_STDERR;
    if (stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode))
        return LOG_TO_SYSLOG;
    if (access("/dev/kmsg", W_OK) == 0)
        return LOG_TO_KMSG;
    return LOG_TO_STDERR;
}

void log_close(void)
{
    if (cur_target == LOG_TO_SYSLOG)
        closelog();
    if (kmsg_fd >= 0)
        close(kmsg_fd);
    kmsg_fd = -1;
    cur_target = LOG_TO_STDERR;
}

void log_open(enum log_target target, enum log_level max_level)
{
    log_close();
    if (target == LOG_TO_AUTO)
        target = resolve_auto();
    else if (target == LOG_TO_KMSG && access("/dev/kmsg", W_OK) != 0)
        target = LOG_TO_STDERR;
    /* Both are opened at the first message, not here: most runs of the
     * PAM client log nothing, and an open of /dev/kmsg costs tens of
     * microseconds (bench/unitcost). */
    if (target == LOG_TO_SYSLOG)
        openlog("homeport", LOG_PID, LOG_DAEMON);
    cur_target = target;
    cur_level = max_level;
}

enum log_target log_current_target(void)
{
    return cur_target;
}

enum log_level log_current_level(void)
{
    return cur_level;
}

static const char *level_prefix(enum log_level lvl)
{
    switch (lvl) {
    case LOG_LVL_ERR: return "error: ";
    case LOG_LVL_WARN: return "warning: ";
    case LOG_LVL_DEBUG: return "debug: ";
    default: return "";
    }
}

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
    char buf[1024];
    int saved = errno;

    if (lvl > cur_level)
        return;
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): callers start ap */
    vsnprintf(buf, sizeof buf, fmt, ap);
    /* One record is one line: a newline in a user-supplied name must not let
     * it forge a second record. */
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';

    switch (cur_target) {
    case LOG_TO_SYSLOG: syslog((int)lvl, "%s%s", level_prefix(lvl), buf); break;
    case LOG_TO_KMSG: {
        if (kmsg_fd < 0)
            kmsg_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (kmsg_fd < 0) {
            fprintf(stderr, "homeport: %s%s\n", level_prefix(lvl), buf);
            break;
        }
        /* One write() is one record.  (Not dprintf: glibc's seeks the fd
         * first, which /dev/kmsg refuses with EINVAL.)  A failed write here
         * has nowhere better to go. */
        char rec[1200];
        int n = snprintf(rec, sizeof rec, "<%d>homeport[%d]: %s%s\n", LOG_DAEMON | (int)lvl,
                         (int)getpid(), level_prefix(lvl), buf);
        if (n > 0)
            (void)!write(kmsg_fd, rec, (size_t)n < sizeof rec ? (size_t)n : sizeof rec - 1);
        break;
    }
    default: fprintf(stderr, "homeport: %s%s\n", level_prefix(lvl), buf); break;
    }
    errno = saved;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(lvl, fmt, ap);
    va_end(ap);
}
