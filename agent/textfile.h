/* textfile: read the first line of a small text file (sysfs attributes, pid
 * files, /proc/PID/comm), read a private file (a secret, a key), write a
 * small file whole, and the key=value files under run_dir (the home and
 * roaming records, the workers' stats). */
#ifndef HOMEPORT_TEXTFILE_H
#define HOMEPORT_TEXTFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

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
 * PATH.tmp.PID (mode, less the umask), fsynced (not with TEXTFILE_NO_SYNC),
 * renamed over path.  A reader sees the old file or the new one.  0 or -errno (the temp file
 * removed; path untouched unless only the directory's fsync failed). */
#define TEXTFILE_EXCL 1     /* a temp file already there: -EEXIST, left alone */
#define TEXTFILE_SYNC_DIR 2 /* fsync the directory after the rename: the rename is durable */
#define TEXTFILE_NO_SYNC 4  /* no fsync of the data: a hint that may be lost in a crash */
int textfile_replace(const char *path, const void *data, size_t len, unsigned mode, int flags);

/* textfile_replace of the string text, no flags. */
int textfile_write(const char *path, const char *text, unsigned mode);

/* Turn the control characters of s (newline, tab, DEL...) into spaces: a
 * value that must stay on its line, say a reason quoting a server.
 * Returns s. */
char *textfile_one_line(char *s);

/* A key=value file being built: start from {0}, add lines, then
 * textfile_kv_replace (which frees it). */
struct textfile_kv {
    char *buf;
    size_t len, cap;
    int err; /* -ENOMEM from an add */
};

/* Add the line KEY=VALUE, VALUE formatted from fmt and made one line
 * (textfile_one_line). */
__attribute__((format(printf, 3, 4))) void textfile_kv_add(struct textfile_kv *kv, const char *key,
                                                           const char *fmt, ...);

/* Replace path with what kv holds (textfile_replace, no flags), and free
 * it.  0 or -errno. */
int textfile_kv_replace(struct textfile_kv *kv, const char *path, unsigned mode);

/* Call fn for each KEY=VALUE line of path, in order; lines without '='
 * are skipped, and so is a line longer than maxline bytes, whole (its
 * rest could look like a key).  0, or -errno when path cannot be opened. */
int textfile_kv_read(const char *path, size_t maxline,
                     void (*fn)(void *ctx, const char *key, const char *value), void *ctx);

#endif
