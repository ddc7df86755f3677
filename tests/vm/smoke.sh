#!/usr/bin/env bash
# tests/vm/smoke.sh: the VM harness works.  Builds the image (stamped: fast
# when up to date), boots it under TCG with tests/vm/smoke-guest.sh and a
# 64 MB ext4 image behind a guestfwd nbdkit, and prints TAP: the VM boots,
# homeport runs in the guest, nbd.ko is loaded with /sys/block/nbd0, the
# guest reaches the host's nbdkit (raw greeting and "homeport boot"), and
# the guest has no other way out.
#
# Environment: HP_VM_OUT (default build/vm), HOMEPORT (default
# build/homeport), and run-vm.sh's HP_VM_* knobs.
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
OUT=${HP_VM_OUT:-$TOP/build/vm}
HOMEPORT=${HOMEPORT:-$TOP/build/homeport}
export HP_VM_ACCEL=${HP_VM_ACCEL:-tcg}

ms() { echo $(( $(date +%s%N) / 1000000 )); }
t_all=$(ms)
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
diag() { sed 's/^/# /' "$@"; }
finish() {
    echo "# whole smoke test: $(( $(ms) - t_all )) ms"
    echo "1..$n"
    [ "$failed" -eq 0 ]
}

for tool in qemu-system-x86_64 cpio nbdkit mkfs.ext4 dpkg-deb modinfo; do
    if ! command -v "$tool" >/dev/null; then
        echo "1..0 # SKIP no $tool (install tests/vm/apt-packages.txt)"
        exit 0
    fi
done
if ! file /bin/busybox 2>/dev/null | grep -q 'statically linked'; then
    echo "1..0 # SKIP no static /bin/busybox (install busybox-static)"
    exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hp-vm-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "$HOMEPORT" ]; then
    echo "# $HOMEPORT missing: make -C $TOP"
    timeout 1800 make -C "$TOP" > "$tmp/make.log" 2>&1 || { diag "$tmp/make.log"; }
fi

# The guest has no libc: the binary must be static (tests/run's dev and asan
# flavors set HOMEPORT to dynamic builds; fall back to the static one).
is_static() { file -L "$1" 2>/dev/null | grep -q 'static'; }
if ! is_static "$HOMEPORT"; then
    if is_static "$TOP/build/homeport"; then
        echo "# $HOMEPORT is not static: using $TOP/build/homeport"
        HOMEPORT=$TOP/build/homeport
    else
        echo "1..0 # SKIP no static homeport binary ($HOMEPORT)"
        exit 0
    fi
fi

# 1. the image
t0=$(ms)
if timeout 1200 "$HERE/build-image.sh" "$OUT" "$HOMEPORT" > "$tmp/build.log" 2>&1; then
    ok "image built or up to date ($(( $(ms) - t0 )) ms, kernel $(cat "$OUT/kernel.version"))"
    diag "$tmp/build.log"
else
    not_ok "build-image.sh $OUT $HOMEPORT"
    diag "$tmp/build.log"
    finish
    exit 1
fi

# 2. the VM, with an ext4 image behind the guestfwd
truncate -s 64M "$tmp/home.img"
mkfs.ext4 -q -F "$tmp/home.img"
rc=0
HP_VM_TIMEOUT=${HP_VM_TIMEOUT:-120} \
    "$HERE/run-vm.sh" "$OUT" "$HERE/smoke-guest.sh" "$tmp/home.img" > "$tmp/vm.log" 2>&1 || rc=$?
if grep -q '^HOMEPORT-VM-EXIT=' "$tmp/vm.log"; then
    ok "VM boots under $(sed -n 's/^run-vm: accel \([a-z]*\),.*/\1/p' "$tmp/vm.log") and reaches the exit marker"
    grep '^run-vm: boot to marker' "$tmp/vm.log" | diag
else
    not_ok "VM boots and reaches the exit marker (run-vm.sh exit $rc)"
fi

# 3. the guest's checks
smoke() { # NAME DESCRIPTION
    local line
    line=$(grep -m1 "^SMOKE $1 " "$tmp/vm.log" || true)
    case $line in
        "SMOKE $1 ok"*) ok "$2${line#SMOKE "$1" ok}" ;;
        "") not_ok "$2: no result from the guest" ;;
        *) not_ok "$2:${line#SMOKE "$1" fail}" ;;
    esac
}
smoke kernel "guest runs Debian's kernel:"
smoke version "/sbin/homeport version runs in the guest:"
smoke nbd "nbd.ko loaded and /sys/block/nbd0 exists:"
smoke ext4 "ext4 module loaded:"
smoke greeting "guest reaches the host's nbdkit through guestfwd:"
smoke boot "homeport boot checks 10.0.2.100:10809 in the guest:"
smoke restricted "restrict=on: no other outbound connection:"
if [ "$rc" = 0 ]; then ok "run-vm.sh exits with the guest's status (0)"; else not_ok "run-vm.sh exit $rc, want 0"; fi

if [ "$failed" -ne 0 ]; then echo "# VM console:"; diag "$tmp/vm.log"; fi
finish
