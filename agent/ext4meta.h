/* ext4meta: where a mount of an ext4 filesystem reads, found from the
 * filesystem's own metadata.  The kernel's mount reads the superblock, the
 * group descriptors, the first inodes (root, journal) and the journal's
 * superblock one after the other: over NBD that is a round trip each,
 * which the FUSE worker saves by fetching those ranges ahead, in three
 * steps, alongside the FUSE mount, the loop device and the check.
 *
 * Parsing only, no I/O; the bytes come from the server and are not
 * trusted: anything unexpected (not ext4, a field out of range, a layout
 * this does not follow such as meta_bg) yields fewer ranges, never a read
 * outside the buffer or past the device's size.  Fetching less only costs
 * the round trips it would have saved. */
#ifndef HOMEPORT_EXT4META_H
#define HOMEPORT_EXT4META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct ext4_range {
    uint64_t off;
    uint32_t len;
};

/* What a step needs from the one before. */
struct ext4meta {
    uint64_t dev_size;
    uint32_t block_size, inode_size, desc_size, journal_inum;
    struct ext4_range gdt;    /* the group descriptors (all of them) */
    struct ext4_range inodes; /* group 0's first inodes: root and journal */
};

/* Whether e2fsck -p would only say "clean" and exit 0, from the
 * superblock (SB: the 1024 bytes at offset 1024): cleanly unmounted, no
 * errors, no journal to replay, no check due by mount count or interval. */
bool ext4meta_clean(const uint8_t sb[1024], time_t now);

/* The first read: the device's start, which holds the superblock. */
#define EXT4META_HEAD 65536

/* Step 1: from HEAD (the first len bytes of a device of dev_size bytes),
 * the group descriptors: m->gdt, which may reach past HEAD.  0, or
 * -EINVAL when this is not an ext4 filesystem this can follow. */
int ext4meta_super(const uint8_t *head, size_t len, uint64_t dev_size, struct ext4meta *m);

/* Step 2: from the group descriptors (gdt, m->gdt.len bytes, read at
 * m->gdt.off), m->inodes.  0 or -EINVAL. */
int ext4meta_inodes(struct ext4meta *m, const uint8_t *gdt, size_t len);

/* Step 3: from group 0's first inodes (read at m->inodes.off), the range
 * of the journal's superblock.  0 or -EINVAL (no journal inode, or not one
 * whose first block this finds). */
int ext4meta_journal(const struct ext4meta *m, const uint8_t *inodes, size_t len,
                     struct ext4_range *out);

#endif
