/* server: the resident agent.
 *
 * Runs the boot phase, re-adopts the homes a previous agent left (their
 * records under RUN_DIR/homes), then serves the control socket
 * RUN_DIR/agent.sock (SOCK_SEQPACKET, mode 0600, peer uid 0 required for
 * anything but ping; see proto.h) from one poll loop.
 *
 * Each request runs in a job: a child process that does the slow work
 * (NBD, fsck, mount, killing processes) and streams progress lines back,
 * so the loop never blocks.  Jobs of different users run in parallel; the
 * requests of one user queue behind each other.  The loop keeps what the
 * jobs report (prepared or mounted, open sessions) and the leases: a
 * prepared home nobody opened within the lease is released.
 *
 * SIGHUP reloads the configuration (a bad file keeps the old one); SIGTERM
 * releases prepared homes, waits up to shutdown_timeout for open sessions
 * to end, and exits, leaving homes still in use mounted and served by their
 * workers for the next agent to re-adopt.  SIGUSR2 is a hand-over: exit at
 * once and leave every home, prepared or mounted, to the next agent (which
 * sends it: agent --replace, e.g. the system's agent taking over from the
 * one the initramfs started).
 */
#ifndef HOMEPORT_SERVER_H
#define HOMEPORT_SERVER_H

#include <stdbool.h>

#include "config.h"

struct server_opts {
    const char *config_path; /* reloaded on SIGHUP */
    bool config_given;       /* the file must exist */
    bool foreground;         /* no fork; else daemonize once ready */
    int verbose;             /* -v count, kept across reloads */
    bool replace;            /* take over from a running agent (agent --replace) */
};

/* Run the agent until SIGTERM/SIGINT.  cfg is taken over (freed by it).
 * Returns the exit status: 0, or 1 when it could not start (reason
 * logged; in daemon mode the parent exits with it). */
int server_run(struct hp_config *cfg, const struct server_opts *o);

#endif
