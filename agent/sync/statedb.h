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
 * Kept per user (/var/lib/homeport/sync/USER.db).  File format, version 1,
 * every integer little-endian, no padding:
 *
 *   offset  size  field
 *   0       8     magic "HPSYNCDB"
 *   8       4     u32 version (1)
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
 *     +90   2     u16 path length, 1..STATEDB_PATH_MAX
 *     +92   len   path bytes, no terminating NUL
 *   end-32  32    SHA-256 of every byte before it
 *
 * Paths are relative to the home's root: no leading '/', no empty, "." or
 * ".." component, no NUL; they are strictly increasing in byte (memcmp,
 * shorter first) order.  The magic, the version field and the SHA-256
 * trailer keep their place in every version, so the checksum is verified
 * first: a damaged version field is corruption, a whole file of another
 * version is -EPROTO.
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

#define STATEDB_MAGIC "HPSYNCDB"
#define STATEDB_VERSION 1u
#define STATEDB_PATH_MAX 4096
#define STATEDB_HEADER 24
#define STATEDB_ENTRY_FIXED 92 /* an entry without its path bytes */
#define STATEDB_TRAILER 32
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

struct statedb_entry {
    char *path; /* owned by the database */
    struct sync_meta local, remote;
    unsigned char digest[STATEDB_DIGEST];
};

/* Entries sorted by path (strcmp order, the same as the file's: paths have no
 * NUL).  Iterate with for (i = 0; i < db->n; i++) db->v[i].  A zeroed struct
 * is an empty database. */
struct statedb {
    struct statedb_entry *v;
    size_t n, cap;
};

/* Whether path (len bytes) is a valid relative path, as above. */
bool statedb_path_ok(const char *path, size_t len);

/* The entry for path, or NULL.  Binary search. */
struct statedb_entry *statedb_get(const struct statedb *db, const char *path);

/* Insert e, or replace the entry of the same path; e->path is copied.  0,
 * -EINVAL for a bad path, -ENOMEM.  Appending in order costs no move. */
int statedb_put(struct statedb *db, const struct statedb_entry *e);

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

/* Write db to path atomically (see above), mode 0600.  0, or -errno and why
 * (the temp file removed, an existing path untouched unless the rename was
 * done and only the directory's fsync failed).  -EINVAL if db->v is not a
 * valid sorted set of paths. */
int statedb_save(const struct statedb *db, const char *path, char *why, size_t whylen);

#endif
