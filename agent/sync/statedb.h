/* sync/statedb: what both sides of a roaming home held after the last
 * successful sync, the "base" of the three-way decision (decide.h).
 *
 * One entry per path, with the metadata of BOTH sides as they were when the
 * sync left them identical: the local copy is on a real filesystem (inode and
 * ctime are stable and tell a rewrite apart), the remote one on sshfs (no
 * stable inodes, ctime not worth trusting, mtimes in whole seconds), so each
 * side is compared against its own last metadata, never against the other's.
 * The content digest is shared: after a sync both sides hold the same bytes.
 *
 * Kept per user (/var/lib/homeport/sync/USER.db).  File format, version 2,
 * every integer little-endian, no padding:
 *
 *   offset  size  field
 *   0       8     magic "HPSYNCDB"
 *   8       4     u32 version (2)
 *   12      4     u32 flags (0; any other bit = a format this code does not know)
 *   16      8     u64 count: number of entries
 *   24            count entries, each STATEDB_ENTRY_FIXED + path length bytes:
 *     +0    1     u8  local type (enum sync_type: 1 file, 2 dir, 3 symlink)
 *     +1    1     u8  remote type (same values)
 *     +2    4     u32 local mode (permission bits, 07777)
 *     +6    4     u32 remote mode
 *     +10   8     u64 local size
 *     +18   8     i64 local mtime, ns since the epoch
 *     +26   8     u64 local inode
 *     +34   8     i64 local ctime, ns
 *     +42   8     u64 remote size
 *     +50   8     i64 remote mtime, ns
 *     +58   32    content digest: SHA-256 of the file's bytes or of the
 *                 symlink's target; all zero = unknown (and always for dirs)
 *     +90   8     u64 local listing: the directory's inode when its names
 *                 were last read or trusted (see struct statedb_listing)
 *     +98   8     i64 local listing: the directory's ctime then, ns
 *     +106  8     u64 remote listing: inode
 *     +114  8     i64 remote listing: ctime, ns (a side's two 0 = none;
 *                 always 0 on a side whose type is not a directory)
 *     +122  2     u16 path length, 1..STATEDB_PATH_MAX
 *     +124  len   path bytes, no terminating NUL
 *   end-8   8     u64 CRC-64/XZ (crc64.h) of every byte before it
 *
 * Paths are relative to the home's root: no leading '/', no empty, "." or
 * ".." component, no NUL; they are strictly increasing in path order
 * (statedb_path_cmp: component by component), which is the order of a
 * depth-first walk that reads each directory's names sorted.  The magic,
 * the version field and the CRC trailer keep their place in every later
 * version, so the checksum is verified first: a damaged version field is
 * corruption, a whole file of another version is -EPROTO.
 *
 * Version 1 (written until 2026-11) had the same header, entries without
 * the listings (the path length at +90, STATEDB_ENTRY_FIXED_V1 bytes), paths
 * in plain byte order ("a.b" before "a/b") and a 32-byte SHA-256 trailer;
 * it is still read (its trailer checked, its entries put in path order, no
 * listings), and replaced by version 2 at the next pass.
 *
 * A file is written whole to PATH.tmp.PID, fsynced, renamed over PATH and
 * the directory fsynced: a reader sees the old database or the new one, and
 * a torn or damaged one fails its checksum.
 */
#ifndef HOMEPORT_SYNC_STATEDB_H
#define HOMEPORT_SYNC_STATEDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"

#define STATEDB_MAGIC "HPSYNCDB"
#define STATEDB_VERSION 2u
#define STATEDB_PATH_MAX 4096
#define STATEDB_HEADER 24
#define STATEDB_ENTRY_FIXED 124   /* an entry without its path bytes */
#define STATEDB_ENTRY_FIXED_V1 92 /* version 1's */
#define STATEDB_TRAILER 8         /* CRC-64 */
#define STATEDB_TRAILER_V1 32     /* SHA-256 */
#define STATEDB_DIGEST 32

/* SYNC_SPECIAL (socket, fifo, device) is what a walk may find; it is never
 * synced, so never in a database. */
enum sync_type { SYNC_ABSENT = 0, SYNC_FILE = 1, SYNC_DIR = 2, SYNC_LINK = 3, SYNC_SPECIAL = 4 };

/* One side's metadata.  For a symlink, size is the target's length.  ino and
 * ctime_ns are the local side's only (0 on the remote side): ctime changes
 * on any write, chmod, chown or rename, and cannot be set back by touch, so
 * a rewrite that kept size and mtime (touch -r, a tool restoring mtimes)
 * still shows; a new inode shows a file replaced by rename. */
struct sync_meta {
    uint8_t type; /* enum sync_type */
    uint32_t mode;
    uint64_t size;
    int64_t mtime_ns;
    uint64_t ino;
    int64_t ctime_ns;
};

/* A directory's names as a pass found them on one side, and the directory
 * as it was then: its inode and ctime.  A later pass that finds the same
 * inode and ctime knows no name was added, removed or renamed in it since
 * (each of those sets the ctime), so it takes the names from the database
 * instead of reading the directory again (engine.c says when one is
 * recorded).  All zero: none. */
struct statedb_listing {
    uint64_t ino;
    int64_t ctime_ns;
};

struct statedb_entry {
    char *path; /* owned by the database */
    struct sync_meta local, remote;
    unsigned char digest[STATEDB_DIGEST];
    struct statedb_listing listed[2]; /* [SYNC_LOCAL], [SYNC_REMOTE] (engine.h) */
};

/* Entries sorted in path order (statedb_path_cmp), the file's.  Iterate
 * with for (i = 0; i < db->n; i++) db->v[i].  The entries and their paths
 * live in the database's arena until statedb_free: an entry copied out
 * keeps a valid path as long as the database is not freed, even after a
 * del or a put over it.  A zeroed struct is an empty database. */
struct statedb {
    struct statedb_entry *v;
    size_t n, cap;
    struct arena mem; /* the array of entries, the paths, a loaded file (they are in it) */
    unsigned version; /* statedb_load: the file's format (a version 1 file is worth rewriting) */
};

/* The order of paths: component by component, each compared byte by byte
 * (as unsigned chars), a path before everything below it; the same as
 * strcmp with '/' taken as smaller than every other byte.  So "a" <
 * "a/z" < "a b" < "a.b": a directory's subtree comes right after it, and a
 * walk that reads each directory's names in strcmp order and descends into
 * each subdirectory in turn produces its paths in this order, with no
 * sort of the whole list.  <0, 0, >0 like strcmp. */
int statedb_path_cmp(const char *a, const char *b);

/* Whether path (len bytes) is a valid relative path, as above. */
bool statedb_path_ok(const char *path, size_t len);

/* The entry for path, or NULL.  Binary search. */
struct statedb_entry *statedb_get(const struct statedb *db, const char *path);

/* Insert e, or replace the entry of the same path; e->path is copied (into
 * the arena).  0, -EINVAL for a bad path, -ENOMEM.  Appending in order
 * costs no move and no search. */
int statedb_put(struct statedb *db, const struct statedb_entry *e);

/* statedb_put of an entry whose path is not copied: e->path must stay valid
 * and unchanged as long as db is used (an entry of another database that
 * outlives db: a pass keeps the unchanged entries of the database it read
 * in the one it writes).  Not checked by statedb_path_ok either. */
int statedb_put_borrowed(struct statedb *db, const struct statedb_entry *e);

/* Room for n entries in all (a database about to be filled): 0 or -ENOMEM. */
int statedb_reserve(struct statedb *db, size_t n);

/* Remove path's entry.  Whether there was one. */
bool statedb_del(struct statedb *db, const char *path);

void statedb_free(struct statedb *db);

/* Read path into *db (overwritten, not freed).  0; -ENOENT: no database (the
 * caller then syncs as a union, deleting nothing); -EBADMSG: damaged (short,
 * bad magic or checksum, a bad entry, paths out of order); -EPROTO: a
 * version or flags this code does not know; another -errno.  "PATH: what"
 * in why on failure, and *db is then empty.  No length or count from the
 * file is trusted beyond the file's size. */
int statedb_load(struct statedb *db, const char *path, char *why, size_t whylen);

/* statedb_load of the len bytes at data (a whole file, copied), name
 * standing for the file in why. */
int statedb_load_mem(struct statedb *db, const void *data, size_t len, const char *name, char *why,
                     size_t whylen);

/* The file statedb_save writes, in memory (malloc'ed, *len bytes).  NULL
 * with -EINVAL in *rc when db->v is not a valid sorted set of paths (bad
 * types or listings too), or -ENOMEM. */
unsigned char *statedb_encode(const struct statedb *db, size_t *len, int *rc);

/* Write db to path atomically (see above), mode 0600.  0, or -errno and why
 * (the temp file removed, an existing path untouched unless the rename was
 * done and only the directory's fsync failed).  -EINVAL if db->v is not a
 * valid sorted set of paths. */
int statedb_save(const struct statedb *db, const char *path, char *why, size_t whylen);

#endif
