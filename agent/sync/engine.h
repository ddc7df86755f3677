/* sync/engine: one pass of the roaming profile's two-way sync.
 *
 * The local tree (the user's home on this machine) and the remote one (the
 * home on the server, an sshfs mount: no stable inodes, whole-second mtimes)
 * are walked, every path is decided against the state database
 * (decide.h, statedb.h), and the decisions are applied:
 *
 *   - a copy is written to ".NAME.homeport-tmp" in the destination's
 *     directory, given the source's mode and mtime, fsynced and renamed over
 *     NAME: an interrupted pass leaves the old file or the new one; leftover
 *     temporary files are removed by the next walk and never synced;
 *   - a deletion moves the entry to ROOT/.homeport-trash/STAMP/PATH on its
 *     own side (STAMP = the pass's UTC time, YYYY-MM-DD_HHMMSS); trash
 *     folders older than trash_days are purged at each pass; a directory is
 *     removed after what was below it was decided, and only when nothing
 *     synced is left in it;
 *   - a conflict keeps both versions on both sides (decide.h names the
 *     loser; " 2", " 3" ... when that name is taken);
 *   - a pass that would delete more than max_delete_percent of the entries a
 *     side had (and more than SYNC_GUARD_MIN of them) does the rest but not
 *     those deletions, which stay pending until a pass with allow_deletes.
 *
 * Every path is reached from the roots one component at a time, without
 * following symlinks (openat O_NOFOLLOW): a user who swaps a directory for a
 * symlink during the pass cannot make a pass running as root write
 * elsewhere.  Symlinks are synced as links, never followed.
 *
 * Every entry is stat'ed on both sides at every pass, but a directory's
 * names are read again only when they may have changed: on a side whose
 * file system keeps directory ctimes (local ones, not sshfs), a directory
 * whose inode and ctime are those the database recorded for its listing
 * (statedb.h: struct statedb_listing) gets its names from the database.
 * A listing is recorded only when the walk's names were exactly the
 * directory's children in the database the pass leaves, and its ctime was
 * more than 2 s old (engine.c: stamp_listings).
 *
 * Without a database, or with a damaged one (logged), the pass is a union:
 * nothing deleted, different versions kept as conflicts.  The database is
 * saved (atomically) only when something moved.
 */
#ifndef HOMEPORT_SYNC_ENGINE_H
#define HOMEPORT_SYNC_ENGINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "exclude.h"

#define SYNC_TRASH ".homeport-trash"
#define SYNC_TMP_SUFFIX ".homeport-tmp"
#define SYNC_GUARD_MIN 10 /* a side with this few deletions is never guarded */

enum sync_side { SYNC_LOCAL, SYNC_REMOTE };

struct sync_opts {
    const char *local, *remote;         /* the two roots: existing directories */
    const char *state;                  /* the state database's path */
    const struct exclude_list *exclude; /* NULL: nothing excluded */
    const char *host;                   /* named in conflict copies */
    time_t now;                         /* the pass's time (conflict names, trash) */
    bool dry_run;                       /* decide and report, change nothing */
    bool allow_deletes;                 /* the admin's go-ahead past the guard */
    unsigned max_delete_percent;        /* 100: no guard */
    unsigned trash_days;                /* 0: trash purged at the next pass */
    uid_t owner[2];
    gid_t group[2]; /* per side, what creations are chowned to;
                     * (uid_t)-1: left as created */
    /* One line per action ("to-remote PATH", ...: homeport(8)). */
    void (*report)(void *ctx, const char *line);
    void *ctx;
    volatile sig_atomic_t *stop; /* set: the pass ends after the current path */
    /* The remote walk done on the server (listing.h): this command (argv,
     * run without a shell: `ssh ... HOST homeport sync-list`) is given the
     * request for remote_dir (its tree on the server: "" for the session's
     * working directory) and its listing replaces the walk of o->remote,
     * which stays the way to every file.  NULL: the remote tree is walked.
     * When the command fails or its listing is refused, the pass walks
     * o->remote (sync_stats.listed says it). */
    char *const *remote_list;
    const char *remote_dir;
};

struct sync_stats {
    unsigned long to_remote, to_local, del_local, del_remote, conflicts, special, errors;
    unsigned long in_step;    /* paths already the same on both sides */
    unsigned long guarded[2]; /* deletions held back, per side */
    unsigned long entries[2]; /* what the guard counted against */
    bool union_mode;          /* no usable database */
    bool stopped;             /* *stop was set */
    int listed;               /* 1: the server listed the remote tree; 0: not asked;
                               * -errno: it could not, the tree was walked (list_why) */
    char list_why[256];
};

/* One pass.  0 when the pass ran (per-path failures are counted in
 * st->errors and reported; held-back deletions in st->guarded); -errno when
 * nothing could be done (a root or the database unusable), why says it. */
int sync_run(const struct sync_opts *o, struct sync_stats *st, char *why, size_t whylen);

/* The server's side of sync_opts.remote_list (`homeport sync-list`): read
 * the request from in, walk the tree it names and write the listing to out
 * (listing.h).  0, or -errno with why (the request or the tree). */
int sync_list_serve(FILE *in, FILE *out, char *why, size_t whylen);

#endif
