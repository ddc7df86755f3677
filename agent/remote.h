/* remote: the site's services over HTTP, in the reference deployment's
 * format (signed forms, see sign.h and http.h).
 *
 * Locating a home: with locator = static the export is on the configured
 * server; with locator = hfs the home file server of this machine
 * (hfs_url with hfs_number) is asked with POST /get_hfs {"user", "hfs",
 * "utype"} and answers {"port": N}: the export (named for the user) is then
 * served on that host and port.  The call may take minutes while the server
 * moves the image from another HFS; meanwhile the person waiting gets a
 * message every progress_interval.
 *
 * Presence (presence = on): one machine at a time per user.  POST /login
 * {"login", "hostname"} at account (200 yes, 423 no with the reason in the
 * body), /heartbeat while the home is held here (the service forgets a
 * login after 30 s without one), /logout once the home is released.
 *
 * Messages are written for people and chained the way the reference does
 * ("While retrieving the home of bob: home file server ...: 404: ...").
 */
#ifndef HOMEPORT_REMOTE_H
#define HOMEPORT_REMOTE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "home.h"

struct http_reply;

/* Read the secret when the configuration uses a service; the process and
 * its children keep it.  Call again after a reload.  0 or -errno, with the
 * reason (naming the file) in why. */
int remote_setup(const struct hp_config *cfg, char *why, size_t whylen);
void remote_cleanup(void);

/* Does the configuration use the presence service? */
bool remote_presence_on(const struct hp_config *cfg);

/* This machine's name for the services and in conflict copies: [remote]
 * hostname, else uname's nodename (in buf). */
const char *remote_host_name(const struct hp_config *cfg, char *buf, size_t len);

/* Where user's export is served, in *srv.  0; -ENOENT when no server is
 * configured; -EPERM when the HFS refused the signature (a configuration
 * error); -EREMOTEIO when it answered with an error (its reason is in why);
 * -EPROTO for an answer that makes no sense; or the transport's -errno. */
int remote_locate(const struct hp_config *cfg, const char *user, struct hp_server *srv,
                  progress_fn progress, void *ctx, char *why, size_t whylen);

/* How remote_locate reads the home file server's answer r to its POST to
 * url (the answer came: any status): the same returns, *srv filled on 0.
 * The body is trusted for nothing but a port of 1 to 65535. */
int remote_hfs_answer(const struct hp_config *cfg, const char *user, const char *url,
                      const struct http_reply *r, struct hp_server *srv, char *why, size_t whylen);

enum presence_op { PRESENCE_LOGIN, PRESENCE_HEARTBEAT, PRESENCE_LOGOUT };

/* Tell the presence service.  0: done (for login: allowed); -EACCES: the
 * user is logged in elsewhere (the service's reason in why); -EPERM: it
 * refused the signature; -EREMOTEIO: another error answer; or the
 * transport's -errno when it is down.  A login when the service is down
 * and presence_fail = open returns 0, with the warning in why. */
int remote_presence(const struct hp_config *cfg, enum presence_op op, const char *user, char *why,
                    size_t whylen);

/* How remote_presence reads the service's answer r to its POST to url. */
int remote_presence_answer(const struct hp_config *cfg, enum presence_op op, const char *user,
                           const char *url, const struct http_reply *r, char *why, size_t whylen);

#endif
