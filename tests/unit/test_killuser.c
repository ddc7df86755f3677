/* test_killuser: session_kill_user stops the processes whose real or saved
 * uid is the user's (a setuid program the user ran among them), leaves a
 * root process that only acts as the user (effective uid) alone, and finds
 * nothing to do when the user has no process; session_uid_has_tasks, its
 * look before the /proc scan, says none exactly then.  Needs root
 * (setresuid). */
#include <errno.h>
#include <linux/securebits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "session.h"
#include "tap.h"

#define UID 64123 /* nobody's: no process of it runs here */

/* A child with these ids, asleep; returns once it has them. */
static pid_t child_as(uid_t r, uid_t e, uid_t s)
{
    int p[2];
    char c = 0;
    pid_t pid;

    if (pipe(p) < 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        close(p[0]);
        if (setresuid(r, e, s) < 0)
            _exit(1);
        (void)!write(p[1], "x", 1);
        for (;;)
            pause();
    }
    close(p[1]);
    if (pid > 0 && read(p[0], &c, 1) != 1) {
        waitpid(pid, NULL, 0);
        pid = -1;
    }
    close(p[0]);
    return pid;
}

/* Whether pid ended (reaped here if so). */
static bool ended(pid_t pid)
{
    return waitpid(pid, NULL, WNOHANG) == pid;
}

int main(void)
{
    char report[256];
    pid_t a, b, c;
    int n;

    if (geteuid() != 0) {
        printf("1..0 # SKIP needs root to run processes as another uid\n");
        return 0;
    }
    n = session_uid_has_tasks(UID);
    ok(n == 0, "no process of uid %d: the probe says none (%d)", UID, n);
    n = session_kill_user(UID, 200, report, sizeof report);
    ok(n == 0 && !report[0], "no process of uid %d: none signalled (%d, '%s')", UID, n, report);

    c = child_as(0, UID, 0); /* a root daemon acting as the user */
    n = session_uid_has_tasks(UID);
    ok(c > 0 && n == 0, "a root process acting as uid %d: the probe says none (%d)", UID, n);
    a = child_as(UID, UID, UID);
    n = session_uid_has_tasks(UID);
    ok(a > 0 && n == 1, "a process of uid %d: the probe says some (%d)", UID, n);
    /* An agent whose setresuid keeps its capabilities: the probe's child
     * must drop them itself, or CAP_SYS_RESOURCE passes over the limit. */
    ok(prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP) == 0, "securebits: no setuid fixup");
    n = session_uid_has_tasks(UID);
    ok(n == 1, "a process of uid %d, the caller keeping its capabilities: some (%d)", UID, n);
    ok(prctl(PR_SET_SECUREBITS, 0) == 0, "securebits: back to none");
    b = child_as(UID, 0, 0); /* a setuid-root program the user ran */
    ok(a > 0 && b > 0 && c > 0, "three children: uid, setuid root, root acting as uid");
    n = session_kill_user(UID, 200, report, sizeof report);
    ok(n == 2, "two processes signalled (%d): %s", n, report);
    ok(ended(a), "the user's process is gone");
    ok(ended(b), "the setuid program the user ran is gone");
    ok(!ended(c) && kill(c, 0) == 0, "the root daemon acting as the user still runs");
    n = session_uid_has_tasks(UID);
    ok(n == 0, "once they are reaped, the probe says none again (%d)", n);
    n = session_kill_user(UID, 200, report, sizeof report);
    ok(n == 0, "then nothing more to stop (%d: %s)", n, report);
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    ok(session_kill_user(0, 200, report, sizeof report) == -EPERM, "uid 0 refused");
    return tap_done();
}
