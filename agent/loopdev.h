/* loopdev: bind a file to a free loop device, and release it. */
#ifndef HOMEPORT_LOOPDEV_H
#define HOMEPORT_LOOPDEV_H

#include <stdbool.h>
#include <stddef.h>

/* Bind path (opened read-write, or read-only when ro) to a free loop
 * device with direct I/O (falling back to buffered I/O where the file's
 * filesystem refuses it) and autoclear (the kernel releases the device at
 * its last close, so a crash cannot leak it once unmounted).
 * dev receives "/dev/loopN"; *direct says whether direct I/O is on.
 * Returns an open descriptor of the device, or -errno: keep it open until
 * the filesystem is mounted (or fsck'd), since with autoclear the last
 * close releases the device. */
int loopdev_attach(const char *path, bool ro, unsigned block_size, char *dev, size_t devlen,
                   bool *direct);

/* Release dev (LOOP_CLR_FD) if it is still bound to path (same device and
 * inode): an autoclear device freed at the unmount may belong to someone
 * else by now, and is left alone.  Refuses with -EBUSY while it is in use
 * (a mounted filesystem); 0 when released, already free, or not ours. */
int loopdev_detach(const char *dev, const char *path);

#endif
