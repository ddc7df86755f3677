/* user: user_name_valid against the rule written out here (user.h): the
 * POSIX portable filename character set, not starting with '-' or '.',
 * 1 to 32 bytes.  Also what relies on it: a proto request for that name
 * is accepted exactly when the name is valid, and a valid name expands in
 * a path template without adding a component. */
#include "config.h"
#include "fuzz.h"
#include "proto.h"
#include "user.h"

static bool reference(const char *s, size_t len)
{
    static const char portable[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789._-";

    if (len < 1 || len > 32 || s[0] == '-' || s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!s[i] || !memchr(portable, s[i], sizeof portable - 1))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *name = fz_str(data, size), req[PROTO_MAX + 64], why[256], out[128];
    size_t len = strlen(name);
    bool want = reference(name, len), got = user_name_valid(name);
    const char *problem = user_name_problem(name);
    struct proto_request r;

    FZ_CHECK(got == want, "user_name_valid('%s') = %d, the rule says %d", name, got, want);
    FZ_CHECK(!problem == want, "user_name_problem disagrees");
    if (problem)
        FZ_CHECK(strlen(problem) < 100, "a problem of %zu bytes", strlen(problem));

    if (!memchr(name, '\n', len) && len < 1000) {
        int n = snprintf(req, sizeof req, "homeport 1 account\nuser=%s\n", name);
        int rc = proto_parse_request(req, (size_t)n, &r, why, sizeof why);
        FZ_CHECK((rc == 0) == want, "a request for '%s': %d (%s)", name, rc, why);
    }
    if (want) {
        int n = config_expand("/home/%u", name, out, sizeof out);
        FZ_CHECK(n > 6 && !strchr(out + 6, '/') && strcmp(out + 6, "..") && strcmp(out + 6, "."),
                 "'%s' makes a path of its own: %s", name, out);
    }
    free(name);
    return 0;
}
