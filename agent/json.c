#include "json.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s, or 0.  Valid as RFC 3629 says:
 * no overlong form (E0 80..9F, F0 80..8F), no UTF-16 surrogate (ED A0..BF),
 * nothing past U+10FFFF (F4 90..BF): strict JSON readers refuse those. */
static int utf8_len(const unsigned char *s)
{
    int n;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

void json_str(FILE *f, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;

    fputc('"', f);
    while (*s) {
        int n;
        switch (*s) {
        case '"':
            fputs("\\\"", f);
            s++;
            continue;
        case '\\':
            fputs("\\\\", f);
            s++;
            continue;
        case '\n':
            fputs("\\n", f);
            s++;
            continue;
        case '\t':
            fputs("\\t", f);
            s++;
            continue;
        default: break;
        }
        if (*s < 0x20 || *s == 0x7f) {
            fprintf(f, "\\u%04x", *s++);
            continue;
        }
        n = utf8_len(s);
        if (n == 0) {
            fprintf(f, "\\u%04x", *s++);
            continue;
        }
        fwrite(s, 1, (size_t)n, f);
        s += n;
    }
    fputc('"', f);
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* Past the JSON string at p (which starts with a quote), or NULL. */
static const char *skip_str(const char *p)
{
    for (p++; *p && *p != '"'; p++)
        if (*p == '\\' && !*++p)
            return NULL;
    return *p == '"' ? p + 1 : NULL;
}

/* Past a scalar value (number, true, false, null) or a string, or NULL.
 * Nested objects and arrays are not expected in these answers. */
static const char *skip_value(const char *p)
{
    if (*p == '"')
        return skip_str(p);
    const char *s = p;
    while (*p && (isalnum((unsigned char)*p) || *p == '-' || *p == '+' || *p == '.'))
        p++;
    return p > s ? p : NULL;
}

int json_get_uint(const char *text, const char *key, unsigned long max, unsigned long *out)
{
    const char *p = skip_ws(text);
    size_t klen = strlen(key);
    bool found = false;

    if (*p++ != '{')
        return -EINVAL;
    p = skip_ws(p);
    while (*p == '"') {
        const char *k = p + 1, *end = skip_str(p);
        if (!end)
            return -EINVAL;
        bool match = (size_t)(end - 1 - k) == klen && strncmp(k, key, klen) == 0;
        p = skip_ws(end);
        if (*p++ != ':')
            return -EINVAL;
        p = skip_ws(p);
        if (match) {
            char *e;
            if (!isdigit((unsigned char)*p))
                return -EINVAL;
            errno = 0;
            unsigned long v = strtoul(p, &e, 10);
            if (errno || v > max || *e == '.' || *e == 'e' || *e == 'E')
                return -EINVAL;
            *out = v;
            found = true;
            p = e;
        } else if (!(p = skip_value(p))) {
            return -EINVAL;
        }
        p = skip_ws(p);
        if (*p == ',')
            p = skip_ws(p + 1);
        else
            break;
    }
    if (*p != '}' || *skip_ws(p + 1))
        return -EINVAL;
    return found ? 0 : -EINVAL;
}
