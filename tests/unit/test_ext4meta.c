/* ext4meta.h against filesystems made by mke2fs (1 KiB blocks, 4 KiB
 * blocks, 4 KiB with 64bit, 300 GiB whose group descriptors reach past
 * the first 64 KiB): the three steps find group 0's inode table
 * (inode 2 there is a directory) and the journal's superblock (its magic
 * is there), each range inside the device; and anything off (not ext4, bad
 * fields, short buffers, ranges past the device) is refused, not followed. */
#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ext4meta.h"
#include "tap.h"

static uint8_t head[EXT4META_HEAD];
static struct ext4_range head_gdt; /* the descriptors follow() found last */

static int mkfs(const char *path, const char *size, const char *opts)
{
    char cmd[512];

    snprintf(cmd, sizeof cmd,
             "rm -f %s && truncate -s %s %s && mke2fs -q -F -t ext4 %s %s > /dev/null 2>&1", path,
             size, path, opts, path);
    return system(cmd);
}

static bool read_at(int fd, void *buf, size_t len, uint64_t off)
{
    return pread(fd, buf, len, (off_t)off) == (ssize_t)len;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* journal: whether its first block is found (a journal of up to 4 extents,
 * 512 MiB; mke2fs makes one of 1 GiB on 128 GiB and more). */
static void follow(const char *path, const char *what, uint32_t block_size, bool journal)
{
    int fd = open(path, O_RDONLY);
    struct ext4meta m;
    struct ext4_range j = {0};
    static uint8_t gdt[1 << 20], inodes[4096], jsb[65536];
    off_t size = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;

    ok(fd >= 0 && read_at(fd, head, sizeof head, 0), "%s: the image is read", what);
    ok(ext4meta_super(head, sizeof head, (uint64_t)size, &m) == 0, "%s: a superblock", what);
    ok(m.block_size == block_size, "%s: block size %u", what, m.block_size);
    head_gdt = m.gdt;
    ok(m.gdt.off == (block_size == 1024 ? 2048u : block_size) && m.gdt.len % block_size == 0,
       "%s: the descriptors at the block after the superblock's (%llu+%u)", what,
       (unsigned long long)m.gdt.off, m.gdt.len);
    ok(m.gdt.len <= sizeof gdt && read_at(fd, gdt, m.gdt.len, m.gdt.off) &&
           ext4meta_inodes(&m, gdt, m.gdt.len) == 0,
       "%s: group 0's inode table", what);
    ok(m.inodes.len == sizeof inodes && read_at(fd, inodes, sizeof inodes, m.inodes.off),
       "%s: its first 4 KiB read", what);
    ok((inodes[m.inode_size + 1] & 0xF0) == 0x40, "%s: inode 2 there is a directory", what);
    memset(jsb, 0, sizeof jsb);
    if (journal) {
        ok(ext4meta_journal(&m, inodes, sizeof inodes, &j) == 0 && j.len > 0 &&
               j.len <= sizeof jsb && j.off + j.len <= (uint64_t)size,
           "%s: the journal's superblock (%llu+%u)", what, (unsigned long long)j.off, j.len);
        ok(j.len > 0 && read_at(fd, jsb, j.len, j.off) && be32(jsb) == 0xC03B3998,
           "%s: the jbd2 magic is there", what);
    } else { /* a journal of more than 4 extents: an extent tree of depth 1 */
        ok(ext4meta_journal(&m, inodes, sizeof inodes, &j) == -EINVAL,
           "%s: a journal in an extent tree of depth 1 is not followed", what);
    }
    ok(ext4meta_clean(head + 1024, time(NULL)), "%s: clean, as mke2fs left it", what);
    ok(ext4meta_journal(&m, inodes, 1024, &j) == -EINVAL,
       "%s: the journal inode outside the buffer is not read", what);
    ok(ext4meta_inodes(&m, gdt, 16) == -EINVAL, "%s: a short descriptor is refused", what);
    if (fd >= 0)
        close(fd);
}

static void refusals(void)
{
    struct ext4meta m;
    uint8_t sb[2048];
    struct ext4_range j;

    memset(head, 0xA5, sizeof head);
    ok(ext4meta_super(head, sizeof head, 1 << 30, &m) == -EINVAL, "random bytes: not ext4");
    ok(ext4meta_super(head, 1500, 1 << 30, &m) == -EINVAL, "a buffer too short for a superblock");

    memset(sb, 0, sizeof sb);
    sb[1024 + 0x38] = 0x53, sb[1024 + 0x39] = 0xEF;                /* magic */
    sb[1024 + 0x04] = 0x00, sb[1024 + 0x05] = 0x40;                /* 16384 blocks */
    sb[1024 + 0x20] = 0x00, sb[1024 + 0x21] = 0x20;                /* 8192 a group */
    sb[1024 + 0x4C] = 1, sb[1024 + 0x58] = 0, sb[1024 + 0x59] = 1; /* inodes of 256 */
    sb[1024 + 0x18] = 2;                                           /* 4 KiB blocks */
    ok(ext4meta_super(sb, sizeof sb, 64 << 20, &m) == 0 && m.gdt.off == 4096 && m.gdt.len == 4096,
       "a minimal superblock: 4 KiB blocks, the descriptors in block 1");
    ok(ext4meta_super(sb, sizeof sb, 4096, &m) == -EINVAL, "descriptors past the device's end");
    sb[1024 + 0x18] = 7;
    ok(ext4meta_super(sb, sizeof sb, 64 << 20, &m) == -EINVAL, "a block size over 64 KiB");
    sb[1024 + 0x18] = 2;
    sb[1024 + 0x60] = 0x10;
    ok(ext4meta_super(sb, sizeof sb, 64 << 20, &m) == -EINVAL, "meta_bg: not followed");
    sb[1024 + 0x60] = 0x80, sb[1024 + 0xFE] = 48;
    ok(ext4meta_super(sb, sizeof sb, 64 << 20, &m) == -EINVAL, "64bit with descriptors of 48");
    sb[1024 + 0x60] = 0, sb[1024 + 0x20] = 0, sb[1024 + 0x21] = 0;
    ok(ext4meta_super(sb, sizeof sb, 64 << 20, &m) == -EINVAL, "no blocks per group");
    sb[1024 + 0x21] = 0x20, sb[1024 + 0x59] = 0x20; /* inodes of 8 KiB */
    ok(ext4meta_super(sb, sizeof sb, 64 << 20, &m) == -EINVAL, "an inode bigger than a block");
    sb[1024 + 0x59] = 1;

    ok(ext4meta_super(sb, sizeof sb, 64 << 20, &m) == 0, "the minimal superblock again");
    uint8_t gdt[64] = {0};
    gdt[8] = 0xFF, gdt[9] = 0xFF, gdt[10] = 0xFF; /* inode table at block 16M */
    ok(ext4meta_inodes(&m, gdt, sizeof gdt) == -EINVAL, "an inode table past the device");
    gdt[9] = 0, gdt[10] = 0;
    ok(ext4meta_inodes(&m, gdt, sizeof gdt) == 0 && m.inodes.off == 255 * 4096ull,
       "an inode table inside it");
    ok(ext4meta_journal(&m, head, sizeof head, &j) == -EINVAL, "no journal inode: no journal");
    uint8_t inodes[4096] = {0};
    m.journal_inum = 8;
    uint8_t *ino = inodes + 7 * 256;
    ino[0x22] = 0x08;                                     /* EXTENTS_FL */
    ino[0x28] = 0x0A, ino[0x29] = 0xF3, ino[0x2A] = 1;    /* extent header, 1 entry, depth 0 */
    ino[0x28 + 12 + 8] = 0x00, ino[0x28 + 12 + 9] = 0x10; /* starts at block 4096 */
    ok(ext4meta_journal(&m, inodes, sizeof inodes, &j) == 0 && j.off == 4096ull * 4096,
       "a journal of one extent: its first block");
    ino[0x28 + 12 + 10] = 0x01; /* block 69632: past the 64 MiB device */
    ok(ext4meta_journal(&m, inodes, sizeof inodes, &j) == -EINVAL, "a journal past the device");
    ino[0x28 + 12 + 10] = 0, ino[0x28 + 6] = 1;
    ok(ext4meta_journal(&m, inodes, sizeof inodes, &j) == -EINVAL,
       "an extent tree of depth 1: not followed");
    ino[0x28 + 6] = 0, ino[0x28 + 12] = 5;
    ok(ext4meta_journal(&m, inodes, sizeof inodes, &j) == -EINVAL,
       "a first extent that is not logical block 0");

    memcpy(sb + 1024 + 0x3A, "\x01\x00", 2); /* state: clean */
    ok(ext4meta_clean(sb + 1024, 1000), "a clean superblock");
    sb[1024 + 0x3A] = 3;
    ok(!ext4meta_clean(sb + 1024, 1000), "errors in the state: not clean");
    sb[1024 + 0x3A] = 1, sb[1024 + 0x60] = 0x4;
    ok(!ext4meta_clean(sb + 1024, 1000), "a journal to replay: not clean");
    sb[1024 + 0x60] = 0, sb[1024 + 0x194] = 1;
    ok(!ext4meta_clean(sb + 1024, 1000), "errors counted: not clean");
}

int main(void)
{
    char dir[64], path[128];

    refusals();
    if (system("command -v mke2fs > /dev/null") != 0) {
        printf("# mke2fs not found: no images\n");
        return tap_done();
    }
    if (!tap_tmpdir(dir, sizeof dir, "ext4meta"))
        return tap_done();
    snprintf(path, sizeof path, "%s/img", dir);
    ok(mkfs(path, "64M", "-b 1024") == 0, "mke2fs: 64 MiB, 1 KiB blocks");
    follow(path, "1 KiB blocks", 1024, true);
    ok(mkfs(path, "1G", "-b 4096") == 0, "mke2fs: 1 GiB, 4 KiB blocks");
    follow(path, "4 KiB blocks", 4096, true);
    ok(mkfs(path, "1G", "-b 4096 -O 64bit") == 0, "mke2fs: 1 GiB, 4 KiB blocks, 64bit");
    follow(path, "64bit", 4096, true);
    /* 2400 groups: their descriptors reach past the first 64 KiB (the
     * worker then fetches them apart); sparse, a few MB on disk */
    ok(mkfs(path, "300G", "-b 4096 -E lazy_itable_init=1,lazy_journal_init=1") == 0,
       "mke2fs: 300 GiB, 4 KiB blocks");
    follow(path, "300 GiB", 4096, false);
    ok(head_gdt.off + head_gdt.len > EXT4META_HEAD, "300 GiB: the descriptors end at %llu",
       (unsigned long long)(head_gdt.off + head_gdt.len));
    unlink(path);
    rmdir(dir);
    return tap_done();
}
