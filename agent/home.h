/* home: a user's home, attached, checked and mounted, and taken away.
 *
 * mount: connect to the user's export, serve it as a file on a private FUSE
 * mount (a worker process per home, so a stuck server cannot freeze anyone
 * else), bind a loop device to it, e2fsck -p, mount it on the home dir, and
 * check that the filesystem's root belongs to the user.
 * umount: unmount (reporting the processes that keep it busy), release the
 * loop device, stop the worker.  Never in the other order.
 *
 * What is mounted is recorded under RUN_DIR/homes/USER, so that umount and
 * status work from any process and after a restart.
 */
#ifndef HOMEPORT_HOME_H
#define HOMEPORT_HOME_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "config.h"

struct home_state {
    char user[40];
    char attach[8];   /* "fuse" */
    char device[64];  /* /dev/loopN */
    char server[300]; /* label */
    char export[256];
    char mountpoint[4096];
    char fuse_dir[4096];
    pid_t worker;
    uint64_t size;
    bool direct_io;
    bool read_only; /* the server exports it read-only: mounted ro */
};

/* Where messages for the person waiting go (the greeter, a terminal). */
typedef void (*home_progress_fn)(void *ctx, const char *msg);

/* Mount user's home.  Returns 0; -EALREADY when it is mounted already;
 * -EUCLEAN when the filesystem needs a manual repair; -EPERM when its
 * root belongs to someone else; or another -errno.  why says it for
 * people. */
int home_mount(const struct hp_config *cfg, const char *user, home_progress_fn progress, void *ctx,
               char *why, size_t whylen);

/* Unmount user's home.  -ENOENT when none is mounted; -EBUSY when
 * processes keep it busy (listed in why). */
int home_umount(const struct hp_config *cfg, const char *user, char *why, size_t whylen);

/* Print every home this machine has mounted (text or JSON). Returns the
 * number of homes in trouble (worker gone, disconnected, not mounted). */
int home_status(const struct hp_config *cfg, FILE *out, bool json);

#endif
