#include "textfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int textfile_read_line(const char *path, char *buf, size_t len, int nofollow)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | (nofollow ? O_NOFOLLOW : 0));
    ssize_t n;

    if (fd < 0)
        return -errno;
    do
        n = read(fd, buf, len - 1);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    close(fd);
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return n == 0 ? -ENODATA : 0;
}

int textfile_read_private(const char *path, const char *what, char *buf, size_t cap, size_t *n,
                          char *why, size_t whylen)
{
    struct stat st;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY), e;

    *n = 0;
    if (fd < 0) {
        e = errno;
        snprintf(why, whylen, "cannot read the %s %s: %s", what, path, strerror(e));
        return -e;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(why, whylen, "%s %s: not a regular file", what, path);
        return -EINVAL;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        snprintf(why, whylen,
                 "%s %s has mode %04o: group and others must not have access (chmod 600 %s)", what,
                 path, (unsigned)(st.st_mode & 07777), path);
        return -EPERM;
    }
    if (st.st_uid != geteuid()) {
        close(fd);
        snprintf(why, whylen, "%s %s belongs to uid %u, not to uid %u that runs homeport", what,
                 path, (unsigned)st.st_uid, (unsigned)geteuid());
        return -EPERM;
    }
    for (;;) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            e = errno;
            close(fd);
            snprintf(why, whylen, "%s %s: %s", what, path, strerror(e));
            return -e;
        }
        got += (size_t)r;
        if (r == 0 || got == cap)
            break;
    }
    close(fd);
    if (got == cap) {
        snprintf(why, whylen, "%s %s: longer than %zu bytes", what, path, cap - 1);
        return -EFBIG;
    }
    buf[got] = '\0';
    *n = got;
    return 0;
}

/* fsync the directory path is in. */
static int sync_dir(const char *path)
{
    char dir[4400];
    const char *slash = strrchr(path, '/');
    int fd, rc = 0;

    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if ((size_t)snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path) >= sizeof dir)
        return -ENAMETOOLONG;
    fd = open(dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    return rc;
}

int textfile_replace(const char *path, const void *data, size_t len, unsigned mode, int flags)
{
    char tmp[4400];
    const char *p = data;
    size_t off = 0;
    int fd, rc = 0;

    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= sizeof tmp)
        return -ENAMETOOLONG;
    fd = open(tmp,
              O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
                  (flags & TEXTFILE_EXCL ? O_EXCL : O_TRUNC),
              mode);
    if (fd < 0)
        return -errno; /* with TEXTFILE_EXCL, an EEXIST temp file is someone else's */
    while (rc == 0 && off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno != EINTR)
            rc = -errno;
        else if (w > 0)
            off += (size_t)w;
    }
    if (rc == 0 && !(flags & TEXTFILE_NO_SYNC) && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    return flags & TEXTFILE_SYNC_DIR ? sync_dir(path) : 0;
}

int textfile_write(const char *path, const char *text, unsigned mode)
{
    return textfile_replace(path, text, strlen(text), mode, 0);
}

char *textfile_one_line(char *s)
{
    for (char *c = s; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    return s;
}

void textfile_kv_add(struct textfile_kv *kv, const char *key, const char *fmt, ...)
{
    va_list ap;
    char *value = NULL;
    int n;

    if (kv->err)
        return;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): false positive, ap is started */
    n = vasprintf(&value, fmt, ap);
    va_end(ap);
    if (n < 0) {
        kv->err = -ENOMEM;
        return;
    }
    textfile_one_line(value);
    size_t need = kv->len + strlen(key) + 1 + (size_t)n + 2;
    if (need > kv->cap) {
        size_t cap = need * 2;
        char *b = realloc(kv->buf, cap);
        if (!b) {
            free(value);
            kv->err = -ENOMEM;
            return;
        }
        kv->buf = b;
        kv->cap = cap;
    }
    kv->len += (size_t)snprintf(kv->buf + kv->len, kv->cap - kv->len, "%s=%s\n", key, value);
    free(value);
}

int textfile_kv_replace(struct textfile_kv *kv, const char *path, unsigned mode)
{
    int rc = kv->err ? kv->err : textfile_replace(path, kv->buf ? kv->buf : "", kv->len, mode, 0);

    free(kv->buf);
    *kv = (struct textfile_kv){0};
    return rc;
}

/* The next line of f into line (len bytes, the newline dropped), or false
 * at the end.  A line that does not fit is skipped whole (*line is then
 * ""), never read as several. */
static bool next_line(FILE *f, char *line, size_t len)
{
    size_t n = 0;
    int c;

    while ((c = getc(f)) != EOF && c != '\n')
        if (n < len)
            line[n++] = (char)c;
    if (c == EOF && n == 0)
        return false;
    if (n == len) /* too long (a NUL in a line only ends its value early) */
        n = 0;
    line[n] = '\0';
    return true;
}

int textfile_kv_read(const char *path, size_t maxline,
                     void (*fn)(void *ctx, const char *key, const char *value), void *ctx)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    char *line;

    if (!f) {
        int e = -errno;
        if (fd >= 0)
            close(fd);
        return e;
    }
    line = malloc(maxline + 1);
    if (!line) {
        fclose(f);
        return -ENOMEM;
    }
    while (next_line(f, line, maxline + 1)) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        fn(ctx, line, eq + 1);
    }
    free(line);
    fclose(f);
    return 0;
}
