#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "boot.h"
#include "clock.h"
#include "home.h"
#include "http.h"
#include "log.h"
#include "proto.h"
#include "remote.h"
#include "roam.h"
#include "secret.h"
#include "session.h"
#include "spare.h"
#include "spawn.h"
#include "textfile.h"
#include "tls.h"
#include "tree.h"
#include "user.h"
#include "warm.h"

#include "version.h"

#define MAX_CLIENTS 1000
#define RETRY_MS 10000    /* an unmount that failed at logout is retried this often */
#define HANDOVER_MS 10000 /* agent --replace waits this long for the old one */
#define EXITING_MS 3000   /* a start waits this long for a dying agent's lock */

struct job;

struct client {
    int fd;
    uid_t uid;
    pid_t pid;
    struct job *job; /* its request, queued or running */
};

struct user {
    struct session_user su;
    int64_t lease_end; /* prepared, no session: released then (ms, monotonic); 0 = none */
    int64_t retry_at;  /* a failed unmount is retried then; 0 = none */
    int64_t next_sync; /* home_mode = sync: the next pass during the session; 0 = none */
    struct job *running, *head, *tail;
};

struct job {
    struct job *next;      /* in its user's queue */
    struct client *client; /* NULL: the agent's own, or the client went away */
    struct user *user;
    struct proto_request req;
    pid_t pid;
    bool reaped;             /* by the SIGCHLD sweep, before its pipe said EOF */
    struct home_ahead ahead; /* a warm connection or a spare for it, until the fork */
    int status;
    int rfd;
    char buf[8192];
    size_t len;
    bool got_result, concluded;
    int64_t t0_us; /* when it was queued: the log gives each stage's time */
    int rc;
    struct session_user result;
    char text[1024];
};

static struct {
    struct hp_config cfg;
    const struct server_opts *o;
    int lfd, sigr, sigw, lockfd, notify_fd;
    char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char pid_path[PATH_MAX];
    struct client *clients[MAX_CLIENTS];
    size_t nclients;
    struct user **users;
    size_t nusers, cap_users;
    struct warm_pool *warm;
    struct spare_pool *spares;
    bool stopping, exit_now, detached;
    int64_t stop_deadline;
    int64_t next_heartbeat; /* presence: due then (ms, monotonic) */
    pid_t heartbeat_pid;    /* the process sending them, while it runs */
} S = {.lfd = -1, .sigr = -1, .sigw = -1, .lockfd = -1, .notify_fd = -1};

static void on_signal(int sig)
{
    unsigned char c = (unsigned char)sig;
    int saved = errno;
    if (write(S.sigw, &c, 1) < 0) {
        /* the pipe is full: a signal is pending already */
    }
    errno = saved;
}

/* ---- replies ------------------------------------------------------------ */

static void send_reply(struct client *c, enum proto_reply kind, int err, const char *text)
{
    char buf[PROTO_MAX];
    size_t n;

    if (!c)
        return;
    n = proto_format_reply(kind, err, text, buf, sizeof buf);
    if (send(c->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EPIPE)
        log_debug("reply to client pid %d: %s", (int)c->pid, strerror(errno));
}

static void drop_client(struct client *c)
{
    for (size_t i = 0; i < S.nclients; i++)
        if (S.clients[i] == c) {
            S.clients[i] = S.clients[--S.nclients];
            break;
        }
    if (c->job)
        c->job->client = NULL;
    close(c->fd);
    free(c);
}

/* ---- users and jobs ----------------------------------------------------- */

static struct user *find_user(const char *name, bool create)
{
    for (size_t i = 0; i < S.nusers; i++)
        if (strcmp(S.users[i]->su.name, name) == 0)
            return S.users[i];
    if (!create)
        return NULL;
    if (S.nusers == S.cap_users) {
        size_t cap = S.cap_users ? S.cap_users * 2 : 16;
        struct user **n = realloc(S.users, cap * sizeof(struct user *));
        if (!n)
            return NULL;
        S.users = n;
        S.cap_users = cap;
    }
    struct user *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    snprintf(u->su.name, sizeof u->su.name, "%s", name);
    S.users[S.nusers++] = u;
    return u;
}

/* Forget a user the agent holds nothing for. */
static void maybe_forget(struct user *u)
{
    if (u->running || u->head || u->su.home != HOME_NONE || u->su.sessions > 0 || u->su.presence)
        return;
    for (size_t i = 0; i < S.nusers; i++)
        if (S.users[i] == u) {
            S.users[i] = S.users[--S.nusers];
            break;
        }
    free(u);
}

struct job_ctx {
    int wfd;
};

static void write_line(int fd, char tag, const char *text)
{
    char line[1100];
    int n = snprintf(line, sizeof line - 1, "%c %s", tag, text);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    for (int i = 0; i < n; i++)
        if (line[i] == '\n')
            line[i] = ' ';
    line[n++] = '\n';
    if (write(fd, line, (size_t)n) < 0) {
        /* the agent is gone: the work goes on without an audience */
    }
}

static void job_progress(void *v, const char *msg)
{
    write_line(((struct job_ctx *)v)->wfd, 'P', msg);
}

/* The job process: run the stage, report, exit. */
static void run_job(struct job *j, int wfd)
{
    struct job_ctx ctx = {wfd};
    struct session_user su = j->user->su;
    char msg[1024], res[1100];
    int rc;

    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    int keep[3] = {wfd, j->ahead.warm ? nbd_aio_get_fd(j->ahead.warm) : -1,
                   j->ahead.spare > 0 ? j->ahead.spare_ctl : -1};
    log_close();
    spawn_close_fds(keep, 3);
    log_open(S.cfg.log_target, log_current_level());
    if (j->req.verb == PV_ACCOUNT || j->req.verb == PV_OPEN_SESSION)
        secret_keep_only(su.name); /* this process needs no other password */
    else
        secret_keep_only(NULL);
    rc = session_run(&S.cfg, j->req.verb, j->req.service, &j->ahead, &su, job_progress, &ctx, msg,
                     sizeof msg);
    secret_forget(su.name);
    snprintf(res, sizeof res, "%d %d %d %d %s", rc, (int)su.home, su.sessions, (int)su.presence,
             msg);
    write_line(wfd, 'R', res);
    home_ahead_drop(&j->ahead); /* a spare taken for a home this stage did not prepare */
    session_after(&S.cfg, j->req.verb, rc, &su); /* off the login's critical path */
    _exit(0);
}

static void finish_job(struct job *j, int status);
static void conclude(struct job *j, int status);

/* Reap every child that ended: jobs (their status is kept for when their
 * pipe runs dry) and home workers, which are ours once their job has
 * exited (the agent is a child subreaper). */
static void reap_children(void)
{
    pid_t pid;
    int status;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        bool job = false;
        if (pid == S.heartbeat_pid) {
            S.heartbeat_pid = 0;
            continue;
        }
        for (size_t i = 0; i < S.nusers && !job; i++) {
            struct job *j = S.users[i]->running;
            if (j && j->pid == pid) {
                j->reaped = job = true;
                j->status = status;
            }
        }
        if (!job)
            log_debug("worker %d ended (%s %d)", (int)pid, WIFSIGNALED(status) ? "signal" : "exit",
                      WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
}

/* open_session of a home already prepared (or mounted): a bind mount and a
 * record write, answered here in the agent's own process rather than by a
 * job (the fork and the job's start-up were most of the stage's time).
 * False: the stage needs a job. */
static bool open_here(struct job *j)
{
    struct user *u = j->user;
    struct session_user su = u->su;
    int rc;

    if (j->req.verb != PV_OPEN_SESSION || u->su.home == HOME_NONE)
        return false;
    rc = session_open_prepared(&S.cfg, j->req.service, &su, j->text, sizeof j->text);
    if (rc == -EAGAIN)
        return false;
    j->rc = rc;
    j->result = su;
    j->got_result = true;
    finish_job(j, 0);
    session_after(&S.cfg, PV_OPEN_SESSION, rc, &su); /* once the answer is out */
    return true;
}

/* A warm connection to the home server for u's home, with NBD_OPT_GO
 * for u's export sent already (nbd_warm_go); NULL when none is ready. */
static struct nbd_handle *take_warm(struct user *u)
{
    const struct hp_server *srv = config_home_server(&S.cfg);
    struct nbd_handle *h = warm_take(S.warm, srv, clock_ms());
    char export[256];
    int rc;

    if (!h || config_export_name(&S.cfg, u->su.name, export, sizeof export) < 0)
        return h; /* (too long: the job says so) */
    if ((rc = nbd_warm_go(h, export)) < 0) {
        log_info("the warm connection to %s was gone (%s): the job connects afresh", srv->label,
                 strerror(-rc));
        nbd_close(h);
        return NULL;
    }
    return h;
}

static void start_job(struct user *u)
{
    struct job *j = u->head;
    int p[2];

    if (u->running || !j)
        return;
    u->head = j->next;
    if (!u->head)
        u->tail = NULL;
    j->next = NULL;
    u->running = j;
    if (open_here(j))
        return;
    if (pipe2(p, O_CLOEXEC) < 0) {
        j->rc = -errno;
        snprintf(j->text, sizeof j->text, "cannot start the work for %s: pipe: %s", u->su.name,
                 strerror(errno));
        finish_job(j, 0);
        return;
    }
    /* A home to prepare: give the job a spare worker, sent the export
     * now, or else a warm connection (the worker it starts inherits it). */
    if ((j->req.verb == PV_ACCOUNT || j->req.verb == PV_OPEN_SESSION) && u->su.home == HOME_NONE &&
        S.cfg.locator == HP_LOCATOR_STATIC) {
        if (spare_take(S.spares, &j->ahead, clock_ms()) == 0) {
            int rc = spare_send(&S.cfg, &j->ahead, u->su.name);
            if (rc == 0)
                log_info("%s %s: on spare worker %d", proto_verb_name(j->req.verb), u->su.name,
                         (int)j->ahead.spare);
            else {
                log_warn("%s %s: spare worker %d did not take the home (%s)",
                         proto_verb_name(j->req.verb), u->su.name, (int)j->ahead.spare,
                         strerror(-rc));
                close(j->ahead.spare_ctl); /* it ends when it sees that */
                j->ahead.spare = 0;
            }
        }
        if (!j->ahead.spare && (j->ahead.warm = take_warm(u)))
            log_info("%s %s: on a warm connection to %s", proto_verb_name(j->req.verb), u->su.name,
                     config_home_server(&S.cfg)->label);
    }
    fflush(NULL);
    j->pid = fork();
    if (j->pid == 0) {
        close(p[0]);
        run_job(j, p[1]);
    }
    close(p[1]);
    if (j->ahead.warm) { /* the child has it now: drop this copy (nothing is sent) */
        nbd_close(j->ahead.warm);
        j->ahead.warm = NULL;
    }
    if (j->ahead.spare > 0) {
        close(j->ahead.spare_ctl); /* the job has it now */
        if (j->pid < 0)
            kill(j->ahead.spare, SIGTERM); /* no job to adopt it: it serves the export already */
        j->ahead.spare = 0;
    }
    if (j->pid < 0) {
        int e = errno;
        close(p[0]);
        j->rc = -e;
        snprintf(j->text, sizeof j->text, "cannot start the work for %s: fork: %s", u->su.name,
                 strerror(e));
        finish_job(j, 0);
        return;
    }
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    j->rfd = p[0];
    log_debug("%s %s: job %d started", proto_verb_name(j->req.verb), u->su.name, (int)j->pid);
}

static void enqueue(struct user *u, struct client *c, const struct proto_request *req)
{
    struct job *j = calloc(1, sizeof *j);

    if (!j) {
        send_reply(c, PR_ERROR, ENOMEM, "the homeport agent is out of memory");
        return;
    }
    j->client = c;
    j->user = u;
    j->req = *req;
    j->rfd = -1;
    j->t0_us = clock_us();
    if (c)
        c->job = j;
    if (u->tail)
        u->tail->next = j;
    else
        u->head = j;
    u->tail = j;
    start_job(u);
}

static void enqueue_own(struct user *u, enum proto_verb verb)
{
    struct proto_request req = {.verb = verb};
    snprintf(req.user, sizeof req.user, "%s", u->su.name);
    enqueue(u, NULL, &req);
}

static void parse_line(struct job *j, char *line)
{
    if (line[0] == 'P' && line[1] == ' ') {
        send_reply(j->client, PR_PROGRESS, 0, line + 2);
        return;
    }
    int rc, home, sessions, presence, off = 0;
    if (line[0] == 'R' &&
        sscanf(line + 1, " %d %d %d %d %n", &rc, &home, &sessions, &presence, &off) == 4 &&
        off > 0 && home >= HOME_NONE && home <= HOME_MOUNTED) {
        j->got_result = true;
        j->rc = rc;
        j->result = j->user->su;
        j->result.home = (enum home_phase)home;
        j->result.sessions = sessions;
        j->result.presence = presence != 0;
        snprintf(j->text, sizeof j->text, "%s", line + 1 + off);
        conclude(j, 0);
    }
}

/* Apply a job's result and answer its client: as soon as the result line
 * comes (the job may still be tidying up, e.g. recording the last user),
 * or at its end when it died without one. */
static void conclude(struct job *j, int status)
{
    struct user *u = j->user;
    enum proto_verb verb = j->req.verb;
    int64_t now = clock_ms();

    if (!j->got_result && j->rc == 0) {
        j->rc = -EIO;
        snprintf(j->text, sizeof j->text, "the work for %s ended without an answer (%s %d)",
                 u->su.name, WIFSIGNALED(status) ? "signal" : "exit",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    if (j->got_result)
        u->su = j->result;
    if (verb == PV_ACCOUNT || verb == PV_OPEN_SESSION)
        secret_forget(u->su.name); /* used, or refused: asked again at the next auth */
    if (u->su.home != HOME_MOUNTED)
        u->next_sync = 0;
    else if (!u->next_sync && S.cfg.home_mode == HP_HOME_SYNC && S.cfg.sync_interval_ms)
        u->next_sync = now + S.cfg.sync_interval_ms;
    u->lease_end = u->su.home == HOME_PREPARED && u->su.sessions == 0 ? now + S.cfg.lease_ms : 0;
    u->retry_at = 0;
    if ((verb == PV_CLOSE_SESSION || verb == PV_RELEASE) && j->rc == -EBUSY) {
        u->retry_at = now + RETRY_MS;
        log_warn("%s; retrying in %d s", j->text, RETRY_MS / 1000);
    }
    double ms = (double)(clock_us() - j->t0_us) / 1000;
    if (j->rc < 0)
        log_warn("%s %s failed after %.1f ms: %s", proto_verb_name(verb), u->su.name, ms, j->text);
    else
        log_info("%s %s: %s (%.1f ms)", proto_verb_name(verb), u->su.name,
                 j->text[0] ? j->text : "nothing to do", ms);
    if (j->client) {
        send_reply(j->client, j->rc < 0 ? PR_ERROR : PR_OK, -j->rc, j->text);
        j->client->job = NULL;
    } else if (verb == PV_OPEN_SESSION && j->rc == 0 && u->su.sessions > 0) {
        /* Its PAM client gave up: for PAM that session failed and will
         * never be closed, so close it here. */
        log_warn("the client of open_session %s went away: closing that session", u->su.name);
        enqueue_own(u, PV_CLOSE_SESSION);
    }
    j->concluded = true;
}

/* The job has ended: reap, free, and start the user's next request. */
static void finish_job(struct job *j, int status)
{
    struct user *u = j->user;

    if (!j->concluded)
        conclude(j, status);
    if (j->rfd >= 0)
        close(j->rfd);
    u->running = NULL;
    free(j);
    start_job(u);
    maybe_forget(u);
}

/* Read what a job says; at its end, reap it and apply the result. */
static void job_readable(struct job *j)
{
    for (;;) {
        ssize_t n = read(j->rfd, j->buf + j->len, sizeof j->buf - 1 - j->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            int status = j->status;
            while (!j->reaped && waitpid(j->pid, &status, 0) < 0 && errno == EINTR)
                ;
            finish_job(j, status);
            return;
        }
        j->len += (size_t)n;
        char *nl;
        while ((nl = memchr(j->buf, '\n', j->len))) {
            *nl = '\0';
            parse_line(j, j->buf);
            j->len -= (size_t)(nl + 1 - j->buf);
            memmove(j->buf, nl + 1, j->len);
        }
        if (j->len == sizeof j->buf - 1)
            j->len = 0; /* a line longer than the buffer: drop it */
    }
}

/* ---- presence heartbeats ------------------------------------------------ */

/* Tell the presence service that the users whose homes are held here are
 * still here, in a process of its own (the service may be slow or down;
 * the loop must not wait).  One at a time: when the last is still running,
 * this round is skipped. */
static void send_heartbeats(void)
{
    size_t n = 0;

    if (S.heartbeat_pid)
        return;
    for (size_t i = 0; i < S.nusers; i++)
        n += S.users[i]->su.presence;
    if (!n)
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        log_warn("cannot send presence heartbeats: fork: %s", strerror(errno));
        return;
    }
    if (pid > 0) {
        S.heartbeat_pid = pid;
        return;
    }
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    log_close();
    spawn_close_fds(NULL, 0);
    log_open(S.cfg.log_target, log_current_level());
    for (size_t i = 0; i < S.nusers; i++) { /* the loop's users, as of the fork */
        const char *name = S.users[i]->su.name;
        char why[HP_WHY_MAX];
        int rc;
        if (!S.users[i]->su.presence)
            continue;
        rc = remote_presence(&S.cfg, PRESENCE_HEARTBEAT, name, why, sizeof why);
        if (rc == -EACCES)
            log_err("heartbeat of %s refused: %s: its home is still mounted here", name, why);
        else if (rc < 0)
            log_warn("%s", why);
        else
            log_debug("heartbeat of %s sent", name);
    }
    _exit(0);
}

/* ---- requests ----------------------------------------------------------- */

static void handle_request(struct client *c)
{
    char buf[PROTO_MAX + 1], why[HP_WHY_MAX];
    struct proto_request req;
    ssize_t n = recv(c->fd, buf, sizeof buf, MSG_TRUNC | MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        drop_client(c);
        return;
    }
    if ((size_t)n > PROTO_MAX) {
        snprintf(why, sizeof why, "request too large (%zd bytes, at most %d)", n, PROTO_MAX);
        goto reject;
    }
    if (proto_parse_request(buf, (size_t)n, &req, why, sizeof why) < 0)
        goto reject;
    if (c->job) {
        snprintf(why, sizeof why, "one request at a time: %s of %s is still running",
                 proto_verb_name(c->job->req.verb), c->job->user->su.name);
        goto reject;
    }
    if (req.verb == PV_AUTH) {
        int rc = 0;
        if (c->uid == 0 && S.cfg.home_mode == HP_HOME_SYNC &&
            S.cfg.sync_auth == HP_SYNC_AUTH_PASSWORD)
            rc = secret_keep(req.user, req.secret, clock_ms() + S.cfg.lease_ms);
        explicit_bzero(&req, sizeof req);
        explicit_bzero(buf, sizeof buf);
        if (c->uid != 0)
            send_reply(c, PR_ERROR, EPERM,
                       "permission denied: only root may ask the homeport agent");
        else if (rc < 0)
            send_reply(c, PR_ERROR, -rc, "too many logins waiting for their mount: try again");
        else
            send_reply(c, PR_OK, 0, "");
        return;
    }
    if (req.verb == PV_PING) {
        snprintf(why, sizeof why,
                 "homeport %s agent pid %d, %zu warm connections ready, %zu spare workers",
                 HOMEPORT_VERSION, (int)getpid(), warm_ready(S.warm), spare_ready(S.spares));
        send_reply(c, PR_OK, 0, why);
        return;
    }
    if (c->uid != 0) {
        log_warn("refused %s %s from uid %u (pid %d): only root may ask", proto_verb_name(req.verb),
                 req.user, (unsigned)c->uid, (int)c->pid);
        send_reply(c, PR_ERROR, EPERM, "permission denied: only root may ask the homeport agent");
        drop_client(c);
        return;
    }
    if (S.stopping && (req.verb == PV_ACCOUNT || req.verb == PV_OPEN_SESSION)) {
        send_reply(c, PR_ERROR, ESHUTDOWN,
                   "the homeport agent is shutting down: try again in a moment");
        return;
    }
    struct user *u = find_user(req.user, true);
    if (!u) {
        send_reply(c, PR_ERROR, ENOMEM, "the homeport agent is out of memory");
        return;
    }
    log_debug("%s %s (service %s) from pid %d", proto_verb_name(req.verb), req.user,
              req.service[0] ? req.service : "-", (int)c->pid);
    enqueue(u, c, &req);
    return;

reject:
    log_warn("bad request from pid %d (uid %u): %s", (int)c->pid, (unsigned)c->uid, why);
    send_reply(c, PR_ERROR, EPROTO, why);
    drop_client(c);
}

static void accept_clients(void)
{
    for (;;) {
        int fd = accept4(S.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct ucred cred;
        socklen_t len = sizeof cred;
        struct client *c;

        if (fd < 0)
            return;
        if (S.nclients >= MAX_CLIENTS || !(c = calloc(1, sizeof *c))) {
            char buf[128];
            size_t n = proto_format_reply(PR_ERROR, EAGAIN, "the homeport agent is too busy", buf,
                                          sizeof buf);
            send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
            cred.uid = (uid_t)-1; /* unknown: treated as not root */
            cred.pid = 0;
        }
        c->fd = fd;
        c->uid = cred.uid;
        c->pid = cred.pid;
        S.clients[S.nclients++] = c;
    }
}

/* ---- start, reload, stop ------------------------------------------------ */

static void notify_parent(const char *msg)
{
    if (S.notify_fd < 0)
        return;
    if (write(S.notify_fd, msg, strlen(msg)) < 0) {
        /* the parent is gone */
    }
    close(S.notify_fd);
    S.notify_fd = -1;
}

__attribute__((format(printf, 1, 2))) static int start_failed(const char *fmt, ...)
{
    char msg[600];
    va_list ap;

    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): false positive, ap is started */
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_err("%s", msg);
    if (S.notify_fd >= 0)
        notify_parent(msg);
    else if (!S.detached && S.cfg.log_target != LOG_TO_STDERR)
        fprintf(stderr, "homeport agent: %s\n", msg); /* the log may be elsewhere */
    return 1;
}

static void report_config_error(void *ctx, const char *msg)
{
    (void)ctx;
    log_err("%s", msg);
}

static enum log_level level_for(enum log_level base)
{
    if (S.o->verbose >= 2)
        return LOG_LVL_DEBUG;
    if (S.o->verbose == 1 && base < LOG_LVL_INFO)
        return LOG_LVL_INFO;
    return base;
}

static void reload(void)
{
    struct hp_config n;
    int rc = config_load(&n, S.o->config_path, S.o->config_given, report_config_error, NULL);

    if (rc == -EINVAL) {
        log_err("reload: %s is not valid (see above): keeping the running configuration",
                S.o->config_path);
        return;
    }
    if (rc < 0) {
        log_err("reload: cannot read %s: %s; keeping the running configuration", S.o->config_path,
                strerror(-rc));
        return;
    }
    if (strcmp(n.run_dir, S.cfg.run_dir) != 0) {
        log_warn("reload: run_dir changes only at a restart: keeping %s", S.cfg.run_dir);
        free(n.run_dir);
        n.run_dir = strdup(S.cfg.run_dir);
        if (!n.run_dir) {
            config_free(&n);
            return;
        }
    }
    char why[HP_WHY_MAX];
    if (remote_setup(&n, why, sizeof why) < 0 || tls_setup(&n, why, sizeof why) < 0) {
        log_err("reload: %s; keeping the running configuration", why);
        config_free(&n);
        return;
    }
    warm_free(S.warm); /* they point into the old configuration */
    spare_free(S.spares);
    config_free(&S.cfg);
    S.cfg = n;
    S.warm = warm_new(&S.cfg, S.cfg.warm_connections);
    S.spares = spare_new(&S.cfg, S.cfg.spare_workers, false);
    log_open(S.o->foreground || S.cfg.log_target != LOG_TO_STDERR ? S.cfg.log_target : LOG_TO_AUTO,
             level_for(S.cfg.log_level));
    log_notice("configuration reloaded from %s", S.o->config_path);
}

static void adopt(void *ctx, const char *name)
{
    struct home_state s;
    struct user *u;
    int rc = home_lookup(&S.cfg, name, &s);

    (void)ctx;
    if (rc == -ENOENT || !(u = find_user(name, true)))
        return;
    u->su.home = s.phase;
    u->su.sessions = s.sessions;
    u->su.presence = remote_presence_on(&S.cfg); /* held here: heartbeats resume */
    if (rc < 0) {
        log_warn("the home of %s is not where its record says (%s on %s): releasing it", name,
                 s.device, s.phase == HOME_PREPARED ? s.stage : s.mountpoint);
        if (s.sessions == 0)
            u->lease_end = clock_ms();
        return;
    }
    if (u->su.home == HOME_PREPARED && s.sessions == 0)
        u->lease_end = clock_ms() + S.cfg.lease_ms;
    if (u->su.home == HOME_MOUNTED && s.sessions == 0 && s.closing)
        u->retry_at = clock_ms(); /* its last logout could not unmount it */
    log_notice("re-adopted the home of %s: %s on %s, %d session%s%s", name,
               s.phase == HOME_PREPARED ? "prepared" : "mounted",
               s.phase == HOME_PREPARED ? s.stage : s.mountpoint, s.sessions,
               s.sessions == 1 ? "" : "s", s.closing ? ", unmount pending" : "");
}

static void adopt_roaming(void *ctx, const char *name, int sessions, bool mounted)
{
    struct user *u;

    (void)ctx;
    if (!(u = find_user(name, true)))
        return;
    if (!mounted) {
        log_warn("the server home of %s is not mounted any more: forgetting it", name);
        roam_forget(&S.cfg, name);
        return;
    }
    u->su.home = sessions > 0 ? HOME_MOUNTED : HOME_PREPARED;
    u->su.sessions = sessions;
    u->su.presence = remote_presence_on(&S.cfg);
    if (sessions == 0)
        u->lease_end = clock_ms() + S.cfg.lease_ms;
    else if (S.cfg.sync_interval_ms)
        u->next_sync = clock_ms() + S.cfg.sync_interval_ms;
    log_notice("re-adopted the roaming home of %s: %d session%s", name, sessions,
               sessions == 1 ? "" : "s");
}

static int open_socket(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    mode_t old;
    int rc;

    S.lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (S.lfd < 0)
        return -errno;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", S.sock_path);
    unlink(S.sock_path); /* ours: the lock says no other agent runs */
    old = umask(077);
    rc = bind(S.lfd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : -errno;
    umask(old);
    if (rc == 0 && chmod(S.sock_path, 0600) < 0)
        rc = -errno;
    if (rc == 0 && listen(S.lfd, 128) < 0)
        rc = -errno;
    return rc;
}

static int write_pid_file(void)
{
    char line[32];

    snprintf(line, sizeof line, "%d\n", (int)getpid());
    return textfile_write(S.pid_path, line, 0644);
}

/* Log the boot report line by line. */
static void run_boot_phase(void)
{
    struct boot_report r;
    char *text = NULL;
    size_t len = 0;
    FILE *f;

    boot_run(&S.cfg, &boot_env_default, &r);
    f = open_memstream(&text, &len);
    if (f) {
        boot_print_text(f, &r);
        fclose(f);
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
            log_info("boot: %s", line);
        free(text);
    }
    if (r.exit_code != BOOT_OK)
        log_warn("boot phase finished with status %d (see homeport(8)); serving anyway",
                 r.exit_code);
    boot_report_free(&r);
}

static bool idle_for_exit(void)
{
    bool in_use = false;

    for (size_t i = 0; i < S.nusers; i++) {
        struct user *u = S.users[i];
        if (u->running || u->head || u->su.home == HOME_PREPARED)
            return false; /* work in flight, or a prepared home to release */
        in_use |= u->su.sessions > 0;
    }
    return !in_use;
}

/* Past the deadline the agent goes whatever runs: jobs finish on their
 * own, homes stay served by their workers, records stay for the next
 * agent. */
static bool must_exit(int64_t now)
{
    return S.exit_now || (S.stopping && (idle_for_exit() || now >= S.stop_deadline));
}

static void say_goodbye(void)
{
    for (size_t i = 0; i < S.nusers; i++) {
        struct user *u = S.users[i];
        if (u->su.home != HOME_NONE)
            log_notice("the home of %s stays mounted (%d session%s), served by its worker, for "
                       "the next agent to re-adopt",
                       u->su.name, u->su.sessions, u->su.sessions == 1 ? "" : "s");
        if (u->running)
            log_warn("%s of %s was still running at exit: it finishes on its own",
                     proto_verb_name(u->running->req.verb), u->su.name);
    }
}

/* Take the agent lock at once, or refuse.  A predecessor that was just
 * killed (SIGKILL, a crash) holds the lock for as long as its exit takes,
 * and an init system or a script that restarts it may come sooner than
 * that: a lock held by an agent on its way out, or by one the pid file
 * does not name, is waited for, EXITING_MS at most.  *other: the running
 * agent by its pid file (boot_running_agent: not one that is exiting), or
 * 0. */
static int take_lock(pid_t *other)
{
    for (int waited = 0;; waited += 10) {
        if (flock(S.lockfd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        *other = boot_running_agent(S.cfg.run_dir);
        if (*other || waited >= EXITING_MS) /* a live agent, or too long */
            return -EWOULDBLOCK;
        clock_sleep_ms(10);
    }
}

/* Ask the running agent to hand over (SIGUSR2: it exits at once, leaving
 * its homes to be re-adopted) and wait for its lock. */
static int take_over(pid_t other)
{
    if (other) {
        log_notice("replacing the running agent (pid %d)", (int)other);
        kill(other, SIGUSR2);
    }
    for (int i = 0; i < HANDOVER_MS / 50; i++) {
        if (flock(S.lockfd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        clock_sleep_ms(50);
    }
    return -ETIMEDOUT;
}

static int daemonize(void)
{
    int p[2];
    pid_t pid;
    char buf[600];

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0) { /* wait for the agent to say it is ready (or why not) */
        ssize_t n;
        close(p[1]);
        n = read(p[0], buf, sizeof buf - 1);
        if (n < 0)
            n = 0;
        buf[n] = '\0';
        if (strcmp(buf, "ready") == 0)
            _exit(0);
        fprintf(stderr, "homeport agent: %s\n", n ? buf : "exited before it was ready");
        _exit(1);
    }
    close(p[0]);
    S.notify_fd = p[1];
    S.detached = true;
    return spawn_detach(S.cfg.log_target);
}

/* The agent's lock: taken, or handed over by the running agent
 * (--replace).  0, or start_failed's 1. */
static int lock_agent(const struct server_opts *o)
{
    char path[PATH_MAX];
    pid_t other = 0;

    snprintf(path, sizeof path, "%s/agent.lock", S.cfg.run_dir);
    S.lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (S.lockfd < 0)
        return start_failed("cannot open %s: %s", path, strerror(errno));
    if (take_lock(&other) == 0)
        return 0;
    if (!o->replace && other)
        return start_failed("another homeport agent is running (pid %d)", (int)other);
    if (!o->replace)
        return start_failed("another homeport agent holds %s", path);
    if (take_over(other) < 0)
        return start_failed("the running agent (pid %d) did not hand over within %d s", (int)other,
                            HANDOVER_MS / 1000);
    return 0;
}

/* Signals through the self-pipe, before anything slow: a SIGHUP or SIGTERM
 * during the boot phase waits for the loop instead of killing the agent. */
static int catch_signals(void)
{
    int sp[2];

    if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    S.sigr = sp[0];
    S.sigw = sp[1];
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sa.sa_flags |= SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Workers outlive the jobs that start them: be their parent then, so
     * that they are reaped here rather than by whatever init this is. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        log_debug("cannot become a child subreaper: %s", strerror(errno));
    return 0;
}

/* What this machine holds already: the boot phase, the homes and roaming
 * profiles of a previous agent, the password store, warm connections, and
 * the expected user's cache. */
static void adopt_all(void)
{
    int lock_err, rc;
    char expected[HP_USER_NAME_MAX + 2]; /* a longer name read is invalid, not cut to one */

    run_boot_phase();
    home_foreach(&S.cfg, adopt, NULL);
    roam_foreach(&S.cfg, adopt_roaming, NULL);
    rc = secret_init(&lock_err);
    if (rc < 0)
        log_warn("cannot map memory for passwords: %s", strerror(-rc));
    else if (lock_err)
        log_warn("cannot lock the memory for passwords: %s", strerror(lock_err));
    S.warm = warm_new(&S.cfg, S.cfg.warm_connections);
    S.spares = spare_new(&S.cfg, S.cfg.spare_workers, true);
    if (session_expected_user(&S.cfg, expected, sizeof expected)) {
        struct user *u = find_user(expected, true);
        if (u && u->su.home == HOME_NONE)
            enqueue_own(u, PV_CACHE); /* runs while the rest starts */
    }
}

/* Everything before the loop: the lock, the background, signals,
 * adoption, the socket.  0, or start_failed's 1. */
static int start_up(struct hp_config *cfg, const struct server_opts *o)
{
    char why[HP_WHY_MAX];
    int rc;

    S.cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    S.o = o;
    if ((rc = tree_mkdirs(S.cfg.run_dir, 0755)) < 0)
        return start_failed("cannot create run_dir %s: %s", S.cfg.run_dir, strerror(-rc));
    if (snprintf(S.sock_path, sizeof S.sock_path, "%s/agent.sock", S.cfg.run_dir) >=
        (int)sizeof S.sock_path)
        return start_failed("run_dir %s is too long for a socket path", S.cfg.run_dir);
    snprintf(S.pid_path, sizeof S.pid_path, "%s/agent.pid", S.cfg.run_dir);
    if ((rc = lock_agent(o)) != 0)
        return rc;
    /* in the background only now: the lock (inherited) is ours, and what
     * went wrong so far went to the terminal */
    if (!o->foreground && (rc = daemonize()) < 0)
        return start_failed("cannot start in the background: %s", strerror(-rc));
    if (http_global_init() < 0)
        return start_failed("cannot initialize libcurl");
    if (remote_setup(&S.cfg, why, sizeof why) < 0 || tls_setup(&S.cfg, why, sizeof why) < 0)
        return start_failed("%s", why);
    if ((rc = catch_signals()) < 0)
        return start_failed("pipe: %s", strerror(-rc));
    if (S.cfg.home_mode == HP_HOME_NBD && (rc = home_stage_private(&S.cfg)) < 0)
        log_warn("cannot make %s/stage a private mount (%s): homes are bound onto their home "
                 "dirs instead of moved, a little slower",
                 S.cfg.run_dir, strerror(-rc));
    adopt_all();
    if ((rc = open_socket()) < 0)
        return start_failed("cannot listen on %s: %s", S.sock_path, strerror(-rc));
    if ((rc = write_pid_file()) < 0)
        return start_failed("cannot write %s: %s", S.pid_path, strerror(-rc));
    log_notice("agent ready (pid %d) on %s", (int)getpid(), S.sock_path);
    notify_parent("ready");
    return 0;
}

/* Leases over and unmounts to retry: queued.  The earliest still ahead
 * lowers *next. */
static void due_releases(int64_t now, int64_t *next)
{
    for (size_t i = 0; i < S.nusers; i++) {
        struct user *u = S.users[i];
        int64_t due = 0;
        if (u->lease_end)
            due = u->lease_end;
        if (u->retry_at && (!due || u->retry_at < due))
            due = u->retry_at;
        if (!due || u->running || u->head)
            continue;
        if (due <= now) {
            u->lease_end = u->retry_at = 0;
            log_info("%s: %s", u->su.name,
                     u->su.home == HOME_PREPARED ? "lease over: releasing the prepared home"
                                                 : "retrying the unmount");
            enqueue_own(u, PV_RELEASE);
        } else if (due < *next) {
            *next = due;
        }
    }
}

/* Run what is due at now: releases, expired passwords, sync passes in
 * the session (home_mode = sync), presence heartbeats.  Returns when the
 * next one is due. */
static int64_t due_timers(int64_t now)
{
    int64_t next = now + 60000;

    due_releases(now, &next);
    secret_expire(now);
    for (size_t i = 0; i < S.nusers; i++) {
        struct user *u = S.users[i];
        if (!u->next_sync || u->su.home != HOME_MOUNTED || S.stopping)
            continue;
        if (u->next_sync <= now && !u->running && !u->head) {
            u->next_sync = now + S.cfg.sync_interval_ms;
            enqueue_own(u, PV_SYNC);
        }
        if (u->next_sync < next)
            next = u->next_sync;
    }
    if (remote_presence_on(&S.cfg)) {
        if (now >= S.next_heartbeat) {
            send_heartbeats();
            S.next_heartbeat = now + S.cfg.heartbeat_interval_ms;
        }
        if (S.next_heartbeat < next)
            next = S.next_heartbeat;
    }
    return next;
}

/* What the loop polls: the signal pipe, the socket, the clients, the
 * running jobs' pipes, the warm connections, in this order. */
struct poll_set {
    struct pollfd *fds;
    size_t cap, n, first_client, first_job, first_warm, first_spare;
};

static int poll_set_build(struct poll_set *ps, int64_t now, int64_t *next)
{
    size_t njobs = 0, n = 0;

    for (size_t i = 0; i < S.nusers; i++)
        njobs += S.users[i]->running != NULL;
    size_t nwarm = (size_t)(S.cfg.nservers + 1) * S.cfg.warm_connections + S.cfg.spare_workers;
    if (ps->cap < 2 + S.nclients + njobs + nwarm) {
        size_t cap = 2 + S.nclients + njobs + nwarm + 64;
        struct pollfd *nf = realloc(ps->fds, cap * sizeof *nf);
        if (!nf)
            return -ENOMEM;
        ps->fds = nf;
        ps->cap = cap;
    }
    ps->fds[n++] = (struct pollfd){.fd = S.sigr, .events = POLLIN};
    ps->fds[n++] = (struct pollfd){.fd = S.lfd, .events = POLLIN};
    ps->first_client = n;
    for (size_t i = 0; i < S.nclients; i++)
        ps->fds[n++] = (struct pollfd){.fd = S.clients[i]->fd, .events = POLLIN};
    ps->first_job = n;
    for (size_t i = 0; i < S.nusers; i++)
        if (S.users[i]->running && S.users[i]->running->rfd >= 0)
            ps->fds[n++] = (struct pollfd){.fd = S.users[i]->running->rfd, .events = POLLIN};
    ps->first_warm = n;
    n += warm_poll(S.warm, ps->fds + n, ps->cap - n, now, next);
    ps->first_spare = n;
    n += spare_poll(S.spares, ps->fds + n, ps->cap - n, now, next);
    ps->n = n;
    return 0;
}

/* The signals the self-pipe holds. */
static void handle_signals(void)
{
    unsigned char sig;

    while (read(S.sigr, &sig, 1) == 1) {
        if (sig == SIGCHLD) {
            reap_children();
        } else if (sig == SIGHUP) {
            reload();
        } else if (sig == SIGUSR2) {
            log_notice("handing over to a new agent: exiting now");
            S.exit_now = true;
        } else if (!S.stopping) {
            S.stopping = true;
            S.stop_deadline = clock_ms() + S.cfg.shutdown_timeout_ms;
            log_notice("signal %d: shutting down (releasing prepared homes, waiting up "
                       "to %u ms for open sessions)",
                       sig, S.cfg.shutdown_timeout_ms);
            for (size_t i = 0; i < S.nusers; i++)
                if (S.users[i]->su.home == HOME_PREPARED && S.users[i]->su.sessions == 0)
                    S.users[i]->lease_end = clock_ms();
        } else {
            log_notice("signal %d again: exiting now", sig);
            S.exit_now = true;
        }
    }
}

/* Jobs first: a finished job frees its client for the next request.  The
 * ready ones are collected before any is handled (handling changes the
 * lists).  Then the clients' requests, then new clients. */
static void dispatch(const struct poll_set *ps)
{
    const struct pollfd *fds = ps->fds;
    struct job *ready[256];
    struct client *readable[MAX_CLIENTS];
    size_t nready = 0, nread = 0;

    for (size_t k = ps->first_job; k < ps->first_warm && nready < 256; k++) {
        if (!fds[k].revents)
            continue;
        for (size_t i = 0; i < S.nusers; i++)
            if (S.users[i]->running && S.users[i]->running->rfd == fds[k].fd)
                ready[nready++] = S.users[i]->running;
    }
    for (size_t k = 0; k < nready; k++)
        job_readable(ready[k]);
    for (size_t k = ps->first_client; k < ps->first_job; k++)
        if (fds[k].revents)
            for (size_t i = 0; i < S.nclients; i++)
                if (S.clients[i]->fd == fds[k].fd)
                    readable[nread++] = S.clients[i];
    for (size_t k = 0; k < nread; k++)
        handle_request(readable[k]);
    if (fds[1].revents)
        accept_clients();
}

static void shut_down(void)
{
    say_goodbye();
    warm_free(S.warm);
    spare_free(S.spares);
    while (S.nclients)
        drop_client(S.clients[0]);
    close(S.lfd);
    unlink(S.sock_path);
    unlink(S.pid_path);
    log_notice("agent stopped");
    remote_cleanup();
    config_free(&S.cfg);
}

int server_run(struct hp_config *cfg, const struct server_opts *o)
{
    struct poll_set ps = {.cap = 64};
    int rc = start_up(cfg, o);

    if (rc != 0)
        return rc;
    ps.fds = malloc(ps.cap * sizeof *ps.fds);
    if (!ps.fds)
        return start_failed("out of memory");
    for (;;) {
        int64_t now = clock_ms(), next = due_timers(now);
        if (must_exit(now))
            break;
        if (S.stopping && S.stop_deadline < next)
            next = S.stop_deadline;
        if (poll_set_build(&ps, now, &next) < 0) {
            log_err("out of memory");
            break;
        }
        int timeout = next - now > INT_MAX ? INT_MAX : (int)(next - now);
        if (poll(ps.fds, ps.n, timeout < 0 ? 0 : timeout) < 0 && errno != EINTR) {
            log_err("poll: %s", strerror(errno));
            break;
        }
        warm_events(S.warm, ps.fds + ps.first_warm, ps.first_spare - ps.first_warm, clock_ms());
        spare_events(S.spares, ps.fds + ps.first_spare, ps.n - ps.first_spare, clock_ms(), S.warm);
        if (ps.fds[0].revents)
            handle_signals();
        dispatch(&ps);
    }
    shut_down();
    free(ps.fds);
    return 0;
}
