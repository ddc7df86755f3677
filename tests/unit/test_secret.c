/* secret.h: the agent's password store: one per user, a deadline, a full
 * table refused, a job's copy reduced to its user's. */
#include <errno.h>

#include "clock.h"
#include "secret.h"
#include "tap.h"

int main(void)
{
    int lock_err = 0;
    char user[16];
    int64_t now = clock_ms(), later = now + 60000;

    ok(secret_keep("alice", "pw", later) == -ENOSPC, "no table yet: nothing kept");
    ok(secret_init(&lock_err) == 0, "table mapped (mlock: %s)", lock_err ? "refused" : "ok");
    ok(secret_get("alice") == NULL, "nothing kept for alice");
    ok(secret_keep("alice", "pass w0rd!", later) == 0, "alice's kept");
    is_str(secret_get("alice"), "pass w0rd!", "alice's read back");
    ok(secret_keep("alice", "second", later) == 0, "alice's replaced");
    is_str(secret_get("alice"), "second", "the new one read back");
    ok(secret_get("alic") == NULL && secret_get("alice2") == NULL, "names match whole");
    secret_forget("alice");
    ok(secret_get("alice") == NULL, "forgotten");

    for (int i = 0; i < SECRET_SLOTS; i++) {
        snprintf(user, sizeof user, "u%d", i);
        ok(secret_keep(user, "x", later) == 0, "%s kept", user);
    }
    ok(secret_keep("bob", "x", later) == -ENOSPC, "a full table refuses a new user");
    ok(secret_keep("u3", "y", later) == 0, "but takes a kept user's new one");
    secret_expire(later);
    ok(secret_get("u0") == NULL && secret_get("u3") == NULL, "expired at their deadline");
    ok(secret_keep("bob", "b", later) == 0, "room again");
    ok(secret_keep("carol", "c", now - 1) == 0, "carol's, already due");
    ok(secret_keep("dave", "d", later) == 0, "a slot past its deadline is reused");

    secret_keep_only("bob");
    is_str(secret_get("bob"), "b", "keep_only: bob's stays");
    ok(secret_get("dave") == NULL, "keep_only: the others are wiped");
    secret_keep_only(NULL);
    ok(secret_get("bob") == NULL, "keep_only(NULL): none left");
    return tap_done();
}
