/* secret: the passwords pam_exec's expose_authtok gives the agent at the
 * auth stage (home_mode = sync, sync_auth = password), kept until the
 * user's roaming mount has used them, at most until a deadline.
 *
 * One table of SECRET_SLOTS in memory that is locked (never swapped) and
 * left out of core dumps.  A job process keeps only its user's password
 * (secret_keep_only: the others wiped, its copy of the table locked again,
 * as a lock is not inherited), and the mount wipes it once used.
 */
#ifndef HOMEPORT_SECRET_H
#define HOMEPORT_SECRET_H

#include <stdint.h>

#include "proto.h"

#define SECRET_SLOTS 16

/* Map the table.  0, or -errno: no table, every secret_keep then fails.
 * *lock_err: 0, or the errno of mlock (mapped but not locked). */
int secret_init(int *lock_err);

/* Keep user's password pw (at most PROTO_SECRET_MAX bytes, cut) until the
 * monotonic time until (ms), replacing what user had.  0, or -ENOSPC when
 * every slot holds a live password or there is no table. */
int secret_keep(const char *user, const char *pw, int64_t until);

/* user's password, or NULL when none is kept. */
const char *secret_get(const char *user);

/* Wipe user's password. */
void secret_forget(const char *user);

/* Wipe the passwords whose time is up at now (ms, monotonic). */
void secret_expire(int64_t now);

/* In a process that needs only user's password (NULL: none): wipe the
 * others and lock the table again. */
void secret_keep_only(const char *user);

#endif
