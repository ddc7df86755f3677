#include "loopdev.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int loopdev_attach(const char *path, bool ro, unsigned block_size, char *dev, size_t devlen,
                   bool *direct)
{
    int ctl, ffd, lfd = -1, rc = -EBUSY;

    ffd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (ffd < 0)
        return -errno;
    ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) {
        rc = -errno;
        close(ffd);
        return rc;
    }
    /* Another process may take the free device between GET_FREE and
     * CONFIGURE: then try the next one.  GET_FREE hands every racer the
     * same device and one wins a round, so with many logins at once this
     * takes as many rounds as there are racers; a short jitter spreads
     * them out. */
    for (int tries = 0; tries < 256; tries++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0) {
            rc = -errno;
            break;
        }
        snprintf(dev, devlen, "/dev/loop%d", n);
        lfd = open(dev, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (lfd < 0 && errno == ENOENT) { /* udev may not have made it yet */
            struct timespec ts = {0, 10L * 1000000};
            nanosleep(&ts, NULL);
            lfd = open(dev, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        }
        if (lfd < 0) {
            rc = -errno;
            break;
        }
        struct loop_config lc = {.fd = (unsigned)ffd, .block_size = block_size};
        lc.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO | (ro ? LO_FLAGS_READ_ONLY : 0);
        snprintf((char *)lc.info.lo_file_name, sizeof lc.info.lo_file_name, "%s", path);
        rc = ioctl(lfd, LOOP_CONFIGURE, &lc) == 0 ? 0 : -errno;
        if (rc == -EINVAL) { /* no direct I/O on this file: buffered then */
            lc.info.lo_flags &= ~(unsigned)LO_FLAGS_DIRECT_IO;
            rc = ioctl(lfd, LOOP_CONFIGURE, &lc) == 0 ? 0 : -errno;
        }
        if (rc == 0) {
            struct loop_info64 info;
            *direct =
                ioctl(lfd, LOOP_GET_STATUS64, &info) == 0 && (info.lo_flags & LO_FLAGS_DIRECT_IO);
            break;
        }
        close(lfd);
        lfd = -1;
        if (rc != -EBUSY)
            break;
        struct timespec jitter = {
            0, (long)((unsigned)getpid() * 7919u + (unsigned)tries * 104729u) % 2000000L};
        nanosleep(&jitter, NULL);
    }
    /* The device keeps its own reference to the file. */
    close(ctl);
    close(ffd);
    return rc < 0 ? rc : lfd;
}

int loopdev_detach(const char *dev, const char *path)
{
    struct loop_info64 info;
    struct stat st;
    int fd = open(dev, O_RDONLY | O_CLOEXEC), rc;

    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    /* With autoclear the kernel may have freed dev at the unmount, and
     * someone else may have bound it since: clear it only while it is
     * still bound to our file. */
    if (ioctl(fd, LOOP_GET_STATUS64, &info) < 0) {
        rc = errno == ENXIO ? 0 : -errno; /* not bound: already released */
        close(fd);
        return rc;
    }
    if (stat(path, &st) < 0 || info.lo_inode != (uint64_t)st.st_ino ||
        info.lo_device != (uint64_t)st.st_dev) {
        close(fd);
        return 0; /* someone else's now */
    }
    rc = ioctl(fd, LOOP_CLR_FD, 0) == 0 ? 0 : -errno;
    close(fd);
    if (rc == -ENXIO)
        rc = 0;
    return rc;
}
