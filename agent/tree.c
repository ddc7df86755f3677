#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Directories deeper than this are handled by closing the parent's
 * descriptor on the way down and reopening it through ".." on the way up,
 * so descriptor use stays bounded whatever the depth. */
#define HELD_FDS 16

static void note_err(struct tree_stats *st, int err, const char *name)
{
    st->skipped++;
    if (!st->first_err) {
        st->first_err = err;
        snprintf(st->first_err_name, sizeof st->first_err_name, "%s", name);
    }
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

int tree_list_names(int fd, char ***names, size_t *n)
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d;
    struct dirent *de;
    size_t cap = 0;

    *names = NULL;
    *n = 0;
    if (dfd < 0)
        return -errno;
    d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -errno;
    }
    errno = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (*n == cap) {
            char **g = realloc(*names, (cap = cap ? cap * 2 : 16) * sizeof *g);
            if (!g)
                goto nomem;
            *names = g;
        }
        if (!((*names)[*n] = strdup(de->d_name)))
            goto nomem;
        (*n)++;
    }
    if (errno) { /* readdir failed: a partial list would look like deletions */
        int rc = -errno;
        closedir(d);
        tree_free_names(*names, *n);
        *names = NULL;
        *n = 0;
        return rc;
    }
    closedir(d);
    return 0;
nomem:
    closedir(d);
    tree_free_names(*names, *n);
    *names = NULL;
    *n = 0;
    return -ENOMEM;
}

void tree_free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Empty the directory open at *fd, whose identity is self.  *fd may be
 * closed and reopened (same directory, verified) when depth is large. */
static void empty_dir(int *fd, const struct stat *self, unsigned depth, struct tree_stats *st)
{
    char **names;
    size_t n;
    int rc = tree_list_names(*fd, &names, &n);

    if (rc < 0) {
        note_err(st, rc, ".");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i];
        struct stat cst, check;
        int cfd;

        if (*fd < 0) {
            note_err(st, -ESTALE, name);
            continue;
        }
        if (fstatat(*fd, name, &cst, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT)
                note_err(st, -errno, name);
            continue;
        }
        if (!S_ISDIR(cst.st_mode)) {
            if (unlinkat(*fd, name, 0) == 0)
                st->removed++;
            else if (errno != ENOENT)
                note_err(st, -errno, name);
            continue;
        }
        if (cst.st_dev != self->st_dev) {
            note_err(st, -EXDEV, name); /* a mount point: never enter it */
            continue;
        }
        cfd = openat(*fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0) {
            note_err(st, -errno, name);
            continue;
        }
        if (fstat(cfd, &check) < 0 || !same_file(&check, &cst)) {
            close(cfd);
            note_err(st, -ESTALE, name); /* replaced under us */
            continue;
        }
        if (depth >= HELD_FDS) {
            close(*fd);
            *fd = -1;
        }
        empty_dir(&cfd, &cst, depth + 1, st);
        if (*fd < 0) {
            if (cfd >= 0)
                *fd = openat(cfd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (*fd >= 0 && (fstat(*fd, &check) < 0 || !same_file(&check, self))) {
                close(*fd);
                *fd = -1;
            }
        }
        if (cfd >= 0)
            close(cfd);
        if (*fd < 0) {
            note_err(st, -ESTALE, name); /* cannot find our way back up */
            continue;
        }
        if (unlinkat(*fd, name, AT_REMOVEDIR) == 0)
            st->removed++;
        else if (errno != ENOENT && errno != ENOTEMPTY)
            note_err(st, -errno, name);
        /* ENOTEMPTY: what stayed inside was counted already */
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int tree_empty(int dirfd, struct tree_stats *st)
{
    struct stat self;
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);

    if (fd < 0)
        return -errno;
    if (fstat(fd, &self) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    empty_dir(&fd, &self, 0, st);
    if (fd >= 0)
        close(fd);
    return st->first_err;
}

static int split_path(const char *path, char *parent, size_t plen, const char **base)
{
    const char *slash = strrchr(path, '/');

    if (path[0] != '/' || !slash || slash[1] == '\0')
        return -EINVAL;
    *base = slash + 1;
    if (!strcmp(*base, ".") || !strcmp(*base, ".."))
        return -EINVAL;
    if (slash == path)
        snprintf(parent, plen, "/");
    else
        snprintf(parent, plen, "%.*s", (int)(slash - path), path);
    return 0;
}

int tree_reset_dir(const char *path, struct tree_stats *st)
{
    char parent[PATH_MAX];
    const char *base;
    struct stat pst, sst;
    int pfd, fd = -1, rc;

    rc = split_path(path, parent, sizeof parent, &base);
    if (rc < 0)
        return rc;
    pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0)
        return -errno;
    if (fstat(pfd, &pst) < 0) {
        rc = -errno;
        goto out;
    }
    if (fstatat(pfd, base, &sst, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT) {
            rc = -errno;
            goto out;
        }
    } else if (!S_ISDIR(sst.st_mode)) {
        /* A symlink (maybe to /etc) or a file: the entry goes, not a target. */
        if (unlinkat(pfd, base, 0) < 0) {
            rc = -errno;
            goto out;
        }
        st->removed++;
    } else {
        if (sst.st_dev != pst.st_dev) {
            rc = -EXDEV;
            goto out;
        }
        fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            rc = -errno;
            goto out;
        }
        rc = tree_empty(fd, st);
        close(fd);
        fd = -1;
        if (rc < 0)
            goto out;
        if (unlinkat(pfd, base, AT_REMOVEDIR) < 0) {
            rc = -errno;
            goto out;
        }
    }
    if (mkdirat(pfd, base, 0700) < 0) {
        rc = -errno;
        goto out;
    }
    fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fchown(fd, 0, 0) < 0 || fchmod(fd, 0755) < 0) {
        rc = -errno;
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    close(pfd);
    return rc;
}

int tree_mkdirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);

    if (len >= sizeof buf)
        return -ENAMETOOLONG;
    /* Most calls find the parents there (a login makes the same dirs under
     * the run dir every time): one mkdir then, not one a component. */
    if (mkdir(path, mode) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return -errno;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        if (c == '\0')
            return 0;
        *p = c;
    }
}
