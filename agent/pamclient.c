#include "pamclient.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "json.h"
#include "log.h"
#include "proto.h"
#include "session.h"
#include "user.h"

static void say(const struct hp_config *cfg, FILE *out, const char *msg, bool error)
{
    if (!*msg)
        return;
    if (cfg->pam_json) {
        fputs("{\"message\": ", out);
        json_str(out, msg);
        fprintf(out, ", \"isError\": %s}\n", error ? "true" : "false");
    } else {
        fprintf(out, "%s\n", msg);
    }
    fflush(out);
}

/* Connect to the agent's socket.  -errno. */
static int connect_agent(const struct hp_config *cfg, char *path, size_t len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    snprintf(path, len, "%s/agent.sock", cfg->run_dir);
    if (strlen(path) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* The password pam_exec expose_authtok writes on stdin (up to a NUL, a
 * newline or EOF).  Its length, 0 when there is none, -errno. */
static int read_authtok(char *out, size_t len)
{
    size_t n = 0;

    while (n + 1 < len) {
        ssize_t r = read(0, out + n, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || out[n] == '\0' || out[n] == '\n')
            break;
        n++;
    }
    out[n] = '\0';
    return (int)n;
}

int pamclient_run(const struct hp_config *cfg, const char *bad_config, FILE *out)
{
    const char *type = getenv("PAM_TYPE"), *user = getenv("PAM_USER"),
               *service = getenv("PAM_SERVICE");
    struct proto_request req = {0};
    char buf[PROTO_MAX + 1], msg[PROTO_MAX + 256], path[256], why[HP_WHY_MAX];
    int verb, fd, n;

    if (!type || !*type) {
        fprintf(stderr, "homeport pam: PAM_TYPE is not set: this verb is run by pam_exec(8) "
                        "(see homeport(8))\n");
        return 2;
    }
    if (!strcmp(type, "password"))
        return 0;
    if (!strcmp(type, "auth") &&
        (cfg->home_mode != HP_HOME_SYNC || cfg->sync_mount != HP_SYNC_SSHFS ||
         cfg->sync_auth != HP_SYNC_AUTH_PASSWORD || bad_config))
        return 0; /* the password is not needed: never read, never sent */
    verb = proto_verb_from_pam(type);
    if (verb < 0) {
        snprintf(msg, sizeof msg, "homeport: unknown PAM stage '%.64s'", type);
        say(cfg, out, msg, true);
        return 2;
    }
    /* Exemptions first: root and system users are never held up, whatever
     * their names look like. */
    if (user && session_exempt(cfg, user, service, why, sizeof why)) {
        log_debug("%s %s: %s", type, user, why);
        return 0;
    }
    if (!user || !user_name_valid(user)) {
        snprintf(msg, sizeof msg, "homeport: %s user name '%.64s'", user ? "invalid" : "no",
                 user ? user : "");
        say(cfg, out, msg, true);
        return 1;
    }
    const char *doing = verb == PV_CLOSE_SESSION ? "release" : "prepare";
    if (bad_config) {
        snprintf(msg, sizeof msg,
                 "Cannot %s the home of %s: %s (the administrator can run 'homeport "
                 "config-check')",
                 doing, user, bad_config);
        say(cfg, out, msg, true);
        return 1;
    }

    req.verb = (enum proto_verb)verb;
    snprintf(req.user, sizeof req.user, "%s", user);
    if (verb == PV_AUTH && read_authtok(req.secret, sizeof req.secret) <= 0) {
        explicit_bzero(&req, sizeof req);
        log_warn("auth %s: no password on stdin (the auth line needs pam_exec expose_authtok): "
                 "the server home cannot be mounted with it",
                 user);
        return 0; /* auth is not ours to refuse; the mount will say it */
    }
    if (service && strlen(service) < sizeof req.service && !strchr(service, '\n'))
        snprintf(req.service, sizeof req.service, "%s", service);
    fd = connect_agent(cfg, path, sizeof path);
    if (fd < 0) {
        snprintf(msg, sizeof msg,
                 "Cannot %s the home of %s: the homeport agent is not running (%s: %s)", doing,
                 user, path, strerror(-fd));
        say(cfg, out, msg, true);
        return 1;
    }
    n = proto_format_request(&req, buf, sizeof buf);
    explicit_bzero(&req, sizeof req);
    if (n < 0 || send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n) {
        snprintf(msg, sizeof msg, "Cannot ask the homeport agent about %s: %s", user,
                 strerror(n < 0 ? -n : errno));
        say(cfg, out, msg, true);
        close(fd);
        return 1;
    }

    explicit_bzero(buf, sizeof buf);
    int64_t deadline = clock_ms() + cfg->pam_timeout_ms;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int64_t left = deadline - clock_ms();
        enum proto_reply kind;
        const char *text;
        int err;
        ssize_t got;

        if (left <= 0 || poll(&p, 1, (int)left) == 0) {
            snprintf(msg, sizeof msg, "The homeport agent did not finish %s for %s within %u s",
                     type, user, cfg->pam_timeout_ms / 1000);
            break;
        }
        got = recv(fd, buf, PROTO_MAX, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            snprintf(msg, sizeof msg,
                     "The homeport agent closed the connection before answering about %s", user);
            break;
        }
        if (proto_parse_reply(buf, (size_t)got, &kind, &err, &text) < 0) {
            snprintf(msg, sizeof msg, "The homeport agent sent a malformed answer about %s", user);
            break;
        }
        if (kind == PR_PROGRESS) {
            say(cfg, out, text, false);
            continue;
        }
        close(fd);
        if (kind == PR_ERROR && !*text) {
            snprintf(msg, sizeof msg, "%s failed for %s: %s", type, user, strerror(err));
            text = msg;
        }
        say(cfg, out, text, kind == PR_ERROR);
        return kind == PR_OK ? 0 : 1;
    }
    close(fd);
    say(cfg, out, msg, true);
    return 1;
}
