/* sync/listing: the lines of `homeport sync-list`, and the engine taking
 * its output (sync_list_serve's, as the verb writes it) in place of the
 * remote walk, or refusing it and walking the tree. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sync/engine.h"
#include "sync/listing.h"
#include "tap.h"

static void test_escape(void)
{
    char out[64], in[] = "a b\n\\c\x7f\xc3\xa9";
    int n = listing_escape(in, strlen(in), out, sizeof out);

    is_str(out, "a\\040b\\012\\134c\\177\xc3\xa9",
           "escape: blank, newline, backslash, DEL; UTF-8 as is");
    ok(n == (int)strlen(out), "escape: its length");
    ok(listing_escape(in, strlen(in), out, 8) == -ENAMETOOLONG, "escape: too long for out");
}

static void test_lines(void)
{
    struct listing_line l;
    char line[512];

    snprintf(line, sizeof line, "HPLIST 1");
    ok(listing_parse(line, &l) == 0 && l.kind == 'H', "the header");
    snprintf(line, sizeof line, "f 644 12 1700000000 - Documents/a\\040b.txt");
    ok(listing_parse(line, &l) == 0 && l.kind == 'n' && l.n.m.type == SYNC_FILE &&
           l.n.m.mode == 0644 && l.n.m.size == 12 && l.n.m.mtime_ns == 1700000000000000000LL,
       "a file's line");
    is_str(l.text, "Documents/a b.txt", "  its path unescaped");
    snprintf(line, sizeof line, "l 777 4 5 %s lnk",
             "2824684de3d1a19390ca88cf826e77c6f750657e552edb83d466666c37521a08");
    ok(listing_parse(line, &l) == 0 && l.n.m.type == SYNC_LINK && l.n.digest[0] == 0x28 &&
           l.n.digest[31] == 0x08,
       "a symlink's line with its target's digest");
    snprintf(line, sizeof line, "f 600 3 5 %s x",
             "ab"
             "000000000000000000000000000000000000000000000000000000000000cd");
    ok(listing_parse(line, &l) == 0 && l.n.m.type == SYNC_FILE && l.n.digest[0] == 0xab &&
           l.n.digest[31] == 0xcd,
       "a file's line with its digest (a pass without a database asks for them)");
    snprintf(line, sizeof line, "d 755 4096 0 - new\\012line");
    ok(listing_parse(line, &l) == 0 && l.n.m.type == SYNC_DIR && !strcmp(l.text, "new\nline"),
       "a directory whose name has a newline");
    snprintf(line, sizeof line, "B .");
    ok(listing_parse(line, &l) == 0 && l.kind == 'B' && !strcmp(l.text, "."), "B: the root");
    snprintf(line, sizeof line, "E a\\040b error\\040a\\040b:\\040cannot");
    ok(listing_parse(line, &l) == 0 && l.kind == 'E' && !strcmp(l.text, "error a b: cannot") &&
           !strcmp(l.path, "a b"),
       "E: an error line and its path");
    snprintf(line, sizeof line, "END 42");
    ok(listing_parse(line, &l) == 0 && l.kind == 'Z' && l.count == 42, "END");

    static const char *bad[] = {
        "f 644 12 1700000000 - a b",     /* an unescaped blank */
        "f 644 12 1700000000 - ../x",    /* not a relative path */
        "f 644 12 1700000000 - /x",      /* absolute */
        "f 644 12 1700000000 - a//b",    /* an empty component */
        "f 644 12 1700000000 - a\\000b", /* a NUL */
        "f 644 12 1700000000 - a\\400",  /* not a byte */
        "f 644 12 1700000000 - a\\01",   /* a short escape */
        "f 1644x 12 1700000000 - a",     /* mode */
        "f 10000 12 1700000000 - a",     /* mode out of range */
        "f 644 -1 1700000000 - a",       /* size */
        "f 644 1 4294967296 - a",        /* mtime past 32 bits */
        "f 644 1 1 ab a",                /* a digest on a file */
        "l 777 1 1 - a",                 /* a symlink without one */
        "x 644 1 1 - a",                 /* type */
        "f  644 1 1 - a",                /* an empty field */
        "f 644 1 1 -",                   /* no path */
        "END",                           /* no count */
        "E error",                       /* no path */
        "E ../x error",                  /* a bad path */
        "B a b",                         /* two paths */
        "END 1x",
        "HPLIST 2",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(line, sizeof line, "%s", bad[i]);
        ok(listing_parse(line, &l) == -EBADMSG, "refused: '%s'", bad[i]);
    }
}

static void test_request(void)
{
    char line[128], dir[64];
    int fl;

    snprintf(line, sizeof line, LISTING_REQ " n homes/al\\040ice");
    ok(listing_parse_request(line, dir, sizeof dir, &fl) == 0 && fl == LISTING_DRY_RUN &&
           !strcmp(dir, "homes/al ice"),
       "request: dry run, an escaped directory");
    snprintf(line, sizeof line, LISTING_REQ " - .");
    ok(listing_parse_request(line, dir, sizeof dir, &fl) == 0 && fl == 0 && !strcmp(dir, "."),
       "request: the home itself");
    snprintf(line, sizeof line, LISTING_REQ " hn .");
    ok(listing_parse_request(line, dir, sizeof dir, &fl) == 0 &&
           fl == (LISTING_DRY_RUN | LISTING_HASH),
       "request: dry run and digests");
    static const char *bad[] = {LISTING_REQ " x .", LISTING_REQ " hh .", LISTING_REQ " -n .",
                                LISTING_REQ "  .",  LISTING_REQ " - ",   "HPLIST-REQ 2 - ."};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(line, sizeof line, "%s", bad[i]);
        ok(listing_parse_request(line, dir, sizeof dir, &fl) == -EBADMSG, "request refused: '%s'",
           bad[i]);
    }
    ok(listing_sftp_mtime(1700000000123456789LL) == 1700000000000000000LL,
       "mtime: whole seconds, as sshfs shows them");
    ok(listing_sftp_mtime(-1) == 4294967295000000000LL, "mtime: before 1970, as 32-bit unsigned");
}

/* ---- the engine taking a listing -------------------------------------------- */

static char top[PATH_MAX];

static void put(const char *rel, const char *data)
{
    char p[PATH_MAX + 64];
    int fd;

    snprintf(p, sizeof p, "%s/%s", top, rel);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, data, strlen(data)) < 0)
        ok(0, "write %s", p);
    if (fd >= 0)
        close(fd);
}

/* The verb's output for the tree DIR (below top), into the file out. */
static int serve(const char *flags, const char *dir, const char *out)
{
    char in[PATH_MAX + 64], why[256];
    FILE *fi, *fo;
    int rc;

    snprintf(in, sizeof in, "%s/req", top);
    fi = fopen(in, "w+");
    fo = fopen(out, "w");
    if (!fi || !fo)
        return -EIO;
    fprintf(fi, "%s %s %s\n", LISTING_REQ, flags, dir);
    rewind(fi);
    rc = sync_list_serve(fi, fo, why, sizeof why);
    fclose(fi);
    fclose(fo);
    if (rc < 0)
        printf("# sync_list_serve: %s\n", why);
    return rc;
}

static int pass(const char *local, const char *listing, struct sync_stats *st)
{
    char l[PATH_MAX + 16], r[PATH_MAX + 16], db[PATH_MAX + 16], why[512];
    char *cat[] = {"cat", (char *)listing, NULL}, *none[] = {"/nonexistent/homeport", NULL};
    char **argv = listing ? cat : none;
    struct sync_opts o = {.local = l,
                          .remote = r,
                          .state = db,
                          .host = "h",
                          .now = 1700000000,
                          .max_delete_percent = 100,
                          .remote_list = argv,
                          .remote_dir = "R"};
    int rc;

    o.owner[0] = o.owner[1] = (uid_t)-1;
    o.group[0] = o.group[1] = (gid_t)-1;
    snprintf(l, sizeof l, "%s/%s", top, local);
    snprintf(r, sizeof r, "%s/R", top);
    snprintf(db, sizeof db, "%s/%s.db", top, local);
    rc = sync_run(&o, st, why, sizeof why);
    if (rc < 0)
        printf("# sync_run: %s\n", why);
    return rc;
}

static void test_engine(void)
{
    char lst[PATH_MAX + 16], cut[PATH_MAX + 16], odd[PATH_MAX + 16], hashed[PATH_MAX + 16];
    char cmd[6 * PATH_MAX];
    struct sync_stats st;
    struct stat sb;

    if (!tap_tmpdir(top, sizeof top, "listing"))
        return;
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/R/a/b' '%s/R/c d' '%s/L1' '%s/L2' '%s/L3'", top, top,
             top, top, top);
    ok(system(cmd) == 0, "trees made");
    put("R/a/b/f", "one");
    put("R/c d/g", "two");
    put("R/top", "three");
    snprintf(lst, sizeof lst, "%s/listing", top);
    ok(chdir(top) == 0, "in the tree's parent (the session's home on a server)");
    ok(serve("-", "R", lst) == 0, "sync_list_serve lists the tree");
    snprintf(hashed, sizeof hashed, "%s/hashed", top);
    ok(serve("h", "R", hashed) == 0, "  and with the files' digests");
    snprintf(
        cmd, sizeof cmd,
        "grep -q '^f 644 3 [0-9]* 7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed "
        "a/b/f$' '%s' && ! grep -q '^d .* [0-9a-f]\\{64\\} ' '%s'",
        hashed, hashed);
    ok(system(cmd) == 0, "  a file's is its SHA-256, a directory has none");

    ok(pass("L1", lst, &st) == 0 && st.listed == 1 && st.to_local == 6 && st.errors == 0,
       "a pass takes the listing: 6 entries copied here (listed %d, to_local %lu)", st.listed,
       st.to_local);
    snprintf(cmd, sizeof cmd, "%s/L1/c d/g", top);
    ok(stat(cmd, &sb) == 0 && sb.st_size == 3, "  the files came through the tree itself");

    /* a listing without one entry (and its count): the engine trusts it */
    snprintf(odd, sizeof odd, "%s/odd", top);
    snprintf(cmd, sizeof cmd, "grep -v ' top$' '%s' | sed 's/^END 6$/END 5/' > '%s'", lst, odd);
    ok(system(cmd) == 0, "a listing without 'top'");
    ok(pass("L2", odd, &st) == 0 && st.listed == 1 && st.to_local == 5,
       "  the pass copies what the listing has, not what the mount has (%lu)", st.to_local);

    /* cut short: refused whole, the tree is walked instead */
    snprintf(cut, sizeof cut, "%s/cut", top);
    snprintf(cmd, sizeof cmd, "head -n 4 '%s' > '%s'", lst, cut);
    ok(system(cmd) == 0, "a listing cut short");
    ok(pass("L3", cut, &st) == 0 && st.listed == -EBADMSG && st.to_local == 6,
       "  refused: the mount walked, everything copied (listed %d, to_local %lu)", st.listed,
       st.to_local);
    ok(strstr(st.list_why, "cut short") != NULL, "  and why: %s", st.list_why);

    /* out of order */
    snprintf(cmd, sizeof cmd,
             "(head -n 1 '%s'; sed -n '2,7p' '%s' | sort -r; tail -n 1 '%s') > '%s'", lst, lst, lst,
             odd);
    ok(system(cmd) == 0, "a listing out of order");
    ok(pass("L3", odd, &st) == 0 && st.listed == -EBADMSG, "  refused (%s)", st.list_why);

    /* a digest from the listing is used: a wrong one makes the same bytes a conflict */
    snprintf(cmd, sizeof cmd,
             "mkdir '%s/L4' && echo -n three > '%s/L4/top' && sed 's/^\\(f 644 5 [0-9]*\\) "
             "[0-9a-f]* top$/\\1 %064d top/' '%s' > '%s'",
             top, top, 1, hashed, odd);
    ok(system(cmd) == 0, "a hashed listing with a wrong digest for 'top'");
    ok(pass("L4", odd, &st) == 0 && st.listed == 1 && st.conflicts == 1,
       "  a first pass takes the server's digests (%lu conflicts)", st.conflicts);

    /* a command that cannot run */
    ok(pass("L3", NULL, &st) == 0 && st.listed == -EPROTO && st.errors == 0,
       "no lister: the mount walked (%s)", st.list_why);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    ok(chdir("/") == 0 && system(cmd) == 0, "cleaned up");
}

int main(void)
{
    test_escape();
    test_lines();
    test_request();
    test_engine();
    return tap_done();
}
