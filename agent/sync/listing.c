/* sync/listing: see listing.h. */
#include "listing.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "statedb.h"

int listing_escape(const char *s, size_t n, char *out, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c == 0x7f || c == '\\') {
            if (o + 4 >= len)
                return -ENAMETOOLONG;
            out[o++] = '\\';
            out[o++] = (char)('0' + (c >> 6));
            out[o++] = (char)('0' + ((c >> 3) & 7));
            out[o++] = (char)('0' + (c & 7));
        } else {
            if (o + 1 >= len)
                return -ENAMETOOLONG;
            out[o++] = (char)c;
        }
    }
    if (o >= len)
        return -ENAMETOOLONG;
    out[o] = '\0';
    return (int)o;
}

/* Unescape s in place: its new length, or -1 when an escape is bad or a
 * byte that must be escaped is not. */
static long unescape(char *s)
{
    size_t o = 0;

    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c == 0x7f)
            return -1;
        if (c == '\\') {
            unsigned v = 0;
            for (int k = 1; k <= 3; k++) {
                if (s[i + k] < '0' || s[i + k] > '7')
                    return -1;
                v = v * 8 + (unsigned)(s[i + k] - '0');
            }
            if (v > 0xff)
                return -1;
            c = (unsigned char)v;
            i += 3;
        }
        s[o++] = (char)c;
    }
    s[o] = '\0';
    return (long)o;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A decimal (or octal) number that fills the whole field. */
static bool number(const char *s, int base, unsigned long long max, unsigned long long *v)
{
    char *end;

    if (!*s || *s == '-' || *s == '+' || *s == ' ')
        return false;
    errno = 0;
    *v = strtoull(s, &end, base);
    return !*end && !errno && *v <= max;
}

static int parse_entry(char *f[6], struct listing_line *out)
{
    static const char types[] = {'f', SYNC_FILE, 'd', SYNC_DIR, 'l', SYNC_LINK, 's', SYNC_SPECIAL};
    unsigned long long mode, size, mtime;
    long n;

    memset(&out->n, 0, sizeof out->n);
    for (size_t i = 0; i < sizeof types; i += 2)
        if (f[0][0] == types[i] && !f[0][1])
            out->n.m.type = (uint8_t)types[i + 1];
    if (!out->n.m.type || !number(f[1], 8, 07777, &mode) || !number(f[2], 10, INT64_MAX, &size) ||
        !number(f[3], 10, UINT32_MAX, &mtime))
        return -EBADMSG;
    out->n.m.mode = (uint32_t)mode;
    out->n.m.size = size;
    out->n.m.mtime_ns = (int64_t)mtime * 1000000000;
    if (out->n.m.type == SYNC_LINK || (out->n.m.type == SYNC_FILE && strcmp(f[4], "-") != 0)) {
        if (strlen(f[4]) != (size_t)2 * STATEDB_DIGEST)
            return -EBADMSG;
        for (size_t i = 0; i < STATEDB_DIGEST; i++) {
            int hi = hexval(f[4][2 * i]), lo = hexval(f[4][2 * i + 1]);
            if (hi < 0 || lo < 0)
                return -EBADMSG;
            out->n.digest[i] = (unsigned char)(hi << 4 | lo);
        }
    } else if (strcmp(f[4], "-") != 0) {
        return -EBADMSG;
    }
    if ((n = unescape(f[5])) < 0 || !statedb_path_ok(f[5], (size_t)n))
        return -EBADMSG;
    out->kind = 'n';
    out->text = out->path = f[5];
    out->len = (size_t)n;
    return 0;
}

int listing_parse(char *line, struct listing_line *out)
{
    char *f[6];
    size_t nf = 0;
    unsigned long long v;
    long n;

    memset(out, 0, sizeof *out);
    if (!strcmp(line, LISTING_MAGIC)) {
        out->kind = 'H';
        return 0;
    }
    for (char *p = line; p; nf++) {
        if (nf == 6)
            return -EBADMSG; /* a seventh field */
        f[nf] = p;
        if ((p = strchr(p, ' ')))
            *p++ = '\0';
    }
    for (size_t i = 0; i < nf; i++)
        if (!*f[i])
            return -EBADMSG;
    if (nf == 2 && !strcmp(f[0], "END")) {
        if (!number(f[1], 10, ULONG_MAX, &v))
            return -EBADMSG;
        out->kind = 'Z';
        out->count = (unsigned long)v;
        return 0;
    }
    if ((nf == 2 && !strcmp(f[0], "B")) || (nf == 3 && !strcmp(f[0], "E"))) {
        char *t = f[nf - 1];
        if ((n = unescape(f[1])) < 0 || (size_t)n != strlen(f[1]) ||
            (!(n == 1 && f[1][0] == '.') && !statedb_path_ok(f[1], (size_t)n)))
            return -EBADMSG;
        out->path = f[1];
        if (nf == 3 && ((n = unescape(t)) < 0 || (size_t)n != strlen(t)))
            return -EBADMSG;
        out->kind = f[0][0];
        out->text = t;
        out->len = (size_t)n;
        return 0;
    }
    if (nf == 6)
        return parse_entry(f, out);
    return -EBADMSG;
}

int listing_put_text(FILE *f, char kind, const char *s)
{
    char esc[4 * STATEDB_PATH_MAX + 8];

    if (listing_escape(*s ? s : ".", *s ? strlen(s) : 1, esc, sizeof esc) < 0)
        return -EIO;
    return fprintf(f, "%c %s\n", kind, esc) < 0 ? -EIO : 0;
}

int listing_put_error(FILE *f, const char *path, const char *line)
{
    char p[4 * STATEDB_PATH_MAX + 8], t[4 * STATEDB_PATH_MAX + 8];

    if (listing_escape(*path ? path : ".", *path ? strlen(path) : 1, p, sizeof p) < 0 ||
        listing_escape(line, strlen(line), t, sizeof t) < 0)
        return -EIO;
    return fprintf(f, "E %s %s\n", p, t) < 0 ? -EIO : 0;
}

long long listing_sftp_mtime(long long mtime_ns)
{
    long long s = mtime_ns / 1000000000;

    if (mtime_ns % 1000000000 < 0)
        s--; /* tv_sec of a time before 1970 */
    return (long long)(uint32_t)s * 1000000000;
}

int listing_put_node(FILE *f, const char *path, const struct sync_node *n)
{
    static const char t[] = {'?', 'f', 'd', 'l', 's'};
    char esc[4 * STATEDB_PATH_MAX + 8], dig[2 * STATEDB_DIGEST + 1] = "-";

    if (listing_escape(path, strlen(path), esc, sizeof esc) < 0 || n->m.type < SYNC_FILE ||
        n->m.type > SYNC_SPECIAL)
        return -EIO;
    bool known = false;
    for (size_t i = 0; i < STATEDB_DIGEST; i++)
        known |= n->digest[i] != 0;
    if (n->m.type == SYNC_LINK || (n->m.type == SYNC_FILE && known))
        for (size_t i = 0; i < STATEDB_DIGEST; i++)
            snprintf(dig + 2 * i, 3, "%02x", n->digest[i]);
    return fprintf(f, "%c %o %" PRIu64 " %lld %s %s\n", t[n->m.type], (unsigned)n->m.mode,
                   n->m.size, listing_sftp_mtime(n->m.mtime_ns) / 1000000000, dig, esc) < 0
               ? -EIO
               : 0;
}

int listing_parse_request(char *line, char *dir, size_t dirlen, int *flags)
{
    size_t rl = strlen(LISTING_REQ);
    char *f = line + rl + 1, *d;
    long n;

    if (strncmp(line, LISTING_REQ " ", rl + 1) != 0 || !(d = strchr(f, ' ')) || d == f)
        return -EBADMSG;
    *flags = 0;
    if (!(d == f + 1 && *f == '-'))
        for (char *c = f; c < d; c++) {
            int bit = *c == 'n' ? LISTING_DRY_RUN : *c == 'h' ? LISTING_HASH : 0;
            if (!bit || (*flags & bit))
                return -EBADMSG;
            *flags |= bit;
        }
    d++;
    if ((n = unescape(d)) <= 0 || (size_t)n != strlen(d) || (size_t)n >= dirlen)
        return -EBADMSG;
    memcpy(dir, d, (size_t)n + 1);
    return 0;
}

/* ---- running the lister -------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Start argv (the pipes are close-on-exec but for the three it gets, as
 * every descriptor of the agent is) with its stdin, stdout and stderr on
 * three pipes: fds[0]
 * written to its stdin, fds[1] its stdout, fds[2] its stderr. */
static int start(char *const argv[], int fds[3], pid_t *pid)
{
    int p[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}}, rc = 0;

    for (int i = 0; i < 3 && rc == 0; i++)
        if (pipe2(p[i], O_CLOEXEC) < 0)
            rc = -errno;
    if (rc == 0 && (*pid = fork()) < 0)
        rc = -errno;
    if (rc == 0 && *pid == 0) { /* only async-signal-safe calls: the engine has threads */
        if (dup2(p[0][0], 0) < 0 || dup2(p[1][1], 1) < 0 || dup2(p[2][1], 2) < 0)
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    for (int i = 0; i < 3; i++) {
        int keep = i == 0 ? 1 : 0; /* ours: the write end of stdin, the read ends */
        if (p[i][!keep] >= 0)
            close(p[i][!keep]);
        fds[i] = p[i][keep];
        if (rc < 0 && fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    return rc;
}

/* Read fds[1] into *buf and fds[2] into err until both are at EOF or
 * nothing came for idle_ms. */
static int drain(int fds[3], unsigned idle_ms, char **buf, size_t *len, char *err, size_t errlen)
{
    size_t cap = 0, el = 0;
    int64_t last = now_ms();

    *buf = NULL;
    *len = 0;
    while (fds[1] >= 0 || fds[2] >= 0) {
        struct pollfd pf[2] = {{fds[1], POLLIN, 0}, {fds[2], POLLIN, 0}};
        int64_t left = last + idle_ms - now_ms();
        int r = left <= 0 ? 0 : poll(pf, 2, (int)left);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -ETIMEDOUT;
        last = now_ms();
        for (int i = 0; i < 2; i++) {
            int *fd = &fds[i + 1];
            char tmp[512], *dst = tmp;
            size_t room = sizeof tmp;
            ssize_t got;
            if (*fd < 0 || !pf[i].revents)
                continue;
            if (i == 0) {
                if (cap - *len < 65536) {
                    char *g = realloc(*buf, cap ? 2 * cap : 262144);
                    if (!g)
                        return -ENOMEM;
                    *buf = g;
                    cap = cap ? 2 * cap : 262144;
                }
                dst = *buf + *len;
                room = cap - *len - 1;
            }
            got = read(*fd, dst, room);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                close(*fd);
                *fd = -1;
            } else if (i == 0) {
                *len += (size_t)got;
            } else if (el + 1 < errlen) {
                size_t k = (size_t)got < errlen - el - 1 ? (size_t)got : errlen - el - 1;
                memcpy(err + el, tmp, k);
                el += k;
            }
        }
    }
    if (*buf)
        (*buf)[*len] = '\0';
    err[el] = '\0';
    return 0;
}

int listing_fetch(char *const argv[], const char *dir, int flags, unsigned idle_ms, char **buf,
                  size_t *len, char *why, size_t whylen)
{
    char req[4 * STATEDB_PATH_MAX + 64], err[1024] = "";
    int fds[3], rc, status = 0;
    size_t rl;
    pid_t pid = -1;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;

    rl = (size_t)snprintf(req, sizeof req, "%s %s%s%s ", LISTING_REQ, flags ? "" : "-",
                          flags & LISTING_DRY_RUN ? "n" : "", flags & LISTING_HASH ? "h" : "");
    if (listing_escape(*dir ? dir : ".", *dir ? strlen(dir) : 1, req + rl, sizeof req - rl - 1) <
        0) {
        snprintf(why, whylen, "the remote directory's name is too long");
        return -ENAMETOOLONG;
    }
    rl = strlen(req); /* the escape left room for it */
    req[rl] = '\n';
    req[rl + 1] = '\0';
    *buf = NULL;
    *len = 0;
    if ((rc = start(argv, fds, &pid)) < 0) {
        snprintf(why, whylen, "cannot run %s: %s", argv[0], strerror(-rc));
        return rc;
    }
    sigaction(SIGPIPE, &ign, &old);
    rl++;
    if (write(fds[0], req, rl) != (ssize_t)rl)
        snprintf(err, sizeof err, "it did not read the request");
    sigaction(SIGPIPE, &old, NULL);
    close(fds[0]);
    rc = drain(fds, idle_ms, buf, len, err + strlen(err), sizeof err - strlen(err));
    for (int i = 1; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (rc < 0)
        kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (rc == 0)
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : 256 + WTERMSIG(status);
    if (rc != 0) {
        char *nl = strchr(err, '\n');
        if (nl)
            *nl = '\0';
        if (rc == -ETIMEDOUT)
            snprintf(why, whylen, "%s said nothing for %u s", argv[0], idle_ms / 1000);
        else if (rc < 0)
            snprintf(why, whylen, "%s: %s", argv[0], strerror(-rc));
        else
            snprintf(why, whylen, "%s exit %d%s%s", argv[0], rc > 255 ? rc - 256 : rc,
                     rc > 255 ? " (signal)" : "", err[0] ? ": " : "");
        if (rc > 0 && err[0])
            snprintf(why + strlen(why), whylen - strlen(why), "%s", err);
        free(*buf);
        *buf = NULL;
        *len = 0;
    }
    return rc;
}
