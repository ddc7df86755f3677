/* tree: remove what is inside a directory, safely.
 *
 * Used on the staging dir at boot, where anything may have been left,
 * including symlinks into /etc and mount points.  Removal never follows a
 * symlink (the link goes, never its target), never enters another
 * filesystem (a directory whose st_dev differs is skipped and counted), and
 * works on trees deeper than PATH_MAX with a bounded number of descriptors.
 */
#ifndef HOMEPORT_TREE_H
#define HOMEPORT_TREE_H

#include <limits.h>
#include <sys/types.h>

struct tree_stats {
    unsigned long removed;             /* entries removed */
    unsigned long skipped;             /* entries left: other filesystem or an error */
    int first_err;                     /* -errno of the first failure, 0 if none */
    char first_err_name[NAME_MAX + 1]; /* entry name of that failure */
};

/* Remove everything inside the directory open at dirfd (not dirfd itself).
 * Returns 0 when it is empty afterwards, else the first -errno (details in
 * st). */
int tree_empty(int dirfd, struct tree_stats *st);

/* Make path an empty directory owned by root with mode 0755: a missing one
 * is created; a symlink or other non-directory is removed and replaced; a
 * directory is emptied, removed and recreated.  Refuses (-EXDEV) when path is
 * itself a mount point.  Returns 0 or -errno. */
int tree_reset_dir(const char *path, struct tree_stats *st);

/* All names in the directory open at fd but "." and "..", in readdir order,
 * malloc'ed (free with tree_free_names).  fd stays open and is not moved.
 * 0 or -errno; on failure, nothing is returned (a partial listing of a
 * directory that could not be read whole must not pass for all of it). */
int tree_list_names(int fd, char ***names, size_t *n);
void tree_free_names(char **names, size_t n);

/* mkdir -p: create path and any missing parent with mode (umask applies).
 * An existing entry of any type is left as it is.  Returns 0 or -errno. */
int tree_mkdirs(const char *path, mode_t mode);

#endif
