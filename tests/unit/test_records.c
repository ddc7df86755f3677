/* The records under run_dir that status and a restarted agent read back
 * (home.h, roam.h): whose record it is, and their line limits. */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "home.h"
#include "roam.h"
#include "tap.h"

static char dir[64];
static struct hp_config cfg;

static void put(const char *rel, const char *text)
{
    char path[200];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, rel);
    f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* home_status --json into buf */
static void status(char *buf, size_t len)
{
    FILE *f = fmemopen(buf, len, "w");

    buf[0] = '\0';
    if (f) {
        home_status(&cfg, f, true);
        fclose(f);
    }
}

static void set(char **field, const char *below)
{
    char buf[200];

    snprintf(buf, sizeof buf, "%s%s", dir, below);
    free(*field);
    *field = strdup(buf);
}

int main(void)
{
    struct home_state s;
    char out[8192], line[5000], path[200];

    if (!tap_tmpdir(dir, sizeof dir, "records") || config_defaults(&cfg) < 0)
        return tap_done();
    set(&cfg.run_dir, "/run");
    set(&cfg.state_dir, "/state");
    set(&cfg.staging_dir, "/stage");
    const char *dirs[] = {"run", "run/homes", "run/roam", "state", "stage"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, dirs[i]);
        mkdir(path, 0700);
    }

    put("run/homes/alice", "user=alice\nattach=fuse\ndevice=/dev/loop9\nmountpoint=/nonexistent/a\n"
                           "worker=0\nsessions=2\n");
    ok(home_lookup(&cfg, "alice", &s) == -ESTALE && s.sessions == 2 &&
           !strcmp(s.mountpoint, "/nonexistent/a"),
       "a record is read (stale: no worker)");
    status(out, sizeof out);
    ok(strstr(out, "\"user\": \"alice\"") && strstr(out, "\"count\": 1"), "status lists it");

    put("run/homes/alice", "user=bob\nmountpoint=/nonexistent/b\nworker=0\n");
    ok(home_lookup(&cfg, "alice", &s) == -ENOENT, "a record that names another user is none");
    put("run/homes/alice", "user=../../etc/x\nmountpoint=/nonexistent/b\nworker=0\n");
    ok(home_lookup(&cfg, "alice", &s) == -ENOENT, "nor one that names a path");
    status(out, sizeof out);
    ok(strstr(out, "\"count\": 0"), "status skips them: %s", out);
    put("run/homes/alice", "user=alice\nworker=0\n");
    ok(home_lookup(&cfg, "alice", &s) == -ENOENT, "a record without a mountpoint is none");

    /* a line longer than 4199 bytes is ignored whole, not read in pieces */
    memset(line, 'x', sizeof line);
    memcpy(line, "export=", 7);
    memcpy(line + 4199, "mountpoint=/evil", 16); /* where fgets(4200) would cut it */
    line[4299] = '\n';
    line[4300] = '\0';
    snprintf(out, sizeof out, "user=alice\nmountpoint=/nonexistent/a\n%s", line);
    put("run/homes/alice", out);
    ok(home_lookup(&cfg, "alice", &s) == -ESTALE && !strcmp(s.mountpoint, "/nonexistent/a") &&
           s.export[0] == '\0',
       "a 4299-byte line is ignored: mountpoint %s", s.mountpoint);
    line[4199] = '\n';
    line[4200] = '\0';
    snprintf(out, sizeof out, "user=alice\nmountpoint=/nonexistent/a\n%s", line);
    put("run/homes/alice", out);
    ok(home_lookup(&cfg, "alice", &s) == -ESTALE && !strcmp(s.mountpoint, "/nonexistent/a") &&
           s.export[0] == 'x',
       "a 4199-byte line is read (cut to its field)");

    /* the worker's counters: 511 bytes a line */
    put("run/homes/alice", "user=alice\nmountpoint=/nonexistent/a\nworker=0\n");
    memset(line, 'e', 600);
    memcpy(line, "last_error=", 11);
    memcpy(line + 511, "bytes_read=999", 14); /* where fgets(512) would cut it */
    line[600] = '\0';
    snprintf(out, sizeof out, "bytes_read=7\n%s\n", line);
    put("run/homes/alice:stats", out);
    status(out, sizeof out);
    ok(strstr(out, "\"bytes_read\": 7") && strstr(out, "\"last_error\": \"\""),
       "a stats line over 511 bytes is ignored whole");

    /* a roaming home's record: sessions=N, N >= 0 */
    put("run/roam/alice", "sessions=3\n");
    ok(roam_get_sessions(&cfg, "alice") == 3, "sessions read");
    put("run/roam/alice", "sessions=-1\n");
    ok(roam_get_sessions(&cfg, "alice") == -ENOENT, "negative sessions: no record");
    put("run/roam/alice", "sessions=99999999999\n");
    ok(roam_get_sessions(&cfg, "alice") == -ENOENT, "sessions past INT_MAX: no record");
    put("run/roam/alice", "sessions=\n");
    ok(roam_get_sessions(&cfg, "alice") == -ENOENT, "no number: no record");
    put("run/roam/alice", "garbage\n");
    ok(roam_get_sessions(&cfg, "alice") == -ENOENT, "garbage: no record");
    ok(roam_get_sessions(&cfg, "../x") == -EINVAL, "a bad user name");

    snprintf(out, sizeof out, "rm -rf '%s'", dir);
    if (system(out) != 0)
        ok(0, "cleanup");
    config_free(&cfg);
    return tap_done();
}
