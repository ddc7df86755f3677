/* Sync exclude lists: each piece of the pattern syntax, anchoring,
 * directories, the .local replacement, the errors, the real cases of
 * configs/sync-exclude, and a pattern that would take exponential time with
 * a naive backtracking matcher. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sync/exclude.h"
#include "tap.h"

struct tcase {
    const char *pat, *path;
    bool dir, want;
};

/* Whether the one-pattern list pat excludes path. */
static bool excl1(const char *pat, const char *path, bool dir)
{
    struct exclude_list l = {0};
    bool r;

    if (exclude_add(&l, pat) < 0)
        printf("# bad pattern '%s'\n", pat);
    r = exclude_match(&l, path, dir);
    exclude_free(&l);
    return r;
}

static void check_cases(const struct tcase *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ok(excl1(c[i].pat, c[i].path, c[i].dir) == c[i].want, "'%s' %s %s%s", c[i].pat,
           c[i].want ? "excludes" : "keeps", c[i].path, c[i].dir ? "/" : "");
}

/* Each syntax element, with a case each way. */
static const struct tcase syntax[] = {
    /* literal, unanchored: the last component at any depth */
    {"foo", "foo", false, true},
    {"foo", "a/b/foo", false, true},
    {"foo", "a/foo", true, true},
    {"foo", "foobar", false, false},
    {"foo", "afoo", false, false},
    {"foo", "a/foo.txt", false, false},
    /* anchored */
    {"/foo", "foo", false, true},
    {"/foo", "a/foo", false, false},
    /* inner slash, unanchored: the end of the path, at component boundaries */
    {"b/c", "b/c", false, true},
    {"b/c", "a/b/c", false, true},
    {"b/c", "ab/c", false, false},
    {"b/c", "a/b/cd", false, false},
    {"/b/c", "a/b/c", false, false},
    /* trailing '/': directories only */
    {"cache/", "a/cache", true, true},
    {"cache/", "a/cache", false, false},
    {"/.cache/", ".cache", true, true},
    {"/.cache/", ".cache", false, false},
    {"/.cache/", "Documents/.cache", true, false},
    /* a matching directory excludes what is below it */
    {"/.cache/", ".cache/x/y.png", false, true},
    {"/a/b", "a/b/c/d", false, true},
    {"foo", "x/foo/y", false, true},
    {"b/c", "a/b/c/d", false, true},
    {"*.swp", "d.swp/inner", false, true},
    /* '*': any run of characters within a component */
    {"*.swp", "x.swp", false, true},
    {"*.swp", "a/b/.x.swp", false, true},
    {"*.swp", ".swp", false, true},
    {"*.swp", "x.swpx", false, false},
    {"/a*c", "ac", false, true},
    {"/a*c", "abbbc", false, true},
    {"/a*c", "ab/c", false, false},
    {"/x*", "xy", false, true},
    {"/x*", "y/xz", false, false},
    /* '?': one character, never '/' */
    {"/?.txt", "a.txt", false, true},
    {"/?.txt", "ab.txt", false, false},
    {"/?.txt", ".txt", false, false},
    {"/a?b", "a/b", false, false},
    /* classes */
    {"/[abc].txt", "b.txt", false, true},
    {"/[abc].txt", "d.txt", false, false},
    {"/[a-c]x", "bx", false, true},
    {"/[a-c]x", "dx", false, false},
    {"/[!a-c]x", "dx", false, true},
    {"/[!a-c]x", "ax", false, false},
    {"/[^a]x", "bx", false, true},
    {"/[^a]x", "ax", false, false},
    {"/[]]x", "]x", false, true},
    {"/[!]]x", "ax", false, true},
    {"/[!]]x", "]x", false, false},
    {"/[a\\-z]x", "-x", false, true},
    {"/[a\\-z]x", "zx", false, true},
    {"/[a\\-z]x", "bx", false, false},
    {"/[a-]x", "-x", false, true},
    {"/a[!x]b", "a/b", false, false},
    /* '**': across components */
    {"/a/**", "a/b", false, true},
    {"/a/**", "a/b/c", false, true},
    {"/a/**", "a", true, false},
    {"/a**z", "az", false, true},
    {"/a**z", "a/b/z", false, true},
    {"/a**z", "b/a/z", false, false},
    {"a**z", "b/a/z", false, true},
    {"/.mozilla/firefox/**/cache2/", ".mozilla/firefox/p.default/cache2", true, true},
    {"/.mozilla/firefox/**/cache2/", ".mozilla/firefox/p/q/cache2", true, true},
    {"/.mozilla/firefox/**/cache2/", ".mozilla/firefox/p/cache2/entries/X", false, true},
    {"/.mozilla/firefox/**/cache2/", ".mozilla/firefox/p/cache2", false, false},
    {"/.mozilla/firefox/**/cache2/", ".mozilla/firefox/cache2", true, false},
    {"/.mozilla/firefox/**/cache2/", "x/.mozilla/firefox/p/cache2", true, false},
    /* a leading "**" and '/' may match nothing */
    {"**/foo", "foo", false, true},
    {"**/foo", "a/b/foo", false, true},
    {"/**/foo", "foo", false, true},
    {"/**/foo", "x/foo", false, true},
    {"/**/foo", "x/foox", false, false},
    {"***/foo", "a/foo", false, true},
    /* escapes */
    {"/\\*", "*", false, true},
    {"/\\*", "a", false, false},
    {"/a\\?", "a?", false, true},
    {"/a\\?", "ab", false, false},
    {"/\\[x]", "[x]", false, true},
    {"/\\[x]", "x", false, false},
    {"\\#notes", "a/#notes", false, true},
    {"/a\\\\b", "a\\b", false, true},
    /* spaces are part of names */
    {"/VirtualBox VMs/", "VirtualBox VMs", true, true},
    {"/VirtualBox VMs/", "VirtualBox", true, false},
    /* the path's own form */
    {"/foo", "/foo", false, true},
    {"*", "", true, false},
};

/* What configs/sync-exclude says, copied: the checks below hold for this
 * copy and for the file itself. */
static const char *const default_list[] = {
    "/.local/share/Trash/",
    "/.cache/",
    "/.thumbnails/",
    "/.cache/thumbnails/",
    "/.mozilla/firefox/*/cache2/",
    "/.mozilla/firefox/*/startupCache/",
    "/.config/chromium/*/Cache/",
    "/.config/chromium/*/GPUCache/",
    "/.config/google-chrome/*/Cache/",
    "/.config/google-chrome/*/GPUCache/",
    "/.nv/GLCache/",
    "/.mozilla/firefox/*/lock",
    "/.mozilla/firefox/*/.parentlock",
    "/.config/chromium/Singleton*",
    "/.config/google-chrome/Singleton*",
    "/.xsession-errors*",
    "/.ICEauthority",
    "/.Xauthority",
    "/.dbus/",
    "/.gvfs",
};

struct pcase {
    const char *path;
    bool dir, want;
};

static const struct pcase real_cases[] = {
    /* trash */
    {".local/share/Trash/files/x", false, true},
    {".local/share/Trash/info/x.trashinfo", false, true},
    {".local/share/Trash", true, true},
    {".local/share/applications/a.desktop", false, false},
    {"Desktop/Trash", true, false},
    {"Desktop/Trash/x", false, false},
    /* browser caches */
    {".cache/mozilla/firefox/abc.default/cache2/entries/X", false, true},
    {".cache", true, true},
    {".cache", false, false},
    {".mozilla/firefox/abc.default/cache2", true, true},
    {".mozilla/firefox/abc.default/cache2/entries/X", false, true},
    {".mozilla/firefox/abc.default/startupCache/scriptCache.bin", false, true},
    {".mozilla/firefox/abc.default/places.sqlite", false, false},
    {".mozilla/firefox/abc.default/cache2", false, false},
    {".mozilla/firefox/profiles.ini", false, false},
    {".config/chromium/Default/Cache/Cache_Data/f", false, true},
    {".config/chromium/Default/GPUCache/data_0", false, true},
    {".config/chromium/Default/Bookmarks", false, false},
    {".config/google-chrome/Profile 1/Cache/x", false, true},
    {".nv/GLCache/x/y", false, true},
    {"Documents/.cache", true, false},
    {"Documents/cache2/notes.txt", false, false},
    /* thumbnails */
    {".cache/thumbnails/large/x.png", false, true},
    {".thumbnails/normal/y.png", false, true},
    {"Pictures/.thumbnails/z.png", false, false},
    /* browser locks */
    {".mozilla/firefox/abc.default/lock", false, true},
    {".mozilla/firefox/abc.default/.parentlock", false, true},
    {".config/chromium/SingletonLock", false, true},
    {".config/google-chrome/SingletonSocket", false, true},
    {".config/chromium/Default/SingletonLock", false, false},
    /* session files */
    {".xsession-errors", false, true},
    {".xsession-errors.old", false, true},
    {".ICEauthority", false, true},
    {".Xauthority", false, true},
    {"Documents/.Xauthority", false, false},
    {".dbus/session-bus/abc-0", false, true},
    {".gvfs", true, true},
    /* kept */
    {".bashrc", false, false},
    {".config/user-dirs.dirs", false, false},
    {"Documents/report.odt", false, false},
};

static void check_real(const struct exclude_list *l, const char *what)
{
    for (size_t i = 0; i < sizeof real_cases / sizeof *real_cases; i++) {
        const struct pcase *c = &real_cases[i];
        ok(exclude_match(l, c->path, c->dir) == c->want, "%s: %s %s%s", what,
           c->want ? "excludes" : "keeps", c->path, c->dir ? "/" : "");
    }
}

static char dir[64], list[128], local[128], why[512];

static void put(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "we");

    if (!f || fwrite(text, 1, len, f) != len)
        printf("# cannot write %s\n", path);
    if (f)
        fclose(f);
}

static void copy(const char *from, const char *to)
{
    char buf[8192];
    FILE *f = fopen(from, "re");
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;

    if (f)
        fclose(f);
    put(to, buf, n);
}

/* A fresh directory for the lists list and local. */
static bool tmp_lists(void)
{
    if (!tap_tmpdir(dir, sizeof dir, "exclude"))
        return false;
    snprintf(list, sizeof list, "%s/sync-exclude", dir);
    snprintf(local, sizeof local, "%s/sync-exclude.local", dir);
    return true;
}

static void rm_lists(void)
{
    unlink(list);
    unlink(local);
    rmdir(dir);
}

#define PUT(path, lit) put(path, lit, sizeof(lit) - 1)
#define EXPECT_ERROR(lit, line, msg) expect_error(lit, sizeof(lit) - 1, line, msg)

/* Load list (written from text) and expect exactly the error msg at line. */
static void expect_error(const char *text, size_t len, unsigned line, const char *msg)
{
    struct exclude_list l;
    char want[600];
    int rc;

    put(list, text, len);
    rc = exclude_load(&l, list, why, sizeof why);
    snprintf(want, sizeof want, "%s:%u: %s", list, line, msg);
    ok(rc == -EINVAL && l.n == 0 && !l.source, "rejected: %s", msg);
    is_str(why, want, "message: %s", msg);
}

static void test_files(void)
{
    struct exclude_list l;
    char big[EXCLUDE_PATTERN_MAX + 16];
    int rc;

    if (!tmp_lists())
        return;

    /* missing */
    rc = exclude_load(&l, list, why, sizeof why);
    ok(rc == -ENOENT && l.n == 0, "missing default list: -ENOENT");
    ok(strstr(why, list) && strstr(why, strerror(ENOENT)), "message names the file (%s)", why);

    /* comments, blank lines, trailing blanks and CR; leading spaces kept */
    PUT(list, "# a comment\n\n   \n/foo   \r\n/bar/\t\n  sp\n #x\n");
    rc = exclude_load(&l, list, why, sizeof why);
    ok(rc == 0 && l.n == 4, "4 patterns from 7 lines (rc %d, n %zu)", rc, l.n);
    is_str(l.source, list, "source: the default list");
    ok(exclude_match(&l, "foo", false), "trailing spaces and CR trimmed");
    ok(exclude_match(&l, "bar", true) && !exclude_match(&l, "bar", false), "trailing tab trimmed");
    ok(exclude_match(&l, "a/  sp", false) && !exclude_match(&l, "sp", false),
       "leading spaces belong to the pattern");
    ok(exclude_match(&l, " #x", false), "'#' starts a comment only in the first column");
    exclude_free(&l);

    /* .local replaces the default entirely, even when it lists nothing */
    PUT(list, "/a\n");
    PUT(local, "/b\n");
    rc = exclude_load(&l, list, why, sizeof why);
    ok(rc == 0 && exclude_match(&l, "b", false) && !exclude_match(&l, "a", false),
       ".local read instead of the default");
    is_str(l.source, local, "source: the .local list");
    exclude_free(&l);
    PUT(local, "# nothing\n");
    rc = exclude_load(&l, list, why, sizeof why);
    ok(rc == 0 && l.n == 0 && !exclude_match(&l, "a", false), "an empty .local: nothing excluded");
    exclude_free(&l);
    unlink(list);
    rc = exclude_load(&l, list, why, sizeof why);
    ok(rc == 0 && l.n == 0, ".local without the default one");
    exclude_free(&l);
    unlink(local);
    PUT(list, "/a\n");
    ok(mkdir(local, 0700) == 0, "a .local that cannot be read");
    rc = exclude_load(&l, list, why, sizeof why);
    ok(rc < 0 && rc != -ENOENT && l.n == 0, "is an error, not the default (%s)", why);
    ok(strstr(why, local) != NULL, "message names the .local file");
    rmdir(local);

    /* errors: FILE:LINE, nothing kept */
    memset(big, 'x', sizeof big);
    big[0] = '/';
    big[EXCLUDE_PATTERN_MAX] = '\n';
    put(list, big, EXCLUDE_PATTERN_MAX + 1);
    rc = exclude_load(&l, list, why, sizeof why);
    ok(rc == 0 && l.n == 1, "a pattern of 4096 bytes is fine");
    exclude_free(&l);
    memmove(big + 4, big, EXCLUDE_PATTERN_MAX + 2);
    big[0] = '#', big[1] = '\n', big[2] = '\n', big[3] = '/';
    expect_error(big, EXCLUDE_PATTERN_MAX + 5, 3, "pattern longer than 4096 bytes");
    EXPECT_ERROR("/a\n/b\0c\n", 2, "control character in pattern");
    EXPECT_ERROR("/a\tb\n", 1, "control character in pattern");
    EXPECT_ERROR("/ok\n/a[bc\n", 2, "unterminated '['");
    EXPECT_ERROR("/a[b/\n", 1, "unterminated '['");
    EXPECT_ERROR("/ok\n\n/ok2\nfoo\\\n", 4, "pattern ends with a lone '\\'");
    EXPECT_ERROR("/\n", 1, "empty pattern");
    EXPECT_ERROR("//\n", 1, "empty pattern");

    l = (struct exclude_list){0};
    ok(exclude_add(&l, "[x") == -EINVAL && exclude_add(&l, "x\\") == -EINVAL && l.n == 0,
       "exclude_add rejects a bad pattern");
    exclude_free(&l);
    rm_lists();
}

/* The repository's files: found from the top (tests/run works there) or
 * $HOMEPORT_TOP. */
static bool top_file(char *buf, size_t len, const char *name)
{
    const char *top = getenv("HOMEPORT_TOP");

    snprintf(buf, len, "%s/%s", top && *top ? top : ".", name);
    return access(buf, R_OK) == 0;
}

static void test_real(void)
{
    struct exclude_list l = {0};
    char path[512], ex[512];
    int rc;

    for (size_t i = 0; i < sizeof default_list / sizeof *default_list; i++)
        if (exclude_add(&l, default_list[i]) < 0)
            printf("# bad pattern %s\n", default_list[i]);
    ok(l.n == sizeof default_list / sizeof *default_list, "the copied default list compiles");
    check_real(&l, "copied list");
    exclude_free(&l);

    if (!top_file(path, sizeof path, "configs/sync-exclude") ||
        !top_file(ex, sizeof ex, "configs/sync-exclude.local.example")) {
        ok(1, "# SKIP configs/sync-exclude not found (run from the top or set HOMEPORT_TOP)");
        return;
    }
    rc = exclude_load(&l, path, why, sizeof why);
    ok(rc == 0 && l.n == sizeof default_list / sizeof *default_list,
       "configs/sync-exclude loads, %zu patterns (%s)", l.n, rc ? why : "");
    check_real(&l, "configs/sync-exclude");
    exclude_free(&l);

    /* the example .local, installed next to the default: it replaces it */
    if (!tmp_lists())
        return;
    copy(path, list);
    copy(ex, local);
    rc = exclude_load(&l, list, why, sizeof why);
    ok(rc == 0 && l.source && strcmp(l.source, local) == 0, "the example .local loads (%s)",
       rc ? why : "");
    ok(exclude_match(&l, "VirtualBox VMs/w10/w10.vdi", false), ".local: a name with a space");
    ok(exclude_match(&l, "Downloads", true), ".local: Downloads/");
    ok(exclude_match(&l, "Documents/.report.odt.swp", false), ".local: *.swp at any depth");
    ok(exclude_match(&l, ".local/share/Trash/files/x", false), ".local: the trash");
    ok(!exclude_match(&l, ".config/chromium/Default/Cache/f", false),
       ".local: chromium's cache, only in the default list, is kept");
    exclude_free(&l);
    rm_lists();
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Patterns that make a backtracking matcher exponential or deeply recursive. */
static void test_pathological(void)
{
    static char name[4002], pat[EXCLUDE_PATTERN_MAX + 1], deep[8002];
    double t0 = now();
    bool hit;

    memset(name, 'a', 4000);
    ok(!excl1("*a*a*a*a*a*a*a*a*b", name, false), "*a*a*a*a*a*a*a*a*b keeps 4000 a's");
    name[4000] = 'b';
    ok(excl1("*a*a*a*a*a*a*a*a*b", name, false), "and excludes them with a b at the end");
    for (size_t i = 0; i < EXCLUDE_PATTERN_MAX; i++)
        pat[i] = i % 2 ? 'a' : '*';
    pat[EXCLUDE_PATTERN_MAX - 1] = 'b';
    name[4000] = '\0';
    ok(!excl1(pat, name, false), "a 4096-byte *a*a…*b keeps 4000 a's");
    for (size_t i = 0; i < 8000; i++)
        deep[i] = i % 2 ? '/' : 'a';
    deep[7998] = 'b';
    deep[7999] = '\0';
    hit = excl1("**a**a**a**a**a**a**c", deep, false);
    ok(!hit, "**a**a…**c keeps a path 4000 components deep");
    ok(excl1("a/**/b", deep, false), "a/**/b excludes it");
    ok(now() - t0 < 2.0, "all that in %.3f s", now() - t0);
}

int main(void)
{
    check_cases(syntax, sizeof syntax / sizeof *syntax);
    test_files();
    test_real();
    test_pathological();
    return tap_done();
}
