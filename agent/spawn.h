/* spawn: run an external tool (mkfs.ext4, e2fsck, cp) without a shell.
 *
 * Arguments go straight to execve(2), so nothing in them (a user name, a
 * path with spaces) is ever interpreted.  The tool is looked up in PATH and
 * then in /usr/sbin and /sbin, which an init script's PATH may lack.
 */
#ifndef HOMEPORT_SPAWN_H
#define HOMEPORT_SPAWN_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

/* Run argv[0] with argv, stdin from /dev/null, stdout and stderr inherited
 * (or both to /dev/null when quiet).  Waits for it.  Returns its exit
 * status (0..255), 128+N when killed by signal N, -ENOENT when the tool is
 * not found, or another -errno. */
int spawn_wait(const char *const argv[], int quiet);

/* Run argv[0] (found as spawn_wait finds it) with argv, input (may be
 * NULL) and a newline on its stdin, its stderr (and its stdout when
 * stdout_too, else /dev/null) captured in out as one line, for at most
 * timeout_ms (then killed).  Waits for the process's exit, not for EOF on
 * its stderr: a tool that leaves a daemon behind (sshfs) keeps it open.
 * Returns its exit status (0..255), 128+N when killed by signal N,
 * -ETIMEDOUT, -ENOENT when the tool is not found, or another -errno. */
int spawn_capture(const char *const argv[], const char *input, unsigned timeout_ms, bool stdout_too,
                  char *out, size_t outlen);

/* Close every descriptor from 3 up, except the nkeep in keep (negative
 * entries are ignored).  For processes that outlive their parent's purpose
 * (home workers, the agent's jobs): they must not hold its sockets, pipes
 * and locks open. */
void spawn_close_fds(const int *keep, size_t nkeep);

/* Leave the caller's terminal and session for good: setsid, chdir /,
 * stdio to /dev/null, and the log reopened on target (stderr becomes
 * auto: syslog or the kernel log).  For the agent in the background and
 * for home workers.  0 or -errno (chdir). */
int spawn_detach(enum log_target target);

#endif
