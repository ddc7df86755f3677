/* textfile: read the first line of a small text file (sysfs attributes, pid
 * files, /proc/PID/comm), read a private file (a secret, a key), and write
 * a small file whole. */
#ifndef HOMEPORT_TEXTFILE_H
#define HOMEPORT_TEXTFILE_H

#include <stddef.h>

/* Read up to len-1 bytes of path into buf and cut at the first newline.
 * Never follows a symlink in the last component when nofollow is set.
 * Returns 0, -ENODATA for an empty file, or -errno. */
int textfile_read_line(const char *path, char *buf, size_t len, int nofollow);

/* Read a file only root may read (what: "secret", "TLS key", ... for the
 * messages): a regular file, not a symlink, owned by the effective uid,
 * without any group or other permission bit, at most cap-1 bytes.  buf
 * (cap bytes) receives it NUL-terminated, *n its length.  0 or -errno with
 * the reason and the fix in why (-EPERM: mode or owner, -EFBIG). */
int textfile_read_private(const char *path, const char *what, char *buf, size_t cap, size_t *n,
                          char *why, size_t whylen);

/* Replace path with the len bytes at data, atomically: written to
 * PATH.tmp.PID (mode, less the umask), fsynced, renamed over path.  A reader
 * sees the old file or the new one.  0 or -errno (the temp file removed;
 * path untouched unless only the directory's fsync failed). */
#define TEXTFILE_EXCL 1     /* a temp file already there: -EEXIST, left alone */
#define TEXTFILE_SYNC_DIR 2 /* fsync the directory after the rename: the rename is durable */
int textfile_replace(const char *path, const void *data, size_t len, unsigned mode, int flags);

/* textfile_replace of the string text, no flags. */
int textfile_write(const char *path, const char *text, unsigned mode);

#endif
