/* sync/exclude: what the profile sync never copies.
 *
 * The list is a file of rsync-style patterns, one a line (configs/sync-exclude,
 * installed as /etc/homeport/sync-exclude).  When FILE.local exists, it is
 * read INSTEAD: a site's list replaces the default entirely, nothing of the
 * default applies any more.
 *
 * File syntax: a line whose first character is '#' is a comment, blank lines
 * are ignored.  Trailing spaces, tabs and a CR are dropped (rsync keeps them);
 * leading ones belong to the pattern.  A pattern has at most
 * EXCLUDE_PATTERN_MAX bytes and no control character.  Every line excludes:
 * rsync's "+ ", "- " and "!" rules are not understood.
 *
 * A pattern is matched against a path relative to the home's root, "a/b/c":
 *   /pat   anchored: matches the path from the root
 *   pat    unanchored: matches the end of the path at a component boundary,
 *          so "x" matches a name at any depth and "b/c" matches "a/b/c"
 *   pat/   matches directories only
 *   *      any run of characters other than '/'
 *   **     any run of characters, '/' included.  As in rsync, a "**" between
 *          two slashes stands for at least one directory; a pattern that
 *          starts with "**" and a slash also matches at the top.
 *   ?      one character other than '/'
 *   [...]  one character of a class: ranges (a-z), negated by a leading '!'
 *          or '^', a ']' first is literal, '\' escapes; never matches '/'
 *   \c     the character c itself, always (rsync only unescapes in patterns
 *          that have a wildcard)
 * A matching directory excludes everything below it.
 *
 * Matching runs the pattern as an NFA over the path, left to right: time
 * O(path length x pattern length), no recursion, no backtracking.
 */
#ifndef HOMEPORT_SYNC_EXCLUDE_H
#define HOMEPORT_SYNC_EXCLUDE_H

#include <stdbool.h>
#include <stddef.h>

#define EXCLUDE_PATTERN_MAX 4096

struct exclude_rule; /* one compiled pattern (exclude.c) */

/* A zeroed struct is an empty list. */
struct exclude_list {
    struct exclude_rule *rules;
    size_t n, cap;
    char *source; /* the file read (the .local one or the default); NULL if none */
};

/* Read default_path, or default_path.local instead when that exists.  *l is
 * overwritten, not freed.  Returns 0; -ENOENT when neither file exists;
 * -EINVAL for a bad pattern, "FILE:LINE: reason" in why; another -errno
 * (a .local that exists but cannot be read is an error: no falling back to
 * the default).  On failure *l is an empty list. */
int exclude_load(struct exclude_list *l, const char *default_path, char *why, size_t whylen);

/* Append one pattern.  0, -EINVAL for a bad pattern, -ENOMEM. */
int exclude_add(struct exclude_list *l, const char *pattern);

void exclude_free(struct exclude_list *l);

/* Whether relpath ("a/b/c": relative to the home's root, no empty
 * component; a leading '/' is ignored) is excluded: some pattern matches it,
 * or matches one of its leading directories ("a", "a/b"), which excludes all
 * below it.  is_dir: relpath itself is a directory.  The root ("") never is. */
bool exclude_match(const struct exclude_list *l, const char *relpath, bool is_dir);

#endif
