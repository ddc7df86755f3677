/* tree_mkdirs: mkdir -p, on a scratch directory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "tree.h"

static bool is_dir(const char *path, mode_t mode)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == mode;
}

int main(void)
{
    char dir[] = "/tmp/homeport-tree-XXXXXX", p[512], q[512], cmd[600];
    char *longp = malloc(5000);
    FILE *f;

    if (!mkdtemp(dir) || !longp)
        return 1;
    umask(022);
    snprintf(p, sizeof p, "%s/a/b/c", dir);
    ok(tree_mkdirs(p, 0700) == 0, "a missing path and its parents: 0");
    snprintf(q, sizeof q, "%s/a", dir);
    ok(is_dir(p, 0700) && is_dir(q, 0700), "all made, with the mode");
    ok(tree_mkdirs(p, 0755) == 0 && is_dir(p, 0700), "again: 0, the dir left as it is");
    snprintf(p, sizeof p, "%s/a/b/d", dir);
    ok(tree_mkdirs(p, 0750) == 0 && is_dir(p, 0750), "a sibling under existing parents");
    snprintf(q, sizeof q, "%s/file", dir);
    if (!(f = fopen(q, "w")))
        return 1;
    fclose(f);
    ok(tree_mkdirs(q, 0700) == 0, "an existing file at the path: left alone, 0");
    snprintf(p, sizeof p, "%s/file/x/y", dir);
    ok(tree_mkdirs(p, 0700) == -ENOTDIR, "a file among the parents: -ENOTDIR");
    memset(longp, 'x', 4999);
    longp[0] = '/';
    longp[4999] = '\0';
    ok(tree_mkdirs(longp, 0700) == -ENAMETOOLONG, "longer than PATH_MAX: -ENAMETOOLONG");
    free(longp);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
