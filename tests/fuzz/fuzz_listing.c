/* listing: what `homeport sync-list` on a server sends back (sync/listing.h),
 * a line at a time to listing_parse, and the first line to
 * listing_parse_request too.
 *
 * Checked: an entry has a type of the four, a path statedb_path_ok takes,
 * the length it says, a digest only where one may be; B and E lines a path
 * ("." or a valid one); and an entry written back with listing_put_node
 * parses to the same entry. */
#include "fuzz.h"
#include "sync/listing.h"
#include "sync/statedb.h"

static void check_entry(const struct listing_line *l)
{
    struct listing_line again;
    char *buf = NULL, path[STATEDB_PATH_MAX + 1];
    size_t blen = 0;
    FILE *f;

    FZ_CHECK(l->n.m.type >= SYNC_FILE && l->n.m.type <= SYNC_SPECIAL, "type %u", l->n.m.type);
    FZ_CHECK(strlen(l->text) == l->len && statedb_path_ok(l->text, l->len), "a bad path");
    FZ_CHECK(l->n.m.mode <= 07777 && l->n.m.mtime_ns % 1000000000 == 0, "mode or mtime");
    FZ_CHECK(!l->n.m.ino && !l->n.m.ctime_ns, "an inode or ctime from a listing");
    snprintf(path, sizeof path, "%s", l->text);
    f = open_memstream(&buf, &blen);
    FZ_CHECK(f && listing_put_node(f, path, &l->n) == 0 && fclose(f) == 0, "cannot write it");
    FZ_CHECK(blen > 0 && buf[blen - 1] == '\n', "no line");
    buf[blen - 1] = '\0';
    FZ_CHECK(listing_parse(buf, &again) == 0 && again.kind == 'n', "written back, refused");
    FZ_CHECK(!strcmp(again.text, path) && !memcmp(&again.n, &l->n, sizeof l->n),
             "written back, another entry");
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *all = malloc(size + 1), dir[256];
    int flags;

    memcpy(all, data, size);
    all[size] = '\0';
    for (char *p = all, *nl; p < all + size; p = nl + 1) {
        struct listing_line l;
        char *line;
        size_t n;

        nl = memchr(p, '\n', (size_t)(all + size - p));
        if (!nl)
            nl = all + size;
        n = (size_t)(nl - p);
        line = malloc(n + 1);
        memcpy(line, p, n);
        line[n] = '\0';
        if (p == all && listing_parse_request(line, dir, sizeof dir, &flags) == 0) {
            FZ_CHECK(strlen(dir) > 0 && !(flags & ~(LISTING_DRY_RUN | LISTING_HASH)), "a request");
            memcpy(line, p, n); /* parsed in place: again for listing_parse */
            line[n] = '\0';
        }
        if (listing_parse(line, &l) == 0) {
            if (l.kind == 'n')
                check_entry(&l);
            if (l.kind == 'B' || l.kind == 'E')
                FZ_CHECK(!strcmp(l.path, ".") || statedb_path_ok(l.path, strlen(l.path)),
                         "a bad path in a %c line", l.kind);
        }
        free(line);
    }
    free(all);
    return 0;
}
