/* log: one place where the agent's messages go.
 *
 * Targets: stderr, syslog, or /dev/kmsg (inside an initramfs there is no
 * syslog daemon, but the kernel ring buffer is always there and reaches the
 * console).  "auto" picks stderr when it is a terminal, else syslog when
 * /dev/log exists, else /dev/kmsg, else stderr.
 */
#ifndef HOMEPORT_LOG_H
#define HOMEPORT_LOG_H

#include <stdarg.h>

enum log_target { LOG_TO_AUTO, LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_KMSG };

/* The size of a reason buffer ("why"): what failed, for which user or
 * file, and what to do, for people. */
#define HP_WHY_MAX 1024

/* Where messages for the person waiting go (the greeter, a terminal): a
 * login's or a mount's progress, besides the log.  ctx is the caller's. */
typedef void (*progress_fn)(void *ctx, const char *msg);

/* Levels follow syslog(3) numbering so they map 1:1. */
enum log_level {
    LOG_LVL_ERR = 3,
    LOG_LVL_WARN = 4,
    LOG_LVL_NOTICE = 5,
    LOG_LVL_INFO = 6,
    LOG_LVL_DEBUG = 7
};

/* (Re)open the log.  Messages above max_level are dropped.  Safe to call
 * again, e.g. after the configuration named another target.  The syslog
 * socket or /dev/kmsg is opened at the first message: call log_close()
 * before closing a process's fds wholesale. */
void log_open(enum log_target target, enum log_level max_level);
void log_close(void);
enum log_target log_current_target(void);
enum log_level log_current_level(void);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
