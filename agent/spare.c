#include "spare.h"

#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "mounts.h"
#include "nbdkernel.h"
#include "tree.h"
#include "warm.h"
#include "worker.h"

#define MAX_SPARES 8
#define REFILL_MS 30    /* after a take: the account stage that took it has mostly run */
#define BACKOFF_MS 1000 /* after a spare ended untaken; doubling */
#define BACKOFF_MAX_MS 60000
#define YOUNG_MS 10000 /* a spare that ended sooner keeps the backoff growing */

enum spare_state { SP_DUE, SP_STARTING, SP_READY };

struct spare {
    enum spare_state state;
    pid_t pid;
    int ctl;
    int64_t due, started;
    char line[64]; /* what it said so far */
    size_t len;
};

struct spare_pool {
    const struct hp_config *cfg;
    const struct hp_server *srv;
    char root[PATH_MAX];
    unsigned n;
    unsigned backoff_ms;
    struct spare s[MAX_SPARES];
};

static void spare_dir(const struct spare_pool *p, pid_t pid, char *out, size_t len)
{
    if (snprintf(out, len, "%s/%d", p->root, (int)pid) >= (int)len)
        out[0] = '\0'; /* not reached: spare_new checked the root's length */
}

/* RUN_DIR/spare: what an earlier agent's spares left unmounted and
 * removed (clean: at the agent's start, not at a reload, when a job may
 * be about to move a spare's mount out), then a private mount of its
 * own.  0 or -errno. */
static int root_setup(const char *root, bool clean)
{
    char **names = NULL, path[PATH_MAX];
    size_t n = 0;
    int rc = tree_mkdirs(root, 0700);

    if (rc < 0)
        return rc;
    int fd = clean ? open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (fd >= 0 && tree_list_names(fd, &names, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/%s", root, names[i]);
            umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW); /* not mounted: EINVAL */
            if (rmdir(path) < 0)
                log_warn("cannot remove %s, left by an earlier agent's spare: %s", path,
                         strerror(errno));
        }
        tree_free_names(names, n);
    }
    if (fd >= 0)
        close(fd);
    if (mount(NULL, root, NULL, MS_PRIVATE, NULL) == 0)
        return 0; /* a mount point already (an earlier agent's) */
    return errno == EINVAL ? mounts_bind_private(root) : -errno;
}

struct spare_pool *spare_new(const struct hp_config *cfg, unsigned want, bool clean)
{
    const struct hp_server *srv = config_home_server(cfg);
    struct spare_pool *p;
    int rc;

    if (!want || !srv || cfg->home_mode != HP_HOME_NBD || cfg->locator != HP_LOCATOR_STATIC ||
        cfg->attach == HP_ATTACH_KERNEL || (cfg->attach == HP_ATTACH_AUTO && nbdkernel_available()))
        return NULL;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cfg = cfg;
    p->srv = srv;
    p->n = want > MAX_SPARES ? MAX_SPARES : want;
    p->backoff_ms = BACKOFF_MS;
    if (snprintf(p->root, sizeof p->root, "%s/spare", cfg->run_dir) >= (int)sizeof p->root - 16)
        rc = -ENAMETOOLONG;
    else
        rc = root_setup(p->root, clean);
    if (rc < 0) {
        log_warn("cannot make %s a private mount (%s): no spare workers, each login starts "
                 "its own",
                 p->root, strerror(-rc));
        free(p);
        return NULL;
    }
    int64_t now = clock_ms();
    for (unsigned i = 0; i < p->n; i++)
        p->s[i] = (struct spare){.state = SP_DUE, .ctl = -1, .due = now};
    return p;
}

/* s ended, is dropped or was taken: close it, clean its dir (untaken),
 * and make it due again after REFILL_MS (taken) or the backoff. */
static void forget(struct spare_pool *p, struct spare *s, int64_t now, bool taken)
{
    char dir[PATH_MAX];

    if (s->ctl >= 0)
        close(s->ctl);
    if (!taken && s->pid > 0) {
        spare_dir(p, s->pid, dir, sizeof dir);
        umount2(dir, MNT_DETACH | UMOUNT_NOFOLLOW); /* a killed spare leaves it */
        rmdir(dir);
    }
    if (!taken) { /* (also a spare that could not be started: pid 0) */
        if (now - s->started < YOUNG_MS) {
            s->due = now + p->backoff_ms;
            p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
        } else {
            s->due = now + BACKOFF_MS;
            p->backoff_ms = BACKOFF_MS;
        }
    } else {
        s->due = now + REFILL_MS;
    }
    *s = (struct spare){.state = SP_DUE, .ctl = -1, .due = s->due};
}

void spare_free(struct spare_pool *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->n; i++)
        if (p->s[i].ctl >= 0)
            close(p->s[i].ctl); /* it unmounts and ends */
    free(p);
}

size_t spare_poll(struct spare_pool *p, struct pollfd *fds, size_t max, int64_t now, int64_t *next)
{
    size_t k = 0;

    if (!p)
        return 0;
    for (unsigned i = 0; i < p->n; i++) {
        struct spare *s = &p->s[i];
        if (s->state == SP_DUE) {
            if (s->due < *next)
                *next = s->due < now ? now : s->due;
        } else if (k < max) {
            fds[k++] = (struct pollfd){.fd = s->ctl, .events = POLLIN};
        }
    }
    return k;
}

static void start_one(struct spare_pool *p, struct spare *s, int64_t now, struct warm_pool *warm)
{
    struct nbd_handle *h = warm ? warm_take(warm, p->srv, now) : NULL;
    int rc;

    if (!h && warm && p->cfg->warm_connections) {
        s->due = now + REFILL_MS; /* the pool fills first: a spare without one connects late */
        return;
    }
    rc = worker_spare_start(p->cfg, p->srv, p->root, h, &s->pid, &s->ctl);
    if (h)
        nbd_close(h); /* the spare has it */
    if (rc < 0) {
        log_warn("cannot start a spare worker: %s", strerror(-rc));
        s->pid = 0;
        s->started = now; /* the backoff grows while starts keep failing */
        forget(p, s, now, false);
        return;
    }
    s->state = SP_STARTING;
    s->started = now;
    s->len = 0;
}

/* What a spare said: "spare" (ready), or "err ..." and EOF (it ended). */
static void readable(struct spare_pool *p, struct spare *s, int64_t now)
{
    ssize_t r = read(s->ctl, s->line + s->len, sizeof s->line - 1 - s->len);

    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r > 0 && s->state == SP_STARTING) {
        s->len += (size_t)r;
        s->line[s->len] = '\0';
        if (strcmp(s->line, "spare\n") == 0) {
            s->state = SP_READY;
            log_debug("spare worker %d ready", (int)s->pid);
            return;
        }
    }
    if (r > 0)
        log_warn("spare worker %d: %.*s", (int)s->pid, (int)strcspn(s->line, "\n"), s->line);
    else
        log_info("spare worker %d ended", (int)s->pid);
    forget(p, s, now, false);
}

void spare_events(struct spare_pool *p, const struct pollfd *fds, size_t n, int64_t now,
                  struct warm_pool *warm)
{
    if (!p)
        return;
    for (size_t k = 0; k < n; k++) {
        if (!fds[k].revents)
            continue;
        for (unsigned i = 0; i < p->n; i++)
            if (p->s[i].state != SP_DUE && p->s[i].ctl == fds[k].fd)
                readable(p, &p->s[i], now);
    }
    for (unsigned i = 0; i < p->n; i++)
        if (p->s[i].state == SP_DUE && p->s[i].due <= now)
            start_one(p, &p->s[i], now, warm);
}

int spare_take(struct spare_pool *p, struct home_ahead *out, int64_t now)
{
    if (!p)
        return -ENOENT;
    for (unsigned i = 0; i < p->n; i++) {
        struct spare *s = &p->s[i];
        if (s->state != SP_READY)
            continue;
        out->spare = s->pid;
        out->spare_ctl = s->ctl;
        out->adopted = false;
        spare_dir(p, s->pid, out->spare_dir, sizeof out->spare_dir);
        s->ctl = -1; /* the caller's now */
        forget(p, s, now, true);
        return 0;
    }
    return -ENOENT;
}

int spare_send(const struct hp_config *cfg, const struct home_ahead *a, const char *user)
{
    char export[256], stats[PATH_MAX], layout[PATH_MAX];

    if (config_export_name(cfg, user, export, sizeof export) < 0 ||
        home_worker_files(cfg, user, stats, sizeof stats, layout, sizeof layout) < 0)
        return -ENAMETOOLONG;
    return worker_spare_take(a->spare_ctl, export, stats, layout[0] ? layout : NULL);
}

int spare_status(const char *run_dir, FILE *out, bool json)
{
    char root[PATH_MAX], **names = NULL;
    size_t n = 0;
    int shown = 0;

    snprintf(root, sizeof root, "%s/spare", run_dir);
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0 && tree_list_names(fd, &names, &n) < 0)
        n = 0;
    if (fd >= 0)
        close(fd);
    if (json)
        fputs(", \"spare_workers\": [", out);
    for (size_t i = 0; i < n; i++) {
        char *end;
        long pid = strtol(names[i], &end, 10);
        if (*end || pid <= 1 || pid > INT32_MAX || !worker_alive((pid_t)pid))
            continue; /* not a spare's, or one that is gone */
        if (json)
            fprintf(out, "%s%ld", shown ? ", " : "", pid);
        else
            fprintf(out, "%s%ld", shown ? ", " : "spare workers: pid ", pid);
        shown++;
    }
    tree_free_names(names, n);
    if (json)
        fprintf(out, "]");
    else if (shown)
        fprintf(out, " (waiting for a login, FUSE mounts under %s)\n", root);
    return shown;
}

size_t spare_ready(const struct spare_pool *p)
{
    size_t n = 0;

    for (unsigned i = 0; p && i < p->n; i++)
        n += p->s[i].state == SP_READY;
    return n;
}
