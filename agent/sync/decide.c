/* sync/decide: see decide.h. */
#include "decide.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* How a side stands against its base, or two sides against each other. */
enum delta {
    D_SAME,    /* as in base */
    D_MOVED,   /* same content, some metadata moved: record it */
    D_MAYBE,   /* only the content can tell */
    D_CHANGED, /* changed, or different */
};

static bool known(const unsigned char *digest)
{
    for (size_t i = 0; i < STATEDB_DIGEST; i++)
        if (digest[i])
            return true;
    return false;
}

static bool meta_equal(const struct sync_meta *a, const struct sync_meta *b, bool local)
{
    return a->type == b->type && a->mode == b->mode && a->size == b->size &&
           a->mtime_ns == b->mtime_ns &&
           (!local || (a->ino == b->ino && a->ctime_ns == b->ctime_ns));
}

/* n against its side's base b (digest: base's). */
static enum delta delta(const struct sync_meta *b, const unsigned char *digest,
                        const struct sync_node *n, bool local)
{
    const struct sync_meta *m = &n->m;
    bool both = known(digest) && known(n->digest);

    if (m->type != b->type)
        return D_CHANGED;
    if (m->type == SYNC_DIR)
        return m->mode != b->mode ? D_CHANGED : D_SAME;
    if (m->type == SYNC_LINK && both && memcmp(digest, n->digest, STATEDB_DIGEST) != 0)
        return D_CHANGED;
    if (m->type == SYNC_LINK && both) /* the same target: its length, mtime do not matter */
        return meta_equal(b, m, local) ? D_SAME : D_MOVED;
    if (m->size != b->size || (m->type == SYNC_FILE && m->mode != b->mode))
        return D_CHANGED;
    if (meta_equal(b, m, local))
        return D_SAME;
    if (both)
        return memcmp(digest, n->digest, STATEDB_DIGEST) != 0 ? D_CHANGED : D_MOVED;
    if (!known(n->digest) && (known(digest) || m->type == SYNC_LINK))
        return D_MAYBE; /* once the engine has filled n->digest, never again */
    return D_CHANGED;
}

/* The two sides against each other: D_SAME, D_MAYBE or D_CHANGED. */
static enum delta compare(const struct sync_node *l, const struct sync_node *r)
{
    if (l->m.type != r->m.type)
        return D_CHANGED;
    if (l->m.type == SYNC_DIR)
        return D_SAME;
    if (l->m.size != r->m.size)
        return D_CHANGED;
    if (!known(l->digest) || !known(r->digest))
        return D_MAYBE;
    return memcmp(l->digest, r->digest, STATEDB_DIGEST) == 0 ? D_SAME : D_CHANGED;
}

static int64_t seconds(int64_t ns)
{
    int64_t s = ns / 1000000000;

    return ns % 1000000000 < 0 ? s - 1 : s;
}

/* Both present, no base to go by (or both changed). */
static enum sync_action both(const struct sync_node *l, const struct sync_node *r)
{
    bool ldir = l->m.type == SYNC_DIR, rdir = r->m.type == SYNC_DIR;

    switch (compare(l, r)) {
    case D_SAME: return SYNC_RECORD;
    case D_MAYBE: return SYNC_COMPARE;
    default: break;
    }
    if (ldir != rdir)
        return ldir ? SYNC_CONFLICT_KEEP_LOCAL : SYNC_CONFLICT_KEEP_REMOTE;
    return seconds(l->m.mtime_ns) > seconds(r->m.mtime_ns) ? SYNC_CONFLICT_KEEP_LOCAL
                                                           : SYNC_CONFLICT_KEEP_REMOTE;
}

enum sync_action sync_decide(const struct statedb_entry *base, const struct sync_node *local,
                             const struct sync_node *remote, bool have_db)
{
    enum delta dl = D_SAME, dr = D_SAME;

    if ((local && local->m.type == SYNC_SPECIAL) || (remote && remote->m.type == SYNC_SPECIAL))
        return SYNC_SKIP_SPECIAL;
    if (!have_db || !base) {
        if (local && remote)
            return both(local, remote);
        return local ? SYNC_COPY_TO_REMOTE : remote ? SYNC_COPY_TO_LOCAL : SYNC_NOTHING;
    }
    if (local)
        dl = delta(&base->local, base->digest, local, true);
    if (remote)
        dr = delta(&base->remote, base->digest, remote, false);
    if (dl == D_MAYBE || dr == D_MAYBE)
        return SYNC_COMPARE;
    if (!local && !remote)
        return SYNC_FORGET;
    if (!local) /* deleted here: a change there wins */
        return dr == D_CHANGED ? SYNC_COPY_TO_LOCAL : SYNC_DELETE_REMOTE;
    if (!remote)
        return dl == D_CHANGED ? SYNC_COPY_TO_REMOTE : SYNC_DELETE_LOCAL;
    if (dl == D_CHANGED && dr == D_CHANGED)
        return both(local, remote);
    if (dl == D_CHANGED)
        return SYNC_COPY_TO_REMOTE;
    if (dr == D_CHANGED)
        return SYNC_COPY_TO_LOCAL;
    return dl == D_SAME && dr == D_SAME ? SYNC_NOTHING : SYNC_RECORD;
}

const char *sync_action_name(enum sync_action a)
{
    static const char *const names[] = {
        [SYNC_NOTHING] = "NOTHING",
        [SYNC_RECORD] = "RECORD",
        [SYNC_COPY_TO_REMOTE] = "COPY_TO_REMOTE",
        [SYNC_COPY_TO_LOCAL] = "COPY_TO_LOCAL",
        [SYNC_DELETE_LOCAL] = "DELETE_LOCAL",
        [SYNC_DELETE_REMOTE] = "DELETE_REMOTE",
        [SYNC_FORGET] = "FORGET",
        [SYNC_COMPARE] = "COMPARE",
        [SYNC_CONFLICT_KEEP_LOCAL] = "CONFLICT_KEEP_LOCAL",
        [SYNC_CONFLICT_KEEP_REMOTE] = "CONFLICT_KEEP_REMOTE",
        [SYNC_SKIP_SPECIAL] = "SKIP_SPECIAL",
    };

    return (unsigned)a < sizeof names / sizeof *names ? names[a] : "?";
}

#define CONFLICT_HOST_MAX 64

static bool host_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

int sync_conflict_name(const char *name, const char *host, time_t when, unsigned seq, char *out,
                       size_t outlen)
{
    const char *slash = strrchr(name, '/'), *last = slash ? slash + 1 : name, *dot;
    size_t dirlen = (size_t)(last - name), len = strlen(last), stem = len, elen, slen;
    char h[CONFLICT_HOST_MAX + 1], suffix[CONFLICT_HOST_MAX + 80], nth[16] = "";
    size_t hn = 0;
    struct tm tm;

    if (len == 0)
        return -EINVAL;
    dot = strrchr(last, '.');
    if (dot && dot != last && dot[1] != '\0')
        stem = (size_t)(dot - last);
    elen = len - stem;
    for (; host && host[hn] && hn < CONFLICT_HOST_MAX; hn++)
        h[hn] = host_ok(host[hn]) ? host[hn] : '_';
    h[hn] = '\0';
    if (!gmtime_r(&when, &tm))
        return -EINVAL;
    if (seq > 1)
        snprintf(nth, sizeof nth, " %u", seq);
    slen = (size_t)snprintf(suffix, sizeof suffix, " (conflict %s %04d-%02d-%02d %02d%02d%02d%s)",
                            hn ? h : "unknown", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                            tm.tm_hour, tm.tm_min, tm.tm_sec, nth);
    if (slen >= sizeof suffix || slen + elen + 1 > NAME_MAX)
        return -ENAMETOOLONG;
    if (stem + slen + elen > NAME_MAX) {
        size_t keep = NAME_MAX - slen - elen, cut = keep;
        while (cut > 0 && ((unsigned char)last[cut] & 0xc0) == 0x80)
            cut--; /* not inside a UTF-8 character */
        stem = cut > 0 ? cut : keep;
    }
    if (dirlen + stem + slen + elen + 1 > outlen)
        return -ERANGE;
    snprintf(out, outlen, "%.*s%s%s", (int)(dirlen + stem), name, suffix, last + len - elen);
    return 0;
}
