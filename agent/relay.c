#include "relay.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <linux/nbd.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloccache.h"
#include "log.h"

#define MAX_REQUEST (32u << 20) /* nbd.ko sends far less (max_sectors) */

struct relay {
    struct nbd_handle *h;
    int ks;       /* our end of the kernel's socketpair */
    bool closing; /* ending: answer nothing more (the kernel resends) */
};

/* One request of the kernel, in flight on the handle. */
struct req {
    struct relay *r;
    char handle[8]; /* the kernel's cookie, sent back as it came */
    uint32_t len;
    bool read;
    char *buf;
};

static int io_all(int fd, void *buf, size_t n, bool write_side)
{
    char *p = buf;

    while (n) {
        ssize_t k = write_side ? write(fd, p, n) : read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The simple reply: magic, error, the kernel's handle, data for a read. */
static void reply(struct relay *r, const char handle[8], uint32_t error, const void *data,
                  size_t len)
{
    struct nbd_reply rep = {.magic = htobe32(NBD_REPLY_MAGIC), .error = htobe32(error)};

    memcpy(rep.handle, handle, sizeof rep.handle);
    if (io_all(r->ks, &rep, sizeof rep, true) < 0 ||
        (len && io_all(r->ks, (void *)data, len, true) < 0))
        r->closing = true; /* the kernel went away */
}

static int done_cb(void *user, int *error)
{
    struct req *q = user;

    /* libnbd retires what was in flight with ENOTCONN when the connection
     * dies: no answer then, the kernel sends it again on the next link */
    if (*error == ENOTCONN)
        q->r->closing = true;
    if (!q->r->closing)
        reply(q->r, q->handle, *error ? (*error == ENOSPC ? ENOSPC : EIO) : 0, q->buf,
              q->read && !*error ? q->len : 0);
    free(q->buf);
    free(q);
    return 1; /* retire the command */
}

/* Read one request from the kernel and start it on the handle.  -1 when
 * the relay must end (the kernel closed, disconnected, or spoke nonsense). */
static int next_request(struct relay *r)
{
    struct nbd_request in;
    struct req *q;
    uint32_t type, cmd, flags;
    uint64_t off;
    int64_t rc;

    if (io_all(r->ks, &in, sizeof in, false) < 0 || be32toh(in.magic) != NBD_REQUEST_MAGIC)
        return -1;
    type = be32toh(in.type);
    cmd = type & 0xffff;
    flags = type >> 16;
    off = be64toh(in.from);
    if (cmd == NBD_CMD_DISC)
        return -1;
    if (!(q = calloc(1, sizeof *q)))
        return -1;
    q->r = r;
    memcpy(q->handle, in.handle, sizeof q->handle);
    q->len = be32toh(in.len);
    q->read = cmd == NBD_CMD_READ;
    if ((cmd == NBD_CMD_READ || cmd == NBD_CMD_WRITE) &&
        (q->len > MAX_REQUEST || !(q->buf = malloc(q->len ? q->len : 1)))) {
        free(q);
        return -1;
    }
    if (cmd == NBD_CMD_WRITE && io_all(r->ks, q->buf, q->len, false) < 0) {
        free(q->buf);
        free(q);
        return -1;
    }
    nbd_completion_callback cb = {.callback = done_cb, .user_data = q};
    uint32_t fua = (flags & (NBD_CMD_FLAG_FUA >> 16)) ? LIBNBD_CMD_FLAG_FUA : 0;
    switch (cmd) {
    case NBD_CMD_READ: rc = nbd_aio_pread(r->h, q->buf, q->len, off, cb, 0); break;
    case NBD_CMD_WRITE: rc = nbd_aio_pwrite(r->h, q->buf, q->len, off, cb, fua); break;
    case NBD_CMD_FLUSH: rc = nbd_aio_flush(r->h, cb, 0); break;
    case NBD_CMD_TRIM: rc = nbd_aio_trim(r->h, q->len, off, cb, fua); break;
#ifdef NBD_CMD_WRITE_ZEROES
    case NBD_CMD_WRITE_ZEROES: rc = nbd_aio_zero(r->h, q->len, off, cb, fua); break;
#endif
    default: rc = -2;
    }
    if (rc == -2 || (rc < 0 && !nbd_aio_is_dead(r->h))) {
        /* refused here (unknown command, or the server cannot do it) */
        reply(r, q->handle, rc == -2 ? EINVAL : EIO, NULL, 0);
        free(q->buf);
        free(q);
    } else if (rc < 0) {
        free(q->buf); /* the connection died: the kernel resends it */
        free(q);
        return -1;
    }
    return 0;
}

static void *relay_main(void *arg)
{
    struct relay *r = arg;

    while (!r->closing) {
        unsigned dir = nbd_aio_get_direction(r->h);
        struct pollfd p[2] = {
            {.fd = r->ks, .events = POLLIN},
            {.fd = nbd_aio_get_fd(r->h),
             .events = (short)(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                               ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0))}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && nbd_aio_notify_read(r->h) < 0)
            break;
        if ((p[1].revents & POLLOUT) && nbd_aio_notify_write(r->h) < 0)
            break;
        if (nbd_aio_is_dead(r->h) || nbd_aio_is_closed(r->h))
            break;
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && next_request(r) < 0)
            break;
    }
    if (nbd_aio_is_dead(r->h))
        log_warn("TLS relay: the connection to the server died: %s", nbd_get_error());
    r->closing = true; /* what is still in flight is answered by nobody */
    nbd_close(r->h);
    close(r->ks); /* the kernel sees its link die */
    free(r);
    return NULL;
}

int relay_start(struct nbd_export *ex)
{
    struct relay *r = calloc(1, sizeof *r);
    pthread_attr_t a;
    pthread_t t;
    int sv[2], rc;

    if (!r)
        return -ENOMEM;
    alloc_cache_enable(); /* this process moves the home's data */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        rc = -errno;
        free(r);
        return rc;
    }
    r->h = ex->h;
    r->ks = sv[1];
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    rc = -pthread_create(&t, &a, relay_main, r);
    pthread_attr_destroy(&a);
    if (rc < 0) {
        close(sv[0]);
        close(sv[1]);
        free(r);
        return rc;
    }
    ex->h = NULL;
    return sv[0];
}
