#include "user.h"

#include <string.h>

const char *user_name_problem(const char *name)
{
    size_t len;

    if (!name || !*name)
        return "is empty";
    len = strlen(name);
    if (len > HP_USER_NAME_MAX)
        return "is longer than 32 bytes";
    if (name[0] == '-')
        return "starts with '-'";
    if (name[0] == '.')
        return "starts with '.'";
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return "contains a character outside [A-Za-z0-9._-]";
    }
    return NULL;
}

bool user_name_valid(const char *name)
{
    return user_name_problem(name) == NULL;
}
