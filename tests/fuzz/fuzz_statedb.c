/* statedb: a sync state database file through statedb_load, and when it
 * loads, a round trip: statedb_encode (what statedb_save writes), loaded
 * again (statedb_load_mem), must give the same entries, and encoding that
 * gives the same bytes; a version 2 file encodes back to itself.
 *
 * A file must pass its checksum before anything else is read, so the
 * first byte of the input says how the rest becomes a file: 0 as is, 1
 * with its CRC-64 appended (version 2's trailer), 2 with its SHA-256
 * (version 1's).  The seeds are databases `homeport sync` wrote, less
 * their trailer. */
#include <mbedtls/sha256.h>

#include "fuzz.h"
#include "sync/crc64.h"
#include "sync/statedb.h"

static char path[200];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(path, sizeof path, "%s/alice.db", fz_tmpdir());
    return 0;
}

static bool same_entry(const struct statedb_entry *a, const struct statedb_entry *b)
{
    return !strcmp(a->path, b->path) && !memcmp(&a->local, &b->local, sizeof a->local) &&
           !memcmp(&a->remote, &b->remote, sizeof a->remote) &&
           !memcmp(a->digest, b->digest, sizeof a->digest) &&
           !memcmp(a->listed, b->listed, sizeof a->listed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct statedb db, back;
    unsigned char *file, *enc, *enc2;
    size_t len, elen, elen2;
    char why[600];
    int rc;

    if (size < 1)
        return 0;
    len = size - 1;
    if (!(file = malloc(len + 32)))
        return 0;
    memcpy(file, data + 1, len);
    if (data[0] % 3 == 1) {
        uint64_t crc = crc64(0, file, len);
        for (int i = 0; i < 8; i++)
            file[len++] = (unsigned char)(crc >> (8 * i));
    } else if (data[0] % 3 == 2) {
        mbedtls_sha256_ret(file, len, file + len, 0);
        len += 32;
    }
    fz_write(path, file, len);
    rc = statedb_load(&db, path, why, sizeof why);
    if (rc < 0) {
        FZ_CHECK(rc == -EBADMSG || rc == -EPROTO, "rc %d: %s", rc, why);
        FZ_CHECK(!strncmp(why, path, strlen(path)) && db.n == 0 && !db.v, "rc %d: %s", rc, why);
        free(file);
        return 0;
    }
    FZ_CHECK(db.version == 1 || db.version == 2, "version %u", db.version);
    for (size_t i = 0; i < db.n; i++) {
        const struct statedb_entry *e = &db.v[i];
        FZ_CHECK(statedb_path_ok(e->path, strlen(e->path)), "entry %zu: bad path", i);
        FZ_CHECK(i == 0 || statedb_path_cmp(db.v[i - 1].path, e->path) < 0,
                 "entry %zu out of order", i);
        FZ_CHECK(statedb_get(&db, e->path) == e, "entry %zu not found by its path", i);
    }

    enc = statedb_encode(&db, &elen, &rc);
    FZ_CHECK(enc, "a loaded database does not encode: %d", rc);
    if (db.version == 2)
        FZ_CHECK(elen == len && !memcmp(enc, file, len), "a version 2 file encodes otherwise");
    rc = statedb_load_mem(&back, enc, elen, "encoded", why, sizeof why);
    FZ_CHECK(rc == 0, "the encoded database does not load: %s", why);
    FZ_CHECK(back.version == 2 && back.n == db.n, "%zu entries back of %zu", back.n, db.n);
    for (size_t i = 0; i < db.n; i++)
        FZ_CHECK(same_entry(&db.v[i], &back.v[i]), "entry %zu (%s) changed", i, db.v[i].path);
    enc2 = statedb_encode(&back, &elen2, &rc);
    FZ_CHECK(enc2 && elen2 == elen && !memcmp(enc, enc2, elen), "encoding is not stable");

    /* take the first entry out and put it back: the same file */
    if (back.n > 0) {
        struct statedb_entry e = back.v[0];
        FZ_CHECK(statedb_del(&back, e.path) && !statedb_get(&back, e.path), "del");
        FZ_CHECK(statedb_put(&back, &e) == 0, "put");
        free(enc2);
        enc2 = statedb_encode(&back, &elen2, &rc);
        FZ_CHECK(enc2 && elen2 == elen && !memcmp(enc, enc2, elen), "del + put changed the file");
    }
    free(enc2);
    free(enc);
    statedb_free(&back);
    statedb_free(&db);
    free(file);
    return 0;
}
