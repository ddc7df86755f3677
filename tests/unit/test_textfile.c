/* textfile.h's key=value files: values kept on their line, written whole
 * through a temp file, read back with over-long lines skipped whole. */
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "textfile.h"

struct seen {
    char text[1024];
    int n;
};

static void collect(void *ctx, const char *key, const char *value)
{
    struct seen *s = ctx;
    size_t used = strlen(s->text);

    snprintf(s->text + used, sizeof s->text - used, "[%s|%s]", key, value);
    s->n++;
}

int main(void)
{
    char dir[64], path[PATH_MAX],
        one[] = "a\nb\tc\x7f"
                "d\re";
    struct textfile_kv kv = {0};
    struct seen s = {"", 0};
    struct stat st;

    is_str(textfile_one_line(one), "a b c d e", "control characters become spaces");
    if (!tap_tmpdir(dir, sizeof dir, "textfile"))
        return tap_done();
    snprintf(path, sizeof path, "%s/rec", dir);

    textfile_kv_add(&kv, "user", "%s", "alice");
    textfile_kv_add(&kv, "why", "server said: %s", "no\nuser=mallory");
    textfile_kv_add(&kv, "n", "%d", 42);
    ok(textfile_kv_replace(&kv, path, 0600) == 0, "written");
    ok(kv.buf == NULL && kv.len == 0, "the builder is freed");
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode 0600");
    ok(textfile_kv_read(path, 100, collect, &s) == 0, "read back");
    is_str(s.text, "[user|alice][why|server said: no user=mallory][n|42]",
           "a newline in a value adds no key");

    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "a=1\nno equals sign\n%s\nb=%s\n=empty key\n", "c=0123456789",
                "0123456789012345678"); /* b=...: 21 bytes */
        fclose(f);
    }
    memset(&s, 0, sizeof s);
    ok(textfile_kv_read(path, 20, collect, &s) == 0, "read with lines of at most 20 bytes");
    is_str(s.text, "[a|1][c|0123456789][|empty key]", "the longer line is skipped whole");

    snprintf(path, sizeof path, "%s/link", dir);
    ok(symlink("rec", path) == 0, "a symlink to the record");
    ok(textfile_kv_read(path, 20, collect, &s) == -ELOOP, "is not followed");
    ok(textfile_kv_read("/nonexistent/x", 20, collect, &s) == -ENOENT, "a missing file: -ENOENT");

    unlink(path);
    snprintf(path, sizeof path, "%s/rec", dir);
    ok(textfile_replace(path, "hint\n", 5, 0644, TEXTFILE_NO_SYNC) == 0,
       "replaced without an fsync (TEXTFILE_NO_SYNC)");
    char got[16] = "";
    f = fopen(path, "r");
    if (f) {
        got[fread(got, 1, sizeof got - 1, f)] = '\0';
        fclose(f);
    }
    is_str(got, "hint\n", "  and holds the new text");
    unlink(path);
    ok(rmdir(dir) == 0, "no temp file left behind");
    return tap_done();
}
