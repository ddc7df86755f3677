/* ext4meta: the three steps on bytes from the server (here, the input as
 * the device's start, then as the descriptors and as the inodes): never a
 * read outside what they are given, and every range they return lies
 * inside the device and is not empty. */
#include "ext4meta.h"
#include "fuzz.h"

static void in_device(const struct ext4_range *r, uint64_t dev, const char *what)
{
    FZ_CHECK(r->len > 0 && r->off < dev && r->len <= dev - r->off,
             "%s %llu+%u outside a device of %llu", what, (unsigned long long)r->off, r->len,
             (unsigned long long)dev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ext4meta m;
    struct ext4_range j;
    uint64_t dev = 1ull << 30;
    /* a copy of exactly size bytes: ASan sees any read past it */
    uint8_t *buf = malloc(size ? size : 1);

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    if (size >= 8)
        dev = (uint64_t)data[0] << 20 | (uint64_t)data[1] << 28 | 4096;
    if (size >= 2048)
        (void)ext4meta_clean(buf + 1024, 0);
    if (ext4meta_super(buf, size, dev, &m) == 0) {
        in_device(&m.gdt, dev, "descriptors");
        if (ext4meta_inodes(&m, buf, size) == 0) {
            in_device(&m.inodes, dev, "inodes");
            if (ext4meta_journal(&m, buf, size, &j) == 0)
                in_device(&j, dev, "journal");
        }
    }
    free(buf);
    return 0;
}
