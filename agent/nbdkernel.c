#include "nbdkernel.h"

#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <linux/nbd.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "relay.h"
#include "spawn.h"

struct msg {
    union {
        struct nlmsghdr nh;
        char buf[1024];
    } u;
    size_t nests[4];
    int depth;
};

#define ALIGN4(x) (((x) + 3u) & ~3u)

static void msg_init(struct msg *m, uint16_t family, uint8_t cmd, uint16_t flags)
{
    struct genlmsghdr *g;

    memset(m, 0, sizeof *m);
    m->u.nh.nlmsg_type = family;
    m->u.nh.nlmsg_flags = NLM_F_REQUEST | flags;
    m->u.nh.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
    g = NLMSG_DATA(&m->u.nh);
    g->cmd = cmd;
    g->version = 1;
}

static int put(struct msg *m, uint16_t type, const void *data, size_t len)
{
    size_t at = ALIGN4(m->u.nh.nlmsg_len);
    struct nlattr *a = (struct nlattr *)(m->u.buf + at);

    if (at + NLA_HDRLEN + ALIGN4(len) > sizeof m->u.buf)
        return -EMSGSIZE;
    a->nla_type = type;
    a->nla_len = (uint16_t)(NLA_HDRLEN + len);
    if (len)
        memcpy((char *)a + NLA_HDRLEN, data, len);
    m->u.nh.nlmsg_len = (uint32_t)(at + ALIGN4(NLA_HDRLEN + len));
    return 0;
}

static int put_u64(struct msg *m, uint16_t type, uint64_t v)
{
    return put(m, type, &v, sizeof v);
}

static int put_u32(struct msg *m, uint16_t type, uint32_t v)
{
    return put(m, type, &v, sizeof v);
}

static int nest_start(struct msg *m, uint16_t type)
{
    m->nests[m->depth++] = ALIGN4(m->u.nh.nlmsg_len);
    return put(m, type | NLA_F_NESTED, NULL, 0);
}

static void nest_end(struct msg *m)
{
    size_t at = m->nests[--m->depth];
    struct nlattr *a = (struct nlattr *)(m->u.buf + at);
    a->nla_len = (uint16_t)(m->u.nh.nlmsg_len - at);
}

/* Find attribute type in [p, p+len). */
static const struct nlattr *find_attr(const char *p, size_t len, uint16_t type)
{
    while (len >= NLA_HDRLEN) {
        const struct nlattr *a = (const struct nlattr *)p;
        if (a->nla_len < NLA_HDRLEN || a->nla_len > len)
            return NULL;
        if ((a->nla_type & NLA_TYPE_MASK) == type)
            return a;
        size_t step = ALIGN4(a->nla_len);
        if (step > len)
            return NULL;
        p += step;
        len -= step;
    }
    return NULL;
}

/* Send m and read replies until the ACK; on_reply sees each data message. */
static int transact(int fd, struct msg *m, void (*on_reply)(const struct nlmsghdr *, void *),
                    void *ctx)
{
    char buf[8192];

    m->u.nh.nlmsg_flags |= NLM_F_ACK;
    if (send(fd, m->u.buf, m->u.nh.nlmsg_len, 0) < 0)
        return -errno;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
             h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                return e->error; /* 0 = the ACK */
            }
            if (h->nlmsg_type == NLMSG_DONE)
                return 0;
            if (on_reply)
                on_reply(h, ctx);
        }
    }
}

static int genl_socket(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};

    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

struct family {
    int id;
    int mcgrp;
};

static void family_reply(const struct nlmsghdr *h, void *ctx)
{
    struct family *f = ctx;
    const char *p = (const char *)NLMSG_DATA(h) + GENL_HDRLEN;
    size_t len = h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
    const struct nlattr *a = find_attr(p, len, CTRL_ATTR_FAMILY_ID);
    const struct nlattr *groups = find_attr(p, len, CTRL_ATTR_MCAST_GROUPS);

    if (a)
        f->id = *(const uint16_t *)((const char *)a + NLA_HDRLEN);
    if (!groups)
        return;
    /* [CTRL_ATTR_MCAST_GROUPS] [n] [CTRL_ATTR_MCAST_GRP_NAME, _ID] ... */
    const char *gp = (const char *)groups + NLA_HDRLEN;
    size_t glen = groups->nla_len - NLA_HDRLEN;
    while (glen >= NLA_HDRLEN) {
        const struct nlattr *g = (const struct nlattr *)gp;
        if (g->nla_len < NLA_HDRLEN || g->nla_len > glen)
            break;
        const struct nlattr *name =
            find_attr(gp + NLA_HDRLEN, g->nla_len - NLA_HDRLEN, CTRL_ATTR_MCAST_GRP_NAME);
        const struct nlattr *id =
            find_attr(gp + NLA_HDRLEN, g->nla_len - NLA_HDRLEN, CTRL_ATTR_MCAST_GRP_ID);
        if (name && id && strcmp((const char *)name + NLA_HDRLEN, NBD_GENL_MCAST_GROUP_NAME) == 0)
            f->mcgrp = (int)*(const uint32_t *)((const char *)id + NLA_HDRLEN);
        size_t step = ALIGN4(g->nla_len);
        if (step > glen)
            break;
        gp += step;
        glen -= step;
    }
}

static int resolve(int fd, struct family *f)
{
    struct msg m;
    int rc;

    f->id = -1;
    f->mcgrp = -1;
    msg_init(&m, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0);
    put(&m, CTRL_ATTR_FAMILY_NAME, NBD_GENL_FAMILY_NAME, sizeof NBD_GENL_FAMILY_NAME);
    rc = transact(fd, &m, family_reply, f);
    if (rc < 0)
        return rc == -ENOENT ? -ENODEV : rc;
    return f->id > 0 ? 0 : -ENODEV;
}

bool nbdkernel_available(void)
{
    struct stat st;

    if (stat("/sys/module/nbd", &st) == 0)
        return true;
    /* No module tree for this kernel (a container, a kernel without
     * modules): modprobe cannot help; don't spend a fork on every login. */
    struct utsname u;
    char dep[sizeof u.release + 32];
    if (uname(&u) < 0)
        return false;
    snprintf(dep, sizeof dep, "/lib/modules/%s/modules.dep", u.release);
    if (stat(dep, &st) < 0)
        return false;
    const char *modprobe[] = {"modprobe", "-q", "nbd", NULL};
    if (spawn_wait(modprobe, 1) != 0)
        return false;
    return stat("/sys/module/nbd", &st) == 0;
}

static uint64_t server_flags(struct nbd_handle *h)
{
    uint64_t f = NBD_FLAG_HAS_FLAGS;
    if (nbd_is_read_only(h) == 1)
        f |= NBD_FLAG_READ_ONLY;
    if (nbd_can_flush(h) == 1)
        f |= NBD_FLAG_SEND_FLUSH;
    if (nbd_can_fua(h) == 1)
        f |= NBD_FLAG_SEND_FUA;
    if (nbd_can_trim(h) == 1)
        f |= NBD_FLAG_SEND_TRIM;
    if (nbd_can_multi_conn(h) == 1)
        f |= NBD_FLAG_CAN_MULTI_CONN;
    return f;
}

/* Take the socket out of libnbd: a dup that stays open after nbd_close,
 * which closes libnbd's own descriptor without a disconnect request.
 * Under TLS the kernel gets a relay's socket instead (relay.h). */
static int take_socket(struct nbd_export *ex, uint64_t *flags)
{
    int s;

    *flags = server_flags(ex->h);
    if (nbd_aio_in_flight(ex->h) != 0)
        return -EBUSY;
    if (nbd_get_tls_negotiated(ex->h) == 1)
        return relay_start(ex);
    if ((s = fcntl(nbd_aio_get_fd(ex->h), F_DUPFD_CLOEXEC, 3)) < 0)
        return -errno;
    nbd_close(ex->h); /* never nbd_shutdown: it would shut the shared socket */
    ex->h = NULL;
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
    return s;
}

struct index_reply {
    int index;
};

static void index_reply(const struct nlmsghdr *h, void *ctx)
{
    struct index_reply *r = ctx;
    const char *p = (const char *)NLMSG_DATA(h) + GENL_HDRLEN;
    const struct nlattr *a = find_attr(p, h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN), NBD_ATTR_INDEX);
    if (a)
        r->index = (int)*(const uint32_t *)((const char *)a + NLA_HDRLEN);
}

static int send_sock(uint8_t cmd, int index, struct nbd_export *ex, unsigned dead_timeout_s,
                     unsigned io_timeout_s, int *index_out)
{
    struct family f;
    struct msg m;
    struct index_reply r = {-1};
    uint64_t flags = 0;
    int fd = genl_socket(), s, rc;
    uint64_t size = (uint64_t)ex->size, bs = 512;
    int64_t min = ex->h ? nbd_get_block_size(ex->h, LIBNBD_SIZE_MINIMUM) : -1;

    if (min > 512 && min <= 4096 && (min & (min - 1)) == 0)
        bs = (uint64_t)min;

    if (fd < 0)
        return fd;
    rc = resolve(fd, &f);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    s = take_socket(ex, &flags);
    if (s < 0) {
        close(fd);
        return s;
    }
    msg_init(&m, (uint16_t)f.id, cmd, 0);
    if (index >= 0)
        put_u32(&m, NBD_ATTR_INDEX, (uint32_t)index);
    if (cmd == NBD_CMD_CONNECT) {
        put_u64(&m, NBD_ATTR_SIZE_BYTES, size);
        /* The device's logical block size: the server's minimum, at least
         * 512.  Not its preferred size: a filesystem with smaller blocks
         * (ext4 makes 1 KiB blocks on small images) could not be mounted. */
        put_u64(&m, NBD_ATTR_BLOCK_SIZE_BYTES, bs);
        put_u64(&m, NBD_ATTR_SERVER_FLAGS, flags);
        if (dead_timeout_s)
            put_u64(&m, NBD_ATTR_DEAD_CONN_TIMEOUT, dead_timeout_s);
        if (io_timeout_s)
            put_u64(&m, NBD_ATTR_TIMEOUT, io_timeout_s);
    }
    nest_start(&m, NBD_ATTR_SOCKETS);
    nest_start(&m, NBD_SOCK_ITEM);
    put_u32(&m, NBD_SOCK_FD, (uint32_t)s);
    nest_end(&m);
    nest_end(&m);
    rc = transact(fd, &m, index_reply, &r);
    close(s); /* the kernel holds its own reference */
    close(fd);
    if (rc == 0 && index_out)
        *index_out = r.index >= 0 ? r.index : index;
    return rc;
}

int nbdkernel_connect(struct nbd_export *ex, unsigned dead_timeout_s, unsigned io_timeout_s,
                      int *index)
{
    return send_sock(NBD_CMD_CONNECT, -1, ex, dead_timeout_s, io_timeout_s, index);
}

int nbdkernel_reconfigure(int index, struct nbd_export *ex)
{
    return send_sock(NBD_CMD_RECONFIGURE, index, ex, 0, 0, NULL);
}

static int ioctl_disconnect(int index)
{
    char dev[32];
    int fd, rc;

    snprintf(dev, sizeof dev, "/dev/nbd%d", index);
    fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = ioctl(fd, NBD_DISCONNECT) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int nbdkernel_disconnect(int index)
{
    struct family f;
    struct msg m;
    int fd = genl_socket(), rc;

    if (fd < 0)
        return fd == -EPROTONOSUPPORT ? ioctl_disconnect(index) : fd;
    rc = resolve(fd, &f);
    if (rc == 0) {
        msg_init(&m, (uint16_t)f.id, NBD_CMD_DISCONNECT, 0);
        put_u32(&m, NBD_ATTR_INDEX, (uint32_t)index);
        rc = transact(fd, &m, NULL, NULL);
    }
    close(fd);
    return rc == -ENODEV ? ioctl_disconnect(index) : rc;
}

/* A device nobody uses: no receiver task and no size. */
static bool device_free(int i)
{
    char path[64];
    struct stat st;
    FILE *f;
    unsigned long long size = 1;

    snprintf(path, sizeof path, "/sys/block/nbd%d/pid", i);
    if (stat(path, &st) == 0)
        return false;
    snprintf(path, sizeof path, "/sys/block/nbd%d/size", i);
    f = fopen(path, "re");
    if (!f)
        return false;
    if (fscanf(f, "%llu", &size) != 1)
        size = 1;
    fclose(f);
    return size == 0;
}

int nbdkernel_ioctl_attach(struct nbd_export *ex, unsigned io_timeout_s, int *index)
{
    uint64_t flags = 0, size = (uint64_t)ex->size;
    int s = -1, rc = -ENOSPC;

    for (int i = 0; i < 256; i++) {
        char dev[32];
        int fd;

        if (!device_free(i)) {
            if (access("/sys/block/nbd0", F_OK) < 0)
                return -ENODEV;
            continue;
        }
        snprintf(dev, sizeof dev, "/dev/nbd%d", i);
        fd = open(dev, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (s < 0) {
            s = take_socket(ex, &flags);
            if (s < 0) {
                close(fd);
                return s;
            }
        }
        if (ioctl(fd, NBD_SET_BLKSIZE, 512UL) < 0 ||
            ioctl(fd, NBD_SET_SIZE_BLOCKS, size / 512) < 0 ||
            ioctl(fd, NBD_SET_FLAGS, (unsigned long)flags) < 0 ||
            (io_timeout_s && ioctl(fd, NBD_SET_TIMEOUT, (unsigned long)io_timeout_s) < 0) ||
            ioctl(fd, NBD_SET_SOCK, (unsigned long)s) < 0) {
            rc = -errno;
            close(fd);
            if (rc == -EBUSY)
                continue; /* taken meanwhile: the next one */
            close(s);
            return rc;
        }
        close(s); /* the device holds its own reference */
        *index = i;
        return fd;
    }
    if (s >= 0)
        close(s);
    return rc;
}

int nbdkernel_ioctl_run(int devfd)
{
    int rc = ioctl(devfd, NBD_DO_IT) == 0 ? 0 : -errno;

    ioctl(devfd, NBD_CLEAR_QUE);
    ioctl(devfd, NBD_CLEAR_SOCK);
    close(devfd);
    return rc;
}

int nbdkernel_watch_open(void)
{
    struct family f;
    int fd = genl_socket(), rc;

    if (fd < 0)
        return fd;
    rc = resolve(fd, &f);
    if (rc == 0 && f.mcgrp < 0)
        rc = -ENOTSUP;
    if (rc == 0 &&
        setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &f.mcgrp, sizeof f.mcgrp) < 0)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int nbdkernel_watch_read(int fd)
{
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    int dead = -1;

    if (n < 0)
        return -1;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
         h = NLMSG_NEXT(h, n)) {
        const struct genlmsghdr *g = NLMSG_DATA(h);
        if (h->nlmsg_type < NLMSG_MIN_TYPE || g->cmd != NBD_CMD_LINK_DEAD)
            continue;
        struct index_reply r = {-1};
        index_reply(h, &r);
        dead = r.index;
    }
    return dead;
}
