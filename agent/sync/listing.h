/* sync/listing: the remote tree listed on the server, by `homeport
 * sync-list` at the far end of an ssh session, instead of walked through
 * the sshfs mount (one round trip for the whole tree instead of one a
 * directory and one an entry).
 *
 * The listing is what the engine's walk would find through sshfs: the same
 * walk (engine.c) run on the server's own file system, every path in path
 * order (statedb_path_cmp), the root's .homeport-trash and leftover
 * temporary files left out, with the metadata as SFTP version 3 carries it
 * to sshfs: permission bits, size, and the mtime in whole seconds (the
 * 32-bit unsigned seconds of the protocol).  Exclusions are applied by the
 * reader.
 *
 * The request, one line on the lister's stdin (nothing of it is ever given
 * to a shell):
 *
 *   HPLIST-REQ 1 FLAGS DIR
 *
 * FLAGS: "-" for none, else some of "n" (a dry run: leftover temporary
 * files are not removed) and "h" (the files' SHA-256 too: a pass without a
 * state database compares every file present on both sides, and the server
 * reads its own disk faster than sshfs can); DIR: the tree, escaped as
 * below, relative to the session's working directory (the login's home on
 * the server), "." for that.
 *
 * The answer on its stdout, one line each, fields separated by one space:
 *
 *   HPLIST 1                              first line
 *   T MODE SIZE MTIME DIGEST PATH         an entry: T is f (file), d (dir),
 *                                         l (symlink), s (socket, fifo,
 *                                         device); MODE octal permission
 *                                         bits; SIZE bytes (a symlink's:
 *                                         its target's length); MTIME whole
 *                                         seconds; DIGEST the SHA-256 of a
 *                                         symlink's target in hex, of a
 *                                         file's content when asked ("h"),
 *                                         else "-"
 *   B PATH                                a directory, or an entry, that
 *                                         could not be read: nothing at or
 *                                         below it is decided
 *   E PATH TEXT                           an error of the walk at PATH (its
 *                                         line, "error PATH: what"), counted
 *                                         as one unless PATH is excluded
 *   END COUNT                             last line: COUNT entry lines
 *
 * PATH and TEXT are escaped: every byte below 0x21, 0x7f and '\' as '\'
 * and three octal digits, the rest as is.  A listing without its END line,
 * with a bad line, a bad path or paths out of order is refused whole.
 */
#ifndef HOMEPORT_SYNC_LISTING_H
#define HOMEPORT_SYNC_LISTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "decide.h"

#define LISTING_MAGIC "HPLIST 1"
#define LISTING_REQ "HPLIST-REQ 1"

/* One parsed line. */
struct listing_line {
    char kind;           /* 'n' an entry, 'B', 'E', 'Z' (END), 'H' (the header) */
    char *text;          /* the path (n, B) or the text (E), unescaped in place */
    char *path;          /* the path of n, B and E ("." for the root in B and E) */
    size_t len;          /* its length (it may hold a NUL only where escaped: refused) */
    struct sync_node n;  /* an entry's metadata (ino, ctime 0) */
    unsigned long count; /* END's */
};

/* s escaped (see above) into out (at most len bytes with the NUL).  The
 * length written, or -ENAMETOOLONG when it does not fit. */
int listing_escape(const char *s, size_t n, char *out, size_t len);

/* Parse one line (without its '\n'; changed in place).  0, -EBADMSG when
 * it is not a line of the format. */
int listing_parse(char *line, struct listing_line *out);

/* Write an entry, a B or E line to f (the server's side).  0 or -EIO. */
int listing_put_node(FILE *f, const char *path, const struct sync_node *n);
int listing_put_text(FILE *f, char kind, const char *s);
int listing_put_error(FILE *f, const char *path, const char *line);

/* The mtime sshfs shows for one of mtime_ns: whole seconds as SFTP v3's
 * 32-bit unsigned field carries them, in ns. */
long long listing_sftp_mtime(long long mtime_ns);

#define LISTING_DRY_RUN 1 /* "n" */
#define LISTING_HASH 2    /* "h" */

/* Parse the request line (without its '\n'): 0 with LISTING_* in *flags,
 * or -EBADMSG. */
int listing_parse_request(char *line, char *dir, size_t dirlen, int *flags);

/* Run argv (no shell: execvp), give it the request for dir (LISTING_* flags) on its stdin and
 * read all of its stdout into *buf (malloc'ed, NUL-terminated, *len bytes),
 * giving up when nothing came for idle_ms.  0 when it exited 0; else
 * -errno, its exit status (1..255), or 256+N for a signal, with what it
 * said on stderr (the first line) or why in why. */
int listing_fetch(char *const argv[], const char *dir, int flags, unsigned idle_ms, char **buf,
                  size_t *len, char *why, size_t whylen);

#endif
