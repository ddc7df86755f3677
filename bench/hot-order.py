#!/usr/bin/env python3
"""bench/hot-order's two steps (see bench/hot-order).

hot-order.py snap FILE
    the file offsets of FILE's pages that are in the page cache (mincore),
    on one line
hot-order.py order BINARY SNAP...
    the symbols of BINARY on the pages of each snapshot in turn (those not
    named already), each part in address order: lld's ordering file
"""
import ctypes
import os
import subprocess
import sys


def cached_offsets(path):
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
    if addr in (None, ctypes.c_void_p(-1).value):
        sys.exit("hot-order.py: mmap %s: %s" % (path, os.strerror(ctypes.get_errno())))
    vec = (ctypes.c_ubyte * ((size + 4095) // 4096))()
    if libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec) != 0:
        sys.exit("hot-order.py: mincore %s: %s" % (path, os.strerror(ctypes.get_errno())))
    return [i * 4096 for i in range(len(vec)) if vec[i] & 1]


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()


def order(binary, snaps):
    segs = []  # (file offset, address, size in the file) of the LOAD segments
    for line in run("readelf", "-lW", binary):
        f = line.split()
        if f and f[0] == "LOAD":
            segs.append((int(f[1], 16), int(f[2], 16), int(f[4], 16)))
    syms = []
    for line in run("nm", "-n", "-S", "--defined-only", binary):
        f = line.split()
        if len(f) == 4 and f[2] in "tTrRdDbBvVwW":
            syms.append((int(f[0], 16), max(int(f[1], 16), 1), f[3]))
    seen = set()
    for snap in snaps:
        hot = set()  # the pages' addresses
        for off in (int(x) for x in open(snap).read().split()):
            for o, v, n in segs:
                if o <= off < o + n or off <= o < off + 4096:
                    hot.add((v + max(off, o) - o) & ~4095)
        for a, n, name in syms:
            pages = range(a & ~4095, ((a + n - 1) & ~4095) + 1, 4096)
            if name not in seen and any(p in hot for p in pages):
                seen.add(name)
                print(name)


if len(sys.argv) == 3 and sys.argv[1] == "snap":
    print(" ".join(str(o) for o in cached_offsets(sys.argv[2])))
elif len(sys.argv) >= 4 and sys.argv[1] == "order":
    order(sys.argv[2], sys.argv[3:])
else:
    sys.exit(__doc__)
