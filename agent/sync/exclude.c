/* sync/exclude: see exclude.h. */
#include "exclude.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A pattern compiles to a string of tokens, each the set of bytes it takes:
 * a literal is a set of one, '?' and '*' all but '/', "**" all.  A loop
 * token ('*', "**") takes any number of its bytes, a plain one exactly one. */
struct ex_tok {
    bool loop;
    unsigned char set[32];
};

struct exclude_rule {
    struct ex_tok *tok;
    size_t ntok;
    bool anchored, dir_only;
    bool top_wild2; /* starts with "**" and '/': may also match at the top */
};

static void set_add(struct ex_tok *t, unsigned lo, unsigned hi)
{
    for (unsigned c = lo; c <= hi && c < 256; c++)
        t->set[c >> 3] |= (unsigned char)(1u << (c & 7));
}

static void set_del(struct ex_tok *t, unsigned char c)
{
    t->set[c >> 3] &= (unsigned char)~(1u << (c & 7));
}

static bool set_has(const struct ex_tok *t, unsigned char c)
{
    return t->set[c >> 3] & (1u << (c & 7));
}

/* Every byte but NUL, and but '/' unless slash. */
static void set_fill(struct ex_tok *t, bool slash)
{
    memset(t->set, 0xff, sizeof t->set);
    set_del(t, '\0');
    if (!slash)
        set_del(t, '/');
}

/* A class after its '['.  Returns what follows its ']', NULL if none. */
static const char *parse_class(struct ex_tok *t, const char *p, const char *end)
{
    bool neg = p < end && (*p == '!' || *p == '^');
    const char *first = neg ? ++p : p;

    while (p < end && (*p != ']' || p == first)) {
        unsigned char lo, hi;

        if (*p == '\\' && ++p == end)
            return NULL;
        lo = hi = (unsigned char)*p++;
        if (p + 1 < end && *p == '-' && p[1] != ']') {
            p++;
            if (*p == '\\' && ++p == end)
                return NULL;
            hi = (unsigned char)*p++;
        }
        set_add(t, lo, hi);
    }
    if (p == end)
        return NULL;
    if (neg)
        for (size_t i = 0; i < sizeof t->set; i++)
            t->set[i] = (unsigned char)~t->set[i];
    set_del(t, '\0');
    set_del(t, '/');
    return p + 1;
}

static const char oom[] = "out of memory";

/* Compile pat into r.  NULL, or what is wrong with it (r->tok may then be
 * allocated all the same: the caller frees it). */
static const char *compile(struct exclude_rule *r, const char *pat)
{
    size_t len = strlen(pat);
    const char *p = pat, *end = pat + len;

    if (len > EXCLUDE_PATTERN_MAX)
        return "pattern longer than 4096 bytes";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)pat[i] < 0x20 || pat[i] == 0x7f)
            return "control character in pattern";
    if (*p == '/')
        r->anchored = true, p++;
    if (end > p && end[-1] == '/')
        r->dir_only = true, end--;
    if (p == end)
        return "empty pattern";
    if (!(r->tok = calloc((size_t)(end - p), sizeof *r->tok)))
        return oom;
    while (p < end) {
        struct ex_tok *t = &r->tok[r->ntok++];

        if (*p == '*') {
            size_t n = strspn(p, "*"); /* stops at end: *end is '/' or NUL */
            t->loop = true;
            set_fill(t, n > 1);
            p += n;
            if (r->ntok == 1 && n > 1 && p < end && *p == '/')
                r->top_wild2 = true;
        } else if (*p == '?') {
            set_fill(t, false);
            p++;
        } else if (*p == '[') {
            if (!(p = parse_class(t, p + 1, end)))
                return "unterminated '['";
        } else {
            if (*p == '\\' && ++p == end)
                return "pattern ends with a lone '\\'";
            set_add(t, (unsigned char)*p, (unsigned char)*p);
            p++;
        }
    }
    return NULL;
}

static int add(struct exclude_list *l, const char *pattern, const char **err)
{
    struct exclude_rule r = {0};

    if ((*err = compile(&r, pattern))) {
        free(r.tok);
        return *err == oom ? -ENOMEM : -EINVAL;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        struct exclude_rule *v = realloc(l->rules, cap * sizeof *v);
        if (!v) {
            free(r.tok);
            *err = oom;
            return -ENOMEM;
        }
        l->rules = v, l->cap = cap;
    }
    l->rules[l->n++] = r;
    return 0;
}

int exclude_add(struct exclude_list *l, const char *pattern)
{
    const char *err;

    return add(l, pattern, &err);
}

void exclude_free(struct exclude_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->rules[i].tok);
    free(l->rules);
    free(l->source);
    memset(l, 0, sizeof *l);
}

/* One file, every line.  0 or -errno, the reason in why. */
static int read_list(struct exclude_list *l, FILE *f, const char *path, char *why, size_t whylen)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned lineno = 0;
    int rc = 0;

    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)n;
        const char *err = "control character in pattern";

        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (!memchr(line, '\0', len)) {
            while (len > 0 &&
                   (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
                len--;
            line[len] = '\0';
            if (len == 0 || line[0] == '#')
                continue;
            rc = add(l, line, &err);
        } else {
            rc = -EINVAL;
        }
        if (rc < 0)
            snprintf(why, whylen, "%s:%u: %s", path, lineno, err);
    }
    if (rc == 0 && ferror(f)) {
        rc = errno ? -errno : -EIO;
        snprintf(why, whylen, "%s: %s", path, strerror(-rc));
    }
    free(line);
    return rc;
}

int exclude_load(struct exclude_list *l, const char *default_path, char *why, size_t whylen)
{
    char local[4096];
    const char *path = local;
    FILE *f = NULL;
    int rc;

    memset(l, 0, sizeof *l);
    if (snprintf(local, sizeof local, "%s.local", default_path) >= (int)sizeof local) {
        snprintf(why, whylen, "%s: path too long", default_path);
        return -ENAMETOOLONG;
    }
    f = fopen(local, "re");
    if (!f && errno == ENOENT) /* no site list: the default one */
        f = fopen(path = default_path, "re");
    if (!f) {
        rc = -errno;
        snprintf(why, whylen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    rc = read_list(l, f, path, why, whylen);
    fclose(f);
    if (rc == 0 && !(l->source = strdup(path))) {
        snprintf(why, whylen, "%s: %s", path, oom);
        rc = -ENOMEM;
    }
    if (rc < 0)
        exclude_free(l);
    return rc;
}

/* Mark the states reached without input: past each loop that is on. */
static void closure(const struct exclude_rule *r, unsigned char *s)
{
    for (size_t i = 0; i < r->ntok; i++)
        if (s[i] && r->tok[i].loop)
            s[i + 1] = 1;
}

/* Put a match starting here in s (a "**" and '/' at the start may be
 * skipped: tokens 0 and 1). */
static void start_here(const struct exclude_rule *r, unsigned char *s)
{
    s[0] = 1;
    if (r->top_wild2)
        s[2] = 1;
    closure(r, s);
}

/* States 0..ntok, ntok = matched.  An unanchored rule starts a match at
 * every component; matched at a '/' means a leading directory matched. */
static bool rule_match(const struct exclude_rule *r, const char *path, bool is_dir)
{
    unsigned char a[EXCLUDE_PATTERN_MAX + 1], b[EXCLUDE_PATTERN_MAX + 1];
    unsigned char *cur = a, *nxt = b, *tmp;
    size_t n = r->ntok;

    memset(cur, 0, n + 1);
    start_here(r, cur);
    for (const char *p = path;; p++) {
        unsigned char c = (unsigned char)*p;
        bool live = false;

        if (cur[n] && (c == '/' || (c == '\0' && (is_dir || !r->dir_only))))
            return true;
        if (c == '\0')
            return false;
        memset(nxt, 0, n + 1);
        for (size_t i = 0; i < n; i++)
            if (cur[i] && set_has(&r->tok[i], c))
                nxt[r->tok[i].loop ? i : i + 1] = 1;
        if (c == '/' && !r->anchored)
            start_here(r, nxt);
        else
            closure(r, nxt);
        for (size_t i = 0; i <= n && !live; i++)
            live = nxt[i];
        tmp = cur, cur = nxt, nxt = tmp;
        if (!live) { /* nothing left until the next component, if any */
            if (r->anchored || !(p = strchr(p + 1, '/')))
                return false;
            p--; /* the loop goes on at the '/' */
        }
    }
}

bool exclude_match(const struct exclude_list *l, const char *relpath, bool is_dir)
{
    while (*relpath == '/')
        relpath++;
    if (*relpath == '\0')
        return false;
    for (size_t i = 0; i < l->n; i++)
        if (rule_match(&l->rules[i], relpath, is_dir))
            return true;
    return false;
}
