#!/usr/bin/env python3
"""Read a homeport sync state database (agent/sync/statedb.h), on its own.

  syncdb.py FILE              one line per entry, the listings left out
  syncdb.py FILE --listings   the same, with each entry's listings
  syncdb.py FILE --version    the format version only
  syncdb.py FILE --write-v1 OUT   FILE (version 2) rewritten as version 1
                              (byte order, no listings, SHA-256): what an
                              older homeport left, to test the upgrade

A line: PATH, then the entry's fields (types, modes, sizes, mtimes, the
local inode and ctime, the digest in hex), tab-separated; with --listings
a last field "L=INO:CTIME R=INO:CTIME".  The trailer is checked here with
its own CRC-64/XZ (version 2) or SHA-256 (version 1): a file that fails,
or any other fault, exits 1 with the reason on stderr.  The tests use it
to compare two databases but for the listings, and to read the listings.
"""
import hashlib
import struct
import sys

POLY = 0xC96C5795D7870F42


def crc64(data):
    table = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ POLY if c & 1 else c >> 1
        table.append(c)
    crc = 0xFFFFFFFFFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: syncdb.py FILE [--listings|--version]")
    buf = open(sys.argv[1], "rb").read()
    if len(buf) < 32 or buf[:8] != b"HPSYNCDB":
        sys.exit("not a state database")
    version, flags, count = struct.unpack_from("<IIQ", buf, 8)
    if version == 2:
        trailer, fixed = 8, 124
        if crc64(buf[:-8]) != struct.unpack_from("<Q", buf, len(buf) - 8)[0]:
            sys.exit("CRC-64 mismatch")
    elif version == 1:
        trailer, fixed = 32, 92
        if hashlib.sha256(buf[:-32]).digest() != buf[-32:]:
            sys.exit("SHA-256 mismatch")
    else:
        sys.exit("unknown version %d" % version)
    if flags:
        sys.exit("unknown flags %#x" % flags)
    if sys.argv[2:] == ["--version"]:
        print(version)
        return
    listings = sys.argv[2:] == ["--listings"]
    v1 = [] if sys.argv[2:3] == ["--write-v1"] else None
    p, end = 24, len(buf) - trailer
    for _ in range(count):
        lt, rt, lm, rm, ls, lmt, li, lct, rs, rmt = struct.unpack_from("<BBIIQqQqQq", buf, p)
        digest = buf[p + 58:p + 90].hex()
        if version == 2:
            l_ino, l_ct, r_ino, r_ct, plen = struct.unpack_from("<QqQqH", buf, p + 90)
        else:
            l_ino = l_ct = r_ino = r_ct = 0
            (plen,) = struct.unpack_from("<H", buf, p + 90)
        raw = buf[p + fixed:p + fixed + plen]
        path = raw.decode("utf-8", "backslashreplace")
        if v1 is not None:
            v1.append((raw, buf[p:p + 90] + struct.pack("<H", plen) + raw))
        p += fixed + plen
        fields = [path, lt, rt, oct(lm), oct(rm), ls, lmt, li, lct, rs, rmt, digest]
        if v1 is not None:
            continue
        if listings:
            fields.append("L=%d:%d R=%d:%d" % (l_ino, l_ct, r_ino, r_ct))
        print("\t".join(str(f) for f in fields))
    if p != end:
        sys.exit("%d bytes after the last entry" % (end - p))
    if v1 is not None:
        body = b"HPSYNCDB" + struct.pack("<IIQ", 1, 0, len(v1))
        body += b"".join(e for _, e in sorted(v1))
        open(sys.argv[3], "wb").write(body + hashlib.sha256(body).digest())


main()
