/* exclude: an exclusion list and the paths matched against it.  The input
 * is FLAGS, then the list file, then (after a NUL) one path; without a
 * NUL, a few paths of a home are tried.  FLAGS bit 0: the path is a
 * directory; bit 1: the list is the site's FILE.local (a default list is
 * there too, and must be ignored).
 *
 * Checked: a list that loads has a rule for each line that is not blank or
 * a comment, and names the file it came from; a refusal says FILE:LINE;
 * the list matches when one of its patterns on its own does; and each
 * pattern without a class ('[') matches as the reference below says: the
 * rules of exclude.h written out as a dynamic program over the candidate
 * subpaths (each leading directory and the path, each starting at the
 * root or, unanchored, at any component), no NFA. */
#include "fuzz.h"
#include "sync/exclude.h"

static char list_path[200], local_path[210];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(list_path, sizeof list_path, "%s/sync-exclude", fz_tmpdir());
    snprintf(local_path, sizeof local_path, "%s.local", list_path);
    return 0;
}

/* ---- the reference ------------------------------------------------------ */

enum { R_LIT, R_ONE, R_STAR, R_STAR2, R_CLASS };
#define REF_TOK 64
#define REF_LEN 128

struct ref {
    unsigned char kind[REF_TOK], c[REF_TOK];
    unsigned char cls[REF_TOK][32]; /* R_CLASS: the bytes it takes, a bit each */
    size_t n;
    bool anchored, dir_only, top_wild2;
};

/* 1: compiled; 0: not a pattern exclude_add takes; -1: out of the
 * reference's scope (too long). */
static int ref_compile(struct ref *r, const char *pat)
{
    size_t len = strlen(pat);
    const char *p = pat, *end = pat + len;
    bool over = false;

    memset(r, 0, sizeof *r);
    if (len > EXCLUDE_PATTERN_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)pat[i] < 0x20 || pat[i] == 0x7f)
            return 0;
    if (*p == '/')
        r->anchored = true, p++;
    if (end > p && end[-1] == '/')
        r->dir_only = true, end--;
    if (p == end)
        return 0;
    while (p < end) {
        if (r->n == REF_TOK) /* out of scope, but go on: is it a pattern? */
            over = true, r->n--;
        if (*p == '[') {
            /* "[...]": ranges, '!' or '^' first negates, ']' first is
             * literal, '\\' escapes; never '/' (nor NUL) */
            bool set[256] = {false}, neg;
            const char *first;
            p++;
            neg = p < end && (*p == '!' || *p == '^');
            if (neg)
                p++;
            first = p;
            while (p < end && (*p != ']' || p == first)) {
                unsigned lo, hi;
                if (*p == '\\' && ++p == end)
                    return 0;
                lo = hi = (unsigned char)*p++;
                if (p + 1 < end && *p == '-' && p[1] != ']') {
                    if (*++p == '\\' && ++p == end)
                        return 0;
                    hi = (unsigned char)*p++;
                }
                for (unsigned c = lo; c <= hi; c++)
                    set[c] = true;
            }
            if (p == end)
                return 0; /* unterminated */
            p++;
            for (unsigned c = 0; c < 256; c++)
                if ((set[c] != neg) && c != '/' && c != 0)
                    r->cls[r->n][c >> 3] |= (unsigned char)(1u << (c & 7));
            r->kind[r->n++] = R_CLASS;
            continue;
        }
        if (*p == '*') {
            size_t n = 0;
            while (p < end && *p == '*')
                p++, n++;
            r->kind[r->n] = n > 1 ? R_STAR2 : R_STAR;
            if (r->n == 0 && n > 1 && p < end && *p == '/')
                r->top_wild2 = true;
        } else if (*p == '?') {
            r->kind[r->n] = R_ONE;
            p++;
        } else {
            if (*p == '\\' && ++p == end)
                return 0;
            r->kind[r->n] = R_LIT;
            r->c[r->n] = (unsigned char)*p++;
        }
        r->n++;
    }
    return over ? -1 : 1;
}

/* Whether tokens from..n match all of s[0..len). */
static bool ref_full(const struct ref *r, size_t from, const char *s, size_t len)
{
    static bool dp[REF_TOK + 1][REF_LEN + 1];

    for (size_t j = 0; j <= len; j++)
        dp[r->n][j] = j == len;
    for (size_t i = r->n; i-- > from;) {
        for (size_t j = len + 1; j-- > 0;) {
            bool more = j < len;
            unsigned char ch = more ? (unsigned char)s[j] : 0;
            switch (r->kind[i]) {
            case R_LIT: dp[i][j] = more && ch == r->c[i] && dp[i + 1][j + 1]; break;
            case R_ONE: dp[i][j] = more && ch != '/' && dp[i + 1][j + 1]; break;
            case R_CLASS:
                dp[i][j] = more && (r->cls[i][ch >> 3] >> (ch & 7) & 1) && dp[i + 1][j + 1];
                break;
            case R_STAR: dp[i][j] = dp[i + 1][j] || (more && ch != '/' && dp[i][j + 1]); break;
            default: dp[i][j] = dp[i + 1][j] || (more && dp[i][j + 1]); break;
            }
        }
    }
    return dp[from][0];
}

static bool ref_match(const struct ref *r, const char *path, bool is_dir)
{
    size_t len = strlen(path);

    for (size_t s = 0; s < len; s++) {
        if (s > 0 && (r->anchored || path[s - 1] != '/'))
            continue;
        for (size_t e = s + 1; e <= len; e++) {
            if (e < len && path[e] != '/')
                continue;
            if (e == len && r->dir_only && !is_dir)
                continue;
            if (ref_full(r, 0, path + s, e - s) ||
                (r->top_wild2 && ref_full(r, 2, path + s, e - s)))
                return true;
        }
    }
    return false;
}

/* A relative path as exclude_match takes it: no empty component. */
static bool path_ok(const char *p)
{
    if (!*p || *p == '/')
        return false;
    for (; *p; p++)
        if (*p == '/' && (p[1] == '/' || p[1] == '\0'))
            return false;
    return true;
}

/* ---- the target ---------------------------------------------------------- */

/* A pattern of the list, compiled on its own and by the reference. */
struct pat {
    const char *text;
    struct exclude_list one;
    int added, ref; /* exclude_add's return; ref_compile's */
    struct ref *r;  /* the first REF_PATS patterns only */
};
#define REF_PATS 64
static struct ref refs[REF_PATS + 1]; /* the last one: scratch */

static void check_path(const struct exclude_list *l, struct pat *pats, size_t npats,
                       const char *path, bool is_dir)
{
    bool any = false, got = exclude_match(l, path, is_dir);
    bool in_scope = strlen(path) <= REF_LEN && path_ok(path);

    for (size_t i = 0; i < npats; i++) {
        if (pats[i].added < 0)
            continue;
        bool m = exclude_match(&pats[i].one, path, is_dir);
        any |= m;
        if (in_scope && pats[i].ref == 1 && pats[i].r)
            FZ_CHECK(m == ref_match(pats[i].r, path, is_dir),
                     "pattern '%s' on '%s' (dir %d): exclude_match says %d", pats[i].text, path,
                     is_dir, m);
    }
    FZ_CHECK(got == any, "the list says %d for '%s', its patterns %d", got, path, any);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const homes[] = {"a",
                                        "a/b/c",
                                        ".cache/mozilla/firefox",
                                        "Documents/report.txt",
                                        "x/.cache",
                                        "Downloads/big.iso",
                                        "a b/c*d/?e",
                                        ".local/share/Trash/files/x"};
    struct exclude_list l;
    char why[600];

    if (size < 1)
        return 0;
    bool is_dir = data[0] & 1, local = data[0] & 2;
    const char *text = (const char *)data + 1, *nul = memchr(text, '\0', size - 1);
    size_t tlen = nul ? (size_t)(nul - text) : size - 1;

    unlink(local_path);
    if (local) {
        fz_write(list_path, "*\n", 2); /* the default: would exclude everything */
        fz_write(local_path, text, tlen);
    } else {
        fz_write(list_path, text, tlen);
    }
    int rc = exclude_load(&l, list_path, why, sizeof why);
    const char *file = local ? local_path : list_path;
    if (rc < 0) {
        FZ_CHECK(rc == -EINVAL && !strncmp(why, file, strlen(file)) && why[strlen(file)] == ':',
                 "rc %d: %s", rc, why);
        return 0;
    }
    FZ_CHECK(l.source && !strcmp(l.source, file), "source %s, not %s", l.source, file);

    /* the lines as exclude.h says they are read */
    char *copy = fz_str((const uint8_t *)text, tlen);
    struct pat *pats = NULL;
    size_t npats = 0;
    for (char *line = copy, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        pats = realloc(pats, (npats + 1) * sizeof *pats);
        if (!pats)
            abort();
        struct pat *pt = &pats[npats++];
        memset(&pt->one, 0, sizeof pt->one);
        pt->text = line;
        pt->added = exclude_add(&pt->one, line);
        pt->r = npats <= REF_PATS ? &refs[npats - 1] : NULL;
        pt->ref = ref_compile(pt->r ? pt->r : &refs[REF_PATS], line);
        FZ_CHECK((pt->added == 0) == (pt->ref != 0),
                 "exclude_add says %d to '%s', the reference %d", pt->added, line, pt->ref);
    }
    FZ_CHECK(l.n == npats, "%zu rules from %zu patterns", l.n, npats);

    if (nul) {
        char *path = fz_str((const uint8_t *)nul + 1, size - 1 - tlen - 1);
        check_path(&l, pats, npats, path, is_dir);
        free(path);
    } else {
        for (size_t i = 0; i < sizeof homes / sizeof homes[0]; i++)
            check_path(&l, pats, npats, homes[i], is_dir);
    }
    FZ_CHECK(!exclude_match(&l, "", true) && !exclude_match(&l, "/", true), "the root excluded");
    for (size_t i = 0; i < npats; i++)
        exclude_free(&pats[i].one);
    free(pats);
    free(copy);
    exclude_free(&l);
    return 0;
}
