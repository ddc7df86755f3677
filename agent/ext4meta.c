#include "ext4meta.h"

#include <errno.h>

#define SB_OFF 1024
#define SB_MAGIC 0xEF53
#define COMPAT_HAS_JOURNAL 0x4
#define INCOMPAT_RECOVER 0x4
#define INCOMPAT_JOURNAL_DEV 0x8
#define INCOMPAT_META_BG 0x10
#define INCOMPAT_64BIT 0x80
#define INODE_EXTENTS_FL 0x80000
#define EXTENT_MAGIC 0xF30A
/* Bounds on what is fetched ahead: more would be memory the worker holds
 * for a few seconds, for reads that are not on the login's path. */
#define GDT_MAX (1u << 20)
#define INODES_LEN 4096

static uint32_t le16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const uint8_t *p)
{
    return le16(p) | le16(p + 2) << 16;
}

/* A range inside the device, len at least 1. */
static int range(uint64_t off, uint64_t len, uint64_t dev_size, struct ext4_range *out)
{
    if (!len || off >= dev_size)
        return -EINVAL;
    if (len > dev_size - off)
        len = dev_size - off;
    out->off = off;
    out->len = (uint32_t)len;
    return 0;
}

bool ext4meta_clean(const uint8_t sb[1024], time_t now)
{
    uint32_t state = le16(sb + 0x3A), mnt_count = le16(sb + 0x34);
    int max_mnt = (int16_t)le16(sb + 0x36);
    uint32_t lastcheck = le32(sb + 0x40), interval = le32(sb + 0x44);

    if (le16(sb + 0x38) != SB_MAGIC)
        return false;
    if (!(state & 1) || (state & 2) || le32(sb + 0x194)) /* not cleanly unmounted, or errors */
        return false;
    if (le32(sb + 0x60) & (INCOMPAT_RECOVER | INCOMPAT_JOURNAL_DEV))
        return false; /* needs journal recovery; an external journal device */
    if (max_mnt > 0 && (int)mnt_count >= max_mnt)
        return false;
    if ((time_t)lastcheck > now || (interval && now >= (time_t)lastcheck + (time_t)interval))
        return false;
    return true;
}

int ext4meta_super(const uint8_t *head, size_t len, uint64_t dev_size, struct ext4meta *m)
{
    const uint8_t *sb = head + SB_OFF;

    *m = (struct ext4meta){.dev_size = dev_size};
    if (len < SB_OFF + 1024 || le16(sb + 0x38) != SB_MAGIC)
        return -EINVAL;
    uint32_t log_bs = le32(sb + 0x18), fdb = le32(sb + 0x14), bpg = le32(sb + 0x20);
    uint32_t incompat = le32(sb + 0x60);
    uint64_t blocks = le32(sb + 0x04);
    if (log_bs > 6 || !bpg || (incompat & INCOMPAT_META_BG))
        return -EINVAL;
    m->block_size = 1024u << log_bs;
    m->inode_size = le32(sb + 0x4C) ? le16(sb + 0x58) : 128; /* rev 0: 128 */
    if (m->inode_size < 128 || m->inode_size > m->block_size)
        return -EINVAL;
    if (le32(sb + 0x5C) & COMPAT_HAS_JOURNAL)
        m->journal_inum = le32(sb + 0xE0);
    uint32_t desc = 32;
    if (incompat & INCOMPAT_64BIT) {
        desc = le16(sb + 0xFE);
        blocks |= (uint64_t)le32(sb + 0x150) << 32;
    }
    if (desc < 32 || desc > 1024 || (desc & (desc - 1)) || blocks <= fdb)
        return -EINVAL;
    m->desc_size = desc;
    uint64_t groups = (blocks - fdb + bpg - 1) / bpg;
    uint64_t gdt_len = (groups * desc + m->block_size - 1) / m->block_size * m->block_size;
    return range((uint64_t)(fdb + 1) * m->block_size, gdt_len < GDT_MAX ? gdt_len : GDT_MAX,
                 dev_size, &m->gdt);
}

int ext4meta_inodes(struct ext4meta *m, const uint8_t *gdt, size_t len)
{
    if (len < m->desc_size || m->desc_size < 32)
        return -EINVAL;
    /* group 0's descriptor: bg_inode_table_lo, _hi in 64-byte ones */
    uint64_t table = le32(gdt + 0x08);
    if (m->desc_size >= 64)
        table |= (uint64_t)le32(gdt + 0x28) << 32;
    if (table >= m->dev_size / m->block_size)
        return -EINVAL;
    return range(table * m->block_size, INODES_LEN, m->dev_size, &m->inodes);
}

/* The physical block of the journal's logical block 0, from its inode. */
static int journal_start(const uint8_t *inode, uint64_t *block)
{
    const uint8_t *ib = inode + 0x28; /* i_block, 60 bytes */

    if (!(le32(inode + 0x20) & INODE_EXTENTS_FL)) { /* block map: i_block[0] */
        *block = le32(ib);
        return *block ? 0 : -EINVAL;
    }
    /* An extent tree of depth 0 (the journal's, all but always): its first
     * extent must start at logical block 0. */
    if (le16(ib) != EXTENT_MAGIC || le16(ib + 2) == 0 || le16(ib + 6) != 0)
        return -EINVAL;
    const uint8_t *ex = ib + 12;
    if (le32(ex) != 0)
        return -EINVAL;
    *block = (uint64_t)le16(ex + 6) << 32 | le32(ex + 8);
    return *block ? 0 : -EINVAL;
}

int ext4meta_journal(const struct ext4meta *m, const uint8_t *inodes, size_t len,
                     struct ext4_range *out)
{
    uint64_t at, block;

    if (!m->journal_inum || !m->inode_size)
        return -EINVAL;
    at = (uint64_t)(m->journal_inum - 1) * m->inode_size;
    if (at + 0x28 + 60 > len)
        return -EINVAL; /* not among the first inodes that were read */
    if (journal_start(inodes + at, &block) < 0 || block >= m->dev_size / m->block_size)
        return -EINVAL;
    /* jbd2 reads its superblock with the filesystem's block size */
    return range(block * m->block_size, m->block_size < 4096 ? 4096 : m->block_size, m->dev_size,
                 out);
}
