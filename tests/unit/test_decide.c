/* Three-way sync decisions, one table row per rule, and conflict names.
 *
 * A side is written as a short spec:
 *   -           absent
 *   f10         a file of 10 bytes       d  a directory     l5  a symlink,
 *   s           a socket or fifo                            target 5 bytes
 * followed by any of
 *   @N          mtime N seconds (default 100)     +N   and N nanoseconds
 *   iN          inode (default 1)                  cN   ctime seconds
 *   mOOO        mode, octal (default 644, dirs 755)  (default: the mtime)
 *   #x          content digest: 32 bytes 'x' (default: unknown)
 * A base is "LOCAL|REMOTE", or one spec for both sides; its digest is the
 * local spec's, its remote side has no inode or ctime. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "sync/decide.h"
#include "tap.h"

static bool parse(const char *s, struct sync_node *n)
{
    char *end;

    memset(n, 0, sizeof *n);
    if (*s == '-')
        return false;
    n->m.type = *s == 'f' ? SYNC_FILE : *s == 'd' ? SYNC_DIR : *s == 'l' ? SYNC_LINK : SYNC_SPECIAL;
    n->m.mode = *s == 'd' ? 0755 : 0644;
    n->m.size = strtoull(s + 1, &end, 10);
    n->m.mtime_ns = 100000000000;
    n->m.ino = 1;
    n->m.ctime_ns = -1;
    for (s = end; *s && *s != '|';) {
        char k = *s++;
        long long v = k == '#' ? *s++ : strtoll(s, &end, k == 'm' ? 8 : 10);

        s = k == '#' ? s : end;
        switch (k) {
        case '@': n->m.mtime_ns = v * 1000000000; break;
        case '+': n->m.mtime_ns += v; break;
        case 'i': n->m.ino = (uint64_t)v; break;
        case 'c': n->m.ctime_ns = v * 1000000000; break;
        case 'm': n->m.mode = (uint32_t)v; break;
        case '#': memset(n->digest, (int)v, sizeof n->digest); break;
        default: printf("# bad spec at '%s'\n", s - 1); return false;
        }
    }
    if (n->m.ctime_ns == -1)
        n->m.ctime_ns = n->m.mtime_ns;
    return true;
}

/* base: "-" (not in the database), "SPEC" or "LOCAL|REMOTE". */
static bool parse_base(const char *s, struct statedb_entry *e)
{
    const char *bar = strchr(s, '|');
    struct sync_node l, r;

    memset(e, 0, sizeof *e);
    e->path = "x";
    if (!parse(s, &l))
        return false;
    parse(bar ? bar + 1 : s, &r);
    r.m.ino = 0, r.m.ctime_ns = 0; /* never known remotely (the walk's may be anything) */
    e->local = l.m;
    e->remote = r.m;
    memcpy(e->digest, l.digest, sizeof e->digest);
    return true;
}

struct row {
    const char *base, *local, *remote;
    bool db;
    enum sync_action want;
    const char *what;
};

#define N SYNC_NOTHING
#define REC SYNC_RECORD
#define TO_R SYNC_COPY_TO_REMOTE
#define TO_L SYNC_COPY_TO_LOCAL
#define DEL_L SYNC_DELETE_LOCAL
#define DEL_R SYNC_DELETE_REMOTE
#define FORGET SYNC_FORGET
#define CMP SYNC_COMPARE
#define K_L SYNC_CONFLICT_KEEP_LOCAL
#define K_R SYNC_CONFLICT_KEEP_REMOTE
#define SKIP SYNC_SKIP_SPECIAL

static const struct row rows[] = {
    /* special files, whatever else */
    {"-", "s", "-", true, SKIP, "a fifo, local only"},
    {"f10", "f10", "s", true, SKIP, "a file replaced by a socket on the remote"},
    {"-", "s", "f10", false, SKIP, "special, union mode"},

    /* no database: a union, nothing deleted, both kept */
    {"-", "f10", "-", false, TO_R, "union: local only -> copied"},
    {"-", "-", "f10", false, TO_L, "union: remote only -> copied"},
    {"f10", "-", "f10", false, TO_L, "union: deleted locally since the base -> copied back"},
    {"f10", "f10", "-", false, TO_R, "union: deleted remotely -> copied back"},
    {"f10", "-", "-", false, N, "union: gone on both: nothing (no FORGET without a db)"},
    {"-", "f10#a", "f10#a", false, REC, "union: the same content on both -> record"},
    {"-", "f10@200#a", "f10@100#b", false, K_L, "union: different, local newer keeps the name"},
    {"-", "f10@100#a", "f10@200#b", false, K_R, "union: different, remote newer keeps the name"},
    {"-", "f10@100#a", "f10@100#b", false, K_R, "union: a tie: remote keeps the name"},
    {"-", "f10@100+900000000#a", "f10@100#b", false, K_R,
     "union: a tie to the second (sshfs has no ns): remote"},
    {"-", "f10@100", "f10@100", false, CMP, "union: same size, no digests -> compare"},
    {"-", "f10#a", "f10", false, CMP, "union: one digest missing -> compare"},
    {"-", "f10@300", "f12@100", false, K_L, "union: sizes differ: a conflict without hashing"},
    {"-", "d", "d@999m700", false, REC, "union: two dirs merge"},
    {"-", "d@100", "f10@200", false, K_L, "union: dir vs file: the dir keeps the name"},
    {"-", "l5@100", "d@50", false, K_R, "union: symlink vs dir: the dir keeps the name"},
    {"-", "l5#x", "l5#x@300", false, REC, "union: the same symlink target"},
    {"-", "l5#x@300", "l5#y", false, K_L, "union: different targets"},
    {"-", "l5", "l5#y", false, CMP, "union: symlink target not hashed -> compare"},
    {"-", "f10", "l10", false, K_R, "union: file vs symlink, same mtime: remote"},

    /* a database, the path new since */
    {"-", "f10", "-", true, TO_R, "new locally"},
    {"-", "-", "d", true, TO_L, "new dir remotely -> mkdir locally"},
    {"-", "-", "-", true, N, "never seen"},
    {"-", "f10#a", "f10#a", true, REC, "new on both, identical"},
    {"-", "f10#a@300", "f10#b", true, K_L, "new on both, different"},

    /* unchanged */
    {"f10#a", "f10#a", "f10", true, N, "unchanged on both"},
    {"f10", "f10", "f10", true, N, "unchanged, no digest needed"},
    {"f10@100|f10@50", "f10@100", "f10@50", true, N,
     "each side against its own base (mtimes differ across sides)"},
    {"f10", "f10", "f10i9c500", true, N, "remote inode and ctime are ignored"},

    /* changed on one side */
    {"f10", "f12", "f10", true, TO_R, "local size changed"},
    {"f10", "f10", "f12", true, TO_L, "remote size changed"},
    {"f10", "f10@200", "f10", true, TO_R, "local mtime, no digest in base -> the change is real"},
    {"f10", "f10", "f10@200", true, TO_L, "remote mtime, no digest in base"},
    {"f10#a", "f10@200", "f10", true, CMP, "local mtime moved, same size, digest in base"},
    {"f10#a", "f10", "f10@200", true, CMP, "remote mtime moved, same size, digest in base"},
    {"f10#a", "f10@200#a", "f10", true, REC, "after compare: same content -> record"},
    {"f10#a", "f10@200#b", "f10", true, TO_R, "after compare: different -> copy"},
    {"f10#a", "f10", "f10@200#a", true, REC, "after compare, remote: same content"},
    {"f10#a", "f10", "f10@200#c", true, TO_L, "after compare, remote: different"},
    {"f10#a", "f10c300", "f10", true, CMP, "local ctime only (a rewrite put back with touch -r)"},
    {"f10", "f10c300", "f10", true, TO_R, "ctime only, no digest in base: copy"},
    {"f10#a", "f10i2", "f10", true, CMP, "local inode only (replaced by a rename)"},
    {"f10", "f10m600", "f10", true, TO_R, "local chmod"},
    {"f10", "f10", "f10m755", true, TO_L, "remote chmod"},
    {"f10#a", "f10#b", "f10", true, N, "metadata all the same: trusted, the digest not looked at"},

    /* deletions */
    {"f10", "-", "f10", true, DEL_R, "deleted locally, unchanged remotely"},
    {"f10", "f10", "-", true, DEL_L, "deleted remotely, unchanged locally"},
    {"f10", "-", "f12", true, TO_L, "deleted locally, changed remotely: the change wins"},
    {"f10", "f12", "-", true, TO_R, "changed locally, deleted remotely: the change wins"},
    {"f10#a", "-", "f10@200", true, CMP, "deleted locally, remote perhaps changed -> compare"},
    {"f10#a", "-", "f10@200#a", true, DEL_R, "... and the content is the same: delete"},
    {"f10#a", "-", "f10@200#b", true, TO_L, "... and it differs: copy back"},
    {"f10", "-", "-", true, FORGET, "deleted on both"},
    {"d", "-", "-", true, FORGET, "a dir deleted on both"},

    /* changed on both */
    {"f10", "f12@200", "f14@300", true, K_R, "both changed: remote newer keeps the name"},
    {"f10", "f12@300", "f14@200", true, K_L, "both changed: local newer keeps the name"},
    {"f10", "f12@300", "f14@300", true, K_R, "both changed, a tie: remote"},
    {"f10", "f12@300#z", "f12@200#z", true, REC, "both changed to the same content"},
    {"f10", "f12@300", "f12@200", true, CMP, "both changed, same size, no digests"},
    {"f10#a", "f12@300#y", "f12@200#z", true, K_L, "both changed, different content"},

    /* directories */
    {"d", "d@500", "d@600", true, N, "dir mtimes ignored"},
    {"d", "d", "d@100+5", true, N, "dir mtime ns ignored"},
    {"d", "dm700", "d", true, TO_R, "dir chmod locally"},
    {"d", "d", "dm700", true, TO_L, "dir chmod remotely"},
    {"d", "dm700", "dm711", true, REC, "dir chmod on both: two dirs, no conflict"},
    {"d", "-", "d@500", true, DEL_R, "dir deleted locally (its content decided path by path)"},
    {"d", "d@500", "-", true, DEL_L, "dir deleted remotely"},

    /* symlinks */
    {"l5#x", "l5#x", "l5#x", true, N, "symlink unchanged"},
    {"l5#x", "l5#y", "l5#x", true, TO_R, "local symlink retargeted, same length"},
    {"l5#x", "l5#x", "l7#w", true, TO_L, "remote symlink retargeted"},
    {"l5#x", "l5#x@300", "l5#x", true, REC, "symlink recreated, same target: record"},
    {"l5#x", "l7@300", "l5#x", true, TO_R, "target not hashed but longer: changed"},
    {"l5#x", "l5@300", "l5#x", true, CMP, "target not hashed, same length, moved: compare"},
    {"l5", "l5@300#y", "l5", true, TO_R, "no digest in base, current hashed: changed"},
    {"l5#x", "l5#y@300", "l5#z@200", true, K_L, "symlink retargeted on both"},
    {"l5#x", "l5#y", "l5#y", true, REC, "retargeted on both, to the same"},
    {"l5#x", "l5#xm777", "l5#x", true, REC, "a symlink's mode: nothing copied"},

    /* type changes */
    {"f10", "d", "f10", true, TO_R, "file -> dir locally: replaces the remote file"},
    {"f10", "f10", "l5#q", true, TO_L, "file -> symlink remotely"},
    {"d", "f10", "d", true, TO_R, "dir -> file locally"},
    {"l5#x", "l5#x", "d", true, TO_L, "symlink -> dir remotely"},
    {"f10", "d", "-", true, TO_R, "file -> dir locally, deleted remotely: the change wins"},
    {"d", "-", "l5#q", true, TO_L, "dir deleted locally, -> symlink remotely"},
    {"f10", "d@100", "l5#q@900", true, K_L, "type changed on both: the dir keeps the name"},
    {"f10", "l5#q@900", "d@100", true, K_R, "type changed on both: the dir keeps the name (2)"},
    {"f10", "d", "d", true, REC, "file -> dir on both: merged"},
    {"f10", "l5#q@300", "f12@200", true, K_L, "symlink vs changed file: newer keeps the name"},
    {"d", "f10#a", "f10#a", true, REC, "dir -> the same file on both"},
    {"d", "f10@300", "f12@100", true, K_L, "dir -> different files on both"},
};

static void test_rows(void)
{
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        const struct row *r = &rows[i];
        struct statedb_entry base;
        struct sync_node l, rm;
        bool hb = parse_base(r->base, &base), hl = parse(r->local, &l), hr = parse(r->remote, &rm);
        enum sync_action got =
            sync_decide(hb ? &base : NULL, hl ? &l : NULL, hr ? &rm : NULL, r->db);

        ok(got == r->want, "%s [%s | %s %s%s] -> %s", r->what, r->base, r->local, r->remote,
           r->db ? "" : ", no db", sync_action_name(r->want));
        if (got != r->want)
            printf("#   got %s\n", sync_action_name(got));

        /* COMPARE must end: with the sides present hashed, never again */
        if (got == SYNC_COMPARE) {
            static const char *const hashes[] = {"aa", "ab", "ba"}; /* base has 'a' */
            for (size_t h = 0; h < 3; h++) {
                memset(l.digest, hashes[h][0], sizeof l.digest);
                memset(rm.digest, hashes[h][1], sizeof rm.digest);
                got = sync_decide(hb ? &base : NULL, hl ? &l : NULL, hr ? &rm : NULL, r->db);
                ok(got != SYNC_COMPARE, "  hashed (local %c, remote %c), decided: %s", hashes[h][0],
                   hashes[h][1], sync_action_name(got));
            }
        }
    }
    ok(strcmp(sync_action_name(SYNC_SKIP_SPECIAL), "SKIP_SPECIAL") == 0 &&
           strcmp(sync_action_name((enum sync_action)99), "?") == 0,
       "action names");
}

struct ncase {
    const char *name, *host, *want;
};

static void test_names(void)
{
    static const struct ncase cases[] = {
        {"notes.txt", "pc-12", "notes (conflict pc-12 2024-05-01 142233).txt"},
        {"a/b/report.final.pdf", "pc-12",
         "a/b/report.final (conflict pc-12 2024-05-01 142233).pdf"},
        {".bashrc", "pc-12", ".bashrc (conflict pc-12 2024-05-01 142233)"},
        {".config.bak", "pc-12", ".config (conflict pc-12 2024-05-01 142233).bak"},
        {"Makefile", "pc-12", "Makefile (conflict pc-12 2024-05-01 142233)"},
        {"dir.d/noext", "pc-12", "dir.d/noext (conflict pc-12 2024-05-01 142233)"},
        {"archive.tar.gz", "pc-12", "archive.tar (conflict pc-12 2024-05-01 142233).gz"},
        {"file.", "pc-12", "file. (conflict pc-12 2024-05-01 142233)"},
        {"..", "pc-12", ".. (conflict pc-12 2024-05-01 142233)"},
        {"a/.x/..y", "pc-12", "a/.x/. (conflict pc-12 2024-05-01 142233).y"},
        {"x", "my host/evil:1\xc3\xa9", "x (conflict my_host_evil_1__ 2024-05-01 142233)"},
        {"x", "", "x (conflict unknown 2024-05-01 142233)"},
        {"x", NULL, "x (conflict unknown 2024-05-01 142233)"},
        {"x", "h.example.org", "x (conflict h.example.org 2024-05-01 142233)"},
    };
    const time_t when = 1714573353; /* 2024-05-01 14:22:33 UTC */
    char out[4200], name[600], want[600];
    const char *last, *suffix = " (conflict pc-12 2024-05-01 142233)";
    size_t slen = strlen(suffix);
    int rc;

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rc = sync_conflict_name(cases[i].name, cases[i].host, when, 0, out, sizeof out);
        ok(rc == 0, "'%s' named (rc %d)", cases[i].name, rc);
        is_str(out, cases[i].want, "  as '%s'", cases[i].want);
    }

    /* 255 bytes: the stem is cut, never the suffix; the directory is not counted */
    memset(name, 0, sizeof name);
    memcpy(name, "some/dir/", 9);
    memset(name + 9, 'n', 251);
    memcpy(name + 9 + 251, ".txt", 4);
    rc = sync_conflict_name(name, "pc-12", when, 0, out, sizeof out);
    last = strrchr(out, '/') + 1;
    snprintf(want, sizeof want, "%.*s%s.txt", (int)(255 - 4 - slen), name + 9, suffix);
    ok(rc == 0 && strlen(last) == 255, "a 255-byte name: 255 bytes again (%zu)", strlen(last));
    is_str(last, want, "  the stem cut");
    ok(strncmp(out, "some/dir/", 9) == 0, "  the directory kept");

    /* cut at a character, not inside one */
    memset(name, 0, sizeof name);
    for (size_t i = 0; i < 125; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    memcpy(name + 250, ".txt", 4);
    rc = sync_conflict_name(name, "pc-1", when, 0, out, sizeof out); /* the cut would be at 217 */
    ok(rc == 0 && strlen(out) == 216 + slen - 1 + 4 && strncmp(out, name, 216) == 0 &&
           out[216] == ' ',
       "UTF-8 stem cut at a character boundary (216 bytes, not 217: %zu in all)", strlen(out));

    /* impossible, errors */
    memset(name, 0, sizeof name);
    name[0] = 'a';
    name[1] = '.';
    memset(name + 2, 'e', 220);
    ok(sync_conflict_name(name, "pc-12", when, 0, out, sizeof out) == -ENAMETOOLONG,
       "an extension too long for any stem: -ENAMETOOLONG");
    name[2 + 255 - 1 - slen - 1] = '\0'; /* stem 1 + suffix + extension = 255 */
    rc = sync_conflict_name(name, "pc-12", when, 0, out, sizeof out);
    ok(rc == 0 && strlen(out) == 255, "and one byte of stem just fits");
    ok(sync_conflict_name("", "h", when, 0, out, sizeof out) == -EINVAL &&
           sync_conflict_name("dir/", "h", when, 0, out, sizeof out) == -EINVAL,
       "no final component: -EINVAL");
    ok(sync_conflict_name("notes.txt", "pc-12", when, 0, out, 44) == -ERANGE &&
           sync_conflict_name("notes.txt", "pc-12", when, 0, out, 45) == 0,
       "out one byte short: -ERANGE; exact: fits");
    memset(name, 'h', 300);
    name[300] = '\0';
    rc = sync_conflict_name("x", name, when, 0, out, sizeof out);
    ok(rc == 0 && strlen(out) == strlen("x (conflict  2024-05-01 142233)") + 64,
       "a 300-byte host cut to 64");
    rc = sync_conflict_name("x", "h", 0, 0, out, sizeof out);
    is_str(out, "x (conflict h 1970-01-01 000000)", "the epoch, UTC");
    rc = sync_conflict_name("d/notes.txt", "h", when, 2, out, sizeof out);
    is_str(out, "d/notes (conflict h 2024-05-01 142233 2).txt", "a second conflict in the second");
    rc = sync_conflict_name("d/notes.txt", "h", when, 1, out, sizeof out);
    is_str(out, "d/notes (conflict h 2024-05-01 142233).txt", "  seq 1 is the first");
}

int main(void)
{
    test_rows();
    test_names();
    return tap_done();
}
