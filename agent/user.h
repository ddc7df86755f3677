/* user: what a user name must look like before it touches a path.
 *
 * The POSIX portable filename character set ([A-Za-z0-9._-]), not starting
 * with '-' or '.', 1 to HP_USER_NAME_MAX bytes.  That rules out '/', "..",
 * control characters and shell metacharacters in one go.
 */
#ifndef HOMEPORT_USER_H
#define HOMEPORT_USER_H

#include <stdbool.h>

#define HP_USER_NAME_MAX 32 /* useradd's limit on Debian */

bool user_name_valid(const char *name);

/* Why name is not valid, for a message ("contains '/'", ...); NULL when it is. */
const char *user_name_problem(const char *name);

#endif
