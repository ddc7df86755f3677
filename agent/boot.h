/* boot: the boot phase, run once by `homeport boot` and first thing by the
 * resident agent.
 *
 *  1. staging dir: detach stale mounts below it (unmount_stale), then empty
 *     and recreate it if and only if nothing is mounted at or below it;
 *  2. under the home root: stale mounts (detached), orphaned loop mounts and
 *     dead NBD devices (reported), leftover flag/pid/socket files (removed);
 *  3. every configured NBD server checked in parallel within its timeout.
 *
 * Nothing is touched while another agent is running (its pid file names a
 * live homeport process): the phase then only reports and checks servers.
 */
#ifndef HOMEPORT_BOOT_H
#define HOMEPORT_BOOT_H

#include <stdio.h>
#include <sys/types.h>

#include "config.h"
#include "mounts.h"
#include "nbd.h"

/* Exit codes of `homeport boot` (documented in homeport(8)). */
enum boot_exit {
    BOOT_OK = 0,
    BOOT_FAILED = 1,  /* something could not be done: I/O error, no memory */
    BOOT_CONFIG = 2,  /* usage or configuration error */
    BOOT_REFUSED = 3, /* staging dir not cleaned: live mounts, or an agent runs */
    BOOT_NBD = 4,     /* an NBD server failed its check */
};

enum staging_result {
    STAGING_EMPTIED,
    STAGING_REFUSED_MOUNTS,
    STAGING_REFUSED_AGENT,
    STAGING_FAILED
};

struct boot_mount {
    char *source, *target, *fstype;
    enum mount_health health;
    char detail[256];
    int below_staging;
    int action;   /* BOOT_KEPT, BOOT_DONE, or -errno of a failed detach */
    int reported; /* 0: a healthy home, kept only to protect it (see detach_stale) */
};

struct boot_leftover {
    char *path;
    const char *kind; /* "sync flag", "pid file", "socket" */
    int action;       /* BOOT_KEPT, BOOT_DONE, or -errno */
};

#define BOOT_KEPT 1
#define BOOT_DONE 0

#define BOOT_MAX_DEVICES 64

struct boot_report {
    const struct hp_config *cfg;
    pid_t agent_pid; /* a running agent, or 0 */

    enum staging_result staging;
    unsigned long removed, skipped;
    int staging_err;
    char staging_err_name[256];

    struct boot_mount *mounts; /* stale/orphan/unresponsive anywhere, live below staging;
                                  live homes too, unreported */
    size_t nmounts;
    struct hp_dev_problem *devices; /* at most BOOT_MAX_DEVICES */
    size_t ndevices;
    struct boot_leftover *leftovers;
    size_t nleftovers;
    struct nbd_probe *nbd;
    size_t nnbd, nbd_failed;

    int internal_err; /* -errno of a failure of the phase itself */
    enum boot_exit exit_code;
    double elapsed_ms; /* the whole phase, probes included */
};

/* Where the phase looks (another root for tests or a chroot). */
struct boot_env {
    const char *mountinfo;    /* /proc/self/mountinfo */
    const char *sysfs;        /* /sys */
    unsigned stat_timeout_ms; /* bound on statfs() of FUSE/network mounts */
};
/* /proc/self/mountinfo, /sys, 2 s */
extern const struct boot_env boot_env_default;

/* Run the phase; r is filled (free with boot_report_free) and r->exit_code
 * set.  Returns r->exit_code. */
enum boot_exit boot_run(const struct hp_config *cfg, const struct boot_env *env,
                        struct boot_report *r);
void boot_report_free(struct boot_report *r);

void boot_print_text(FILE *f, const struct boot_report *r);
void boot_print_json(FILE *f, const struct boot_report *r);

/* The pid of a running agent according to run_dir/agent.pid, or 0 (also
 * when that is this process, or one on its way out). */
pid_t boot_running_agent(const char *run_dir);

/* Whether process pid is on its way out: killed (SIGKILL pending), in its
 * exit (PF_EXITING), a zombie, or gone.  Such a process may still hold its
 * files (the agent lock) for a moment. */
bool boot_process_exiting(pid_t pid);

#endif
