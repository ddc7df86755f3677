/* sync/crc64: CRC-64/XZ (ECMA-182 polynomial, reflected, as xz and
 * .xz files use it): the state database's checksum.  It is there to catch
 * a torn or damaged file, not an attacker (the file is root's, mode 0600),
 * and it runs at about a byte a cycle, which SHA-256 does not: the
 * database of a 10 000-file home is read at every pass.
 *
 * crc64(0, "123456789", 9) == 0x995dc9bbdf1939fa.  To checksum in pieces,
 * pass the previous result as crc. */
#ifndef HOMEPORT_SYNC_CRC64_H
#define HOMEPORT_SYNC_CRC64_H

#include <stddef.h>
#include <stdint.h>

uint64_t crc64(uint64_t crc, const void *buf, size_t len);

#endif
