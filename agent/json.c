#include "json.h"

/* Length of the valid UTF-8 sequence at s, or 0. */
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
