/* sync/decide: the three-way decision for one path, and conflict names.
 *
 * Inputs: base, the state database's entry (what both sides held after the
 * last sync; NULL when the path is not in it), and local and remote, what
 * the walk finds now (NULL when absent on that side).  Without a usable
 * database (none, or a damaged one) the sync is a union: nothing is ever
 * deleted, and two different versions are both kept.
 *
 * "Changed" on a side means different from that side's own metadata in
 * base (each side against itself: local and remote clocks, inodes and
 * precision differ):
 *   type differs                                        always changed
 *   dir       mode differs (a dir's own mtime and size move when its content
 *             does: ignored; the content is decided path by path)
 *   symlink   with both digests, the target's digest differs (the
 *             link's own mtime is ignored).  Else: the target's length
 *             differs, or nothing moved, decides; else MAYBE when the walk
 *             did not hash the target, changed when base has no digest
 *   file      size or mode differs: changed.  Else size, mtime, and on the
 *             local side inode and ctime all equal: unchanged.  Else (same
 *             size, some time or the inode moved, which a touch, a chmod back
 *             and forth or a rewrite of the same length all do): with both
 *             digests known, changed iff they differ; with base's digest
 *             only: MAYBE; with no digest in base: changed (nothing to
 *             compare against: the change is taken as real).
 * The local ctime is what catches a same-size rewrite whose mtime was put
 * back (touch -r, cp -p, tar x): ctime is set by the kernel on every write,
 * chmod or rename and cannot be set by a user.
 *
 * A MAYBE on either side present makes the answer SYNC_COMPARE: the engine
 * hashes the content of each side present into its digest and calls again;
 * with those digests filled the answer is never COMPARE.  Two
 * sides present with no base (new on both, or union mode) compare the same
 * way: same type and, for files, same size, then the digests decide; a
 * file's missing digest asks SYNC_COMPARE rather than trusting mtimes.
 *
 * Rules (L, R: local, remote; "chg" changed, "=" unchanged, "-" absent):
 *   special file on either side                  SKIP_SPECIAL
 *   no base (or union):  L only / R only         COPY_TO_REMOTE / COPY_TO_LOCAL
 *                        L and R the same        RECORD
 *                        L and R different       CONFLICT_KEEP_*
 *                        neither                 NOTHING
 *   base:  L =, R =                              NOTHING (RECORD if some
 *                                                metadata moved harmlessly)
 *          L chg, R =  /  L =, R chg             COPY_TO_REMOTE / COPY_TO_LOCAL
 *          L -, R =  /  L =, R -                 DELETE_REMOTE / DELETE_LOCAL
 *          L -, R chg  /  L chg, R -             COPY_TO_LOCAL / COPY_TO_REMOTE
 *          L -, R -                              FORGET
 *          L chg, R chg, the same now            RECORD
 *          L chg, R chg, different               CONFLICT_KEEP_*
 * A type change is a change like any other: made on one side it replaces
 * the other side's unchanged entry (COPY_* replaces whatever type is there).
 *
 * Conflicts keep both versions on both sides: one keeps the name, the other
 * is renamed sync_conflict_name(path, its host, now).  Who keeps the name:
 * when exactly one side is a directory, the directory (its tree is below
 * the name); else the later mtime, compared in whole seconds (sshfs has no
 * more), the remote on a tie.  Two directories never conflict.
 */
#ifndef HOMEPORT_SYNC_DECIDE_H
#define HOMEPORT_SYNC_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "statedb.h"

/* What the walk found on one side. */
struct sync_node {
    struct sync_meta m;
    unsigned char digest[STATEDB_DIGEST]; /* all zero = unknown; symlinks: always fill */
};

enum sync_action {
    SYNC_NOTHING,        /* in step: the base entry stays as it is */
    SYNC_RECORD,         /* in step, but store the current metadata as the new base */
    SYNC_COPY_TO_REMOTE, /* local's version replaces remote's (mkdir for a dir) */
    SYNC_COPY_TO_LOCAL,
    SYNC_DELETE_LOCAL, /* a dir: once what is below is decided, and only if empty */
    SYNC_DELETE_REMOTE,
    SYNC_FORGET,               /* gone on both sides: drop the base entry */
    SYNC_COMPARE,              /* hash the content, fill the digests, decide again */
    SYNC_CONFLICT_KEEP_LOCAL,  /* local keeps the name, remote's version is renamed */
    SYNC_CONFLICT_KEEP_REMOTE, /* remote keeps the name, local's version is renamed */
    SYNC_SKIP_SPECIAL,         /* socket, fifo, device: never synced, reported */
};

/* The decision for one path.  Pure: no I/O.  Without have_db, base is
 * ignored (union mode).  After any action but NOTHING, COMPARE and
 * SKIP_SPECIAL, the engine stores each side's metadata as it left it (an
 * lstat after its own writes: they move the local ctime), or drops the entry
 * for FORGET. */
enum sync_action sync_decide(const struct statedb_entry *base, const struct sync_node *local,
                             const struct sync_node *remote, bool have_db);

/* "COPY_TO_REMOTE", ... for logs. */
const char *sync_action_name(enum sync_action a);

/* The name a conflict's loser gets: "dir/stem (conflict HOST YYYY-MM-DD
 * HHMMSS).ext", when in UTC; with seq > 1 (the name was taken: two
 * conflicts on one path in the same second) "... HHMMSS SEQ).ext".  ext is what follows the last
 * '.' of the final component ("a.tar.gz" -> "a.tar (conflict ...).gz": only the last extension, so
 * the name still opens with the same program), if that dot is neither its first byte (".bashrc" has
 * no extension, ".config.bak" has
 * ".bak") nor its last.  The host, cut to 64 bytes, keeps [A-Za-z0-9._-],
 * any other byte becomes '_' (empty: "unknown").  The final component is kept within
 * NAME_MAX (255) bytes by cutting the stem (at a UTF-8 character boundary),
 * never the suffix: -ENAMETOOLONG when even one byte of stem will not fit.
 * 0; -EINVAL for an empty final component; -ERANGE when out is too small. */
int sync_conflict_name(const char *name, const char *host, time_t when, unsigned seq, char *out,
                       size_t outlen);

#endif
