/* records: what `homeport status` and a restarted agent read back from
 * run_dir and state_dir, and the mount table they check it against.  The
 * input's first byte says which file the rest becomes, in a private
 * run_dir (the real readers run on it, system checks and all):
 *
 *   0  RUN_DIR/homes/alice         a home's record: home_lookup, home_status
 *   1  RUN_DIR/homes/alice:stats   its worker's counters: home_status
 *   2  RUN_DIR/roam/alice          a roaming home's record: roam_get_sessions,
 *                                  roam_status
 *   3  STATE_DIR/sync/alice.db.last  its last pass: roam_status
 *   4  a mountinfo file            mounts_read, mounts_below
 *   5  STATE_DIR/last_user         session_expected_user
 *
 * Checked: the JSON status is valid JSON (the text one is only run); a
 * record read for alice is alice's; sessions are never negative; the
 * mounts below a directory are below it, deepest first; an expected user
 * is a valid name. */
#include <sys/stat.h>

#include "config.h"
#include "fuzz.h"
#include "home.h"
#include "mounts.h"
#include "roam.h"
#include "session.h"
#include "user.h"

static struct hp_config cfg;
static char homes[300], rec[300], stats[300], roam_rec[300], last[300], mountinfo[300],
    last_user[300];

static void set(char **field, const char *dir, const char *below)
{
    char buf[300];

    snprintf(buf, sizeof buf, "%s%s", dir, below);
    free(*field);
    if (!(*field = strdup(buf)))
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *d = fz_tmpdir();
    char path[300];

    (void)argc, (void)argv;
    if (config_defaults(&cfg) < 0)
        abort();
    set(&cfg.run_dir, d, "/run");
    set(&cfg.state_dir, d, "/state");
    set(&cfg.staging_dir, d, "/stage");
    set(&cfg.sync_local_template, d, "/local/%u");
    const char *dirs[] = {"run", "run/homes", "run/roam", "state", "state/sync", "stage"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", d, dirs[i]);
        mkdir(path, 0700);
    }
    snprintf(homes, sizeof homes, "%s/run/homes", d);
    snprintf(rec, sizeof rec, "%s/run/homes/alice", d);
    snprintf(stats, sizeof stats, "%s/run/homes/alice:stats", d);
    snprintf(roam_rec, sizeof roam_rec, "%s/run/roam/alice", d);
    snprintf(last, sizeof last, "%s/state/sync/alice.db.last", d);
    snprintf(mountinfo, sizeof mountinfo, "%s/mountinfo", d);
    snprintf(last_user, sizeof last_user, "%s/state/last_user", d);
    return 0;
}

/* status in both forms; the JSON one must parse */
static void status(int (*fn)(const struct hp_config *, FILE *, bool))
{
    for (int json = 0; json < 2; json++) {
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        if (!f)
            abort();
        int troubled = fn(&cfg, f, json);
        fclose(f);
        FZ_CHECK(troubled >= 0, "troubled %d", troubled);
        if (json)
            FZ_CHECK(fz_json_valid(out, len), "status --json is not JSON:\n%s", out);
        free(out);
    }
}

static void clear(void)
{
    unlink(rec);
    unlink(stats);
    unlink(roam_rec);
    unlink(last);
    unlink(last_user);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct home_state s;
    char buf[64];

    if (size < 1)
        return 0;
    const uint8_t *body = data + 1;
    size_t blen = size - 1;

    clear();
    switch (data[0] % 6) {
    case 0: {
        fz_write(rec, body, blen);
        int rc = home_lookup(&cfg, "alice", &s);
        FZ_CHECK(rc == 0 || rc == -ENOENT || rc == -ESTALE, "home_lookup: %d", rc);
        if (rc != -ENOENT) {
            FZ_CHECK(!strcmp(s.user, "alice"), "the record of alice is '%s''s", s.user);
            FZ_CHECK(s.sessions >= 0 && s.mountpoint[0], "sessions %d", s.sessions);
        }
        status(home_status);
        break;
    }
    case 1: {
        static const char r[] = "user=alice\nattach=fuse\ndevice=/dev/loop7\nserver=h:10809\n"
                                "export=alice\nmountpoint=/nonexistent/alice\nworker=0\n"
                                "phase=mounted\nsessions=1\n";
        fz_write(rec, r, sizeof r - 1);
        fz_write(stats, body, blen);
        status(home_status);
        break;
    }
    case 2: {
        fz_write(roam_rec, body, blen);
        int n = roam_get_sessions(&cfg, "alice");
        FZ_CHECK(n >= 0 || n == -ENOENT, "roam_get_sessions: %d", n);
        status(roam_status);
        break;
    }
    case 3:
        fz_write(roam_rec, "sessions=1\n", 11);
        fz_write(last, body, blen);
        status(roam_status);
        break;
    case 4: {
        struct hp_mount_table t;
        const struct hp_mount **below;
        fz_write(mountinfo, body, blen);
        if (mounts_read(mountinfo, &t) < 0)
            break;
        long n = mounts_below(&t, "/home", &below);
        FZ_CHECK(n >= 0 && (size_t)n <= t.n, "mounts_below: %ld", n);
        for (long i = 0; i < n; i++) {
            const char *tg = below[i]->target;
            FZ_CHECK(!strncmp(tg, "/home", 5) && (tg[5] == '\0' || tg[5] == '/'),
                     "%s is not below /home", tg);
            if (i > 0) {
                size_t d0 = 0, d1 = 0;
                for (const char *c = below[i - 1]->target; *c; c++)
                    d0 += *c == '/';
                for (const char *c = tg; *c; c++)
                    d1 += *c == '/';
                FZ_CHECK(d0 >= d1, "%s before the deeper %s", below[i - 1]->target, tg);
            }
        }
        free(below);
        mounts_free(&t);
        break;
    }
    default: {
        fz_write(last_user, body, blen);
        const char *u = session_expected_user(&cfg, buf, sizeof buf);
        FZ_CHECK(!u || user_name_valid(u), "expected user '%s'", u);
        break;
    }
    }
    return 0;
}
