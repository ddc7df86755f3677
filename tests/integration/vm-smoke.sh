#!/usr/bin/env bash
# The VM harness (tests/vm): Debian's kernel with nbd.ko under qemu TCG, a
# busybox initramfs with the static homeport, a host nbdkit reached through
# a guestfwd only.  The guest can only run the static binary, so this runs
# once, in the static flavor.
TOP=$(cd "$(dirname "$0")/../.." && pwd)
HOMEPORT=${HOMEPORT:-$TOP/build/homeport}
if ! file -L "$HOMEPORT" | grep -q 'statically linked'; then
    echo "ok 1 - VM smoke test # SKIP the guest runs only the static binary: covered by the static run"
    echo "1..1"
    exit 0
fi
exec bash "$TOP/tests/vm/smoke.sh"
