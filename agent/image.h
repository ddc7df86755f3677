/* image: the server side of a home, a sparse ext4 image file per user.
 *
 * The reference deployment serves a directory of them with
 * `nbdkit file dir=IMAGE_DIR` (export name = file name = user name).
 */
#ifndef HOMEPORT_IMAGE_H
#define HOMEPORT_IMAGE_H

#include <stdint.h>
#include <sys/types.h>

struct image_spec {
    const char *dir;  /* image directory */
    const char *user; /* validated by the caller */
    uint64_t size;    /* bytes */
    const char *skel; /* copied in, owned by uid:gid; NULL or "" for none */
    uid_t uid;
    gid_t gid;
};

/* Create dir/user: a sparse file of the given size, formatted ext4 with no
 * reserved blocks, labelled with the user name (cut to 16 bytes), its root
 * and every file copied from skel owned by uid:gid.  Never overwrites:
 * -EEXIST when the image exists.  On failure nothing is left behind.
 * Returns 0, -errno, or a positive exit status of the failing tool
 * (*tool names it). */
int image_create(const struct image_spec *spec, const char **tool);

#endif
