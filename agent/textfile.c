#include "textfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int textfile_read_line(const char *path, char *buf, size_t len, int nofollow)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | (nofollow ? O_NOFOLLOW : 0));
    ssize_t n;

    if (fd < 0)
        return -errno;
    do
        n = read(fd, buf, len - 1);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    close(fd);
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return n == 0 ? -ENODATA : 0;
}
