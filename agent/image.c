#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spawn.h"
#include "tree.h"

/* Copy skel into a fresh temporary dir beside the image, owned by uid:gid,
 * so that mkfs.ext4 -d gives the user their own files (it copies owners
 * as they are on disk). */
static int stage_skel(const struct image_spec *s, char *tmp, size_t len, const char **tool)
{
    char src[PATH_MAX], owner[64];
    int rc;

    snprintf(tmp, len, "%s/.mkhome-%s-XXXXXX", s->dir, s->user);
    if (!mkdtemp(tmp))
        return -errno;
    snprintf(src, sizeof src, "%s/.", s->skel);
    const char *cp[] = {"cp", "-a", "--", src, tmp, NULL};
    rc = spawn_wait(cp, 0);
    if (rc != 0) {
        *tool = "cp";
        return rc;
    }
    snprintf(owner, sizeof owner, "%u:%u", (unsigned)s->uid, (unsigned)s->gid);
    const char *chown[] = {"chown", "-R", "-h", "--", owner, tmp, NULL};
    rc = spawn_wait(chown, 0);
    if (rc != 0)
        *tool = "chown";
    return rc;
}

static void remove_dir(const char *path)
{
    struct tree_stats st = {0};
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd >= 0) {
        tree_empty(fd, &st);
        close(fd);
    }
    rmdir(path);
}

int image_create(const struct image_spec *s, const char **tool)
{
    char path[PATH_MAX], tmp[PATH_MAX] = "", label[17], root_owner[64];
    int fd, rc;

    *tool = NULL;
    snprintf(path, sizeof path, "%s/%s", s->dir, s->user);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)s->size) < 0) {
        rc = -errno;
        close(fd);
        goto fail;
    }
    close(fd);

    if (s->skel && s->skel[0]) {
        rc = stage_skel(s, tmp, sizeof tmp, tool);
        if (rc != 0)
            goto fail;
    }
    snprintf(label, sizeof label, "%s", s->user);
    snprintf(root_owner, sizeof root_owner, "root_owner=%u:%u", (unsigned)s->uid, (unsigned)s->gid);
    const char *mkfs[] = {"mkfs.ext4", "-q",       "-F", "-m", "0",  "-L", label,
                          "-E",        root_owner, "-d", tmp,  path, NULL};
    if (!tmp[0]) { /* no skeleton: drop "-d tmp" */
        mkfs[9] = path;
        mkfs[10] = NULL;
        mkfs[11] = NULL;
    }
    rc = spawn_wait(mkfs, 0);
    if (rc != 0)
        *tool = "mkfs.ext4";
fail:
    if (tmp[0])
        remove_dir(tmp);
    if (rc != 0)
        unlink(path);
    return rc;
}
