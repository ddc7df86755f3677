#include "tap.h"
#include "user.h"

int main(void)
{
    static const char *const good[] = {
        "alice", "test.prof", "a", "A_b-9", "x1234567890123456789012345678901", "user.name-x"};
    static const struct {
        const char *name, *why;
    } bad[] = {
        {"", "is empty"},
        {"-rf", "starts with '-'"},
        {".", "starts with '.'"},
        {"..", "starts with '.'"},
        {".hidden", "starts with '.'"},
        {"a/b", "contains a character outside [A-Za-z0-9._-]"},
        {"../etc", "starts with '.'"},
        {"a b", "contains a character outside [A-Za-z0-9._-]"},
        {"a\nb", "contains a character outside [A-Za-z0-9._-]"},
        {"a;rm", "contains a character outside [A-Za-z0-9._-]"},
        {"$(x)", "contains a character outside [A-Za-z0-9._-]"},
        {"caf\xc3\xa9", "contains a character outside [A-Za-z0-9._-]"},
        {"x12345678901234567890123456789012", "is longer than 32 bytes"},
    };

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ok(user_name_valid(good[i]), "valid user name '%s'", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ok(!user_name_valid(bad[i].name), "invalid user name #%zu rejected", i);
        is_str(user_name_problem(bad[i].name), bad[i].why, "reason for #%zu", i);
    }
    ok(!user_name_valid(NULL), "NULL rejected");
    return tap_done();
}
