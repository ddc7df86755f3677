/* pamclient: `homeport pam`, run by pam_exec(8) at each PAM stage.
 *
 * Reads PAM_TYPE, PAM_USER and PAM_SERVICE from the environment, asks the
 * agent over its socket, and prints each progress message as one line on
 * stdout (pam_exec's `stdout` option turns lines into greeter messages):
 * plain text, or {"message": ..., "isError": ...} with pam_messages = json.
 * Exempt users (root, system users, the exempt lists) pass at once, even
 * when the agent is down or the configuration is broken.  auth and password
 * have nothing to do here and pass.
 */
#ifndef HOMEPORT_PAMCLIENT_H
#define HOMEPORT_PAMCLIENT_H

#include <stdio.h>

#include "config.h"

/* cfg: the configuration, or the defaults when the file is not valid
 * (bad_config then names the problem, and only exempt users pass).
 * Returns the exit status: 0 success, 1 failure (reason on the last
 * line), 2 not run by pam_exec / unknown stage. */
int pamclient_run(const struct hp_config *cfg, const char *bad_config, FILE *out);

#endif
