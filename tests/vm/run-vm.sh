#!/usr/bin/env bash
# run-vm.sh OUTDIR GUEST_SCRIPT [IMAGE_FOR_GUESTFWD]
#
# Boots the image built by tests/vm/build-image.sh under qemu (TCG), runs
# GUEST_SCRIPT in the guest as /test.sh (busybox sh, as root, after the
# modules are loaded and eth0 is up) and exits with its exit status.  The
# serial console goes to stdout.
#
# With IMAGE_FOR_GUESTFWD, the guest reaches "nbdkit -s file IMAGE" at
# 10.0.2.100:10809 (qemu user networking, restrict=on, guestfwd: each guest
# connection starts its own nbdkit on stdio; no host port is opened and the
# guest has no other way out).
#
# Exit status: the guest script's status when the guest printed
# HOMEPORT-VM-EXIT=<status>; otherwise 124 when the timeout hit, else 125
# (qemu failed, kernel panic, init died...).
#
# Knobs (environment):
#   HP_VM_TIMEOUT=120       seconds for the whole VM run
#   HP_VM_ACCEL=tcg         tcg, or auto: kvm only if /dev/kvm boots a probe
#                           VM (result cached in OUTDIR), else tcg
#   HP_VM_BOOT=pvh          pvh: boot the uncompressed vmlinux (faster under
#                           TCG), bzimage: boot vmlinuz
#   HP_VM_MEM=512 HP_VM_SMP=1 HP_VM_CPU=(qemu default)
#   HP_VM_APPEND=""         extra kernel command line words (MOD.PARAM=VALUE
#                           words are passed to insmod, e.g. nbd.nbds_max=4)
#   HP_VM_VERBOSE=0         1: no "quiet" on the kernel command line
#   HP_VM_GUESTFWD_CMD=""   the guestfwd command instead of
#                           "nbdkit -s file IMAGE" (e.g. "nbdkit -s memory 1G")
#   HP_VM_GUESTFWD_LOG=""   a directory: each guestfwd connection's
#                           command runs under tests/vm/guestfwd-log.sh,
#                           which appends its stderr, pid and exit status
#                           or signal to DIR/guestfwd.<time>.<pid>.log
#   HP_VM_NETDEV_EXTRA=""   raw text appended to the -netdev user option
#                           (more guestfwd=... entries)
#   HP_VM_EXTRA_DIR=""      a directory whose contents are added to the guest's
#                           root (in the same cpio as /test.sh)
#   HP_VM_LOG=""            also write the serial console to this file
#   HP_VM_QEMU_STDERR=""    qemu's own stderr (its and libslirp's messages,
#                           e.g. a guestfwd command it could not start) goes
#                           to this file instead of into the console output
#   HP_VM_INITRD=""         boot this initramfs (e.g. one made by mkinitramfs)
#                           instead of OUTDIR/initramfs; GUEST_SCRIPT and
#                           HP_VM_EXTRA_DIR are still appended (only the
#                           kernel of OUTDIR is needed)
set -euo pipefail
export LC_ALL=C

usage() { echo "usage: $0 OUTDIR GUEST_SCRIPT [IMAGE_FOR_GUESTFWD]" >&2; exit 2; }
[ $# -ge 2 ] && [ $# -le 3 ] || usage
OUT=$(cd "$1" && pwd)
SCRIPT=$2
IMAGE=${3:-}
[ -f "$SCRIPT" ] || { echo "run-vm: $SCRIPT: no such file" >&2; exit 2; }

TIMEOUT=${HP_VM_TIMEOUT:-120}
ACCEL=${HP_VM_ACCEL:-tcg}
BOOT=${HP_VM_BOOT:-pvh}
MEM=${HP_VM_MEM:-512}
SMP=${HP_VM_SMP:-1}
QEMU=${HP_VM_QEMU:-qemu-system-x86_64}

log() { printf 'run-vm: %s\n' "$*" >&2; }

command -v "$QEMU" >/dev/null || { log "no $QEMU (apt-get install qemu-system-x86)"; exit 125; }
INITRD=${HP_VM_INITRD:-$OUT/initramfs}
[ -e "$OUT/kernel/.stamp" ] && [ -e "$INITRD" ] ||
    { log "$OUT: no image ($INITRD), run tests/vm/build-image.sh first"; exit 125; }

KERNEL=$OUT/kernel/vmlinuz
if [ "$BOOT" = pvh ] && [ -s "$OUT/kernel/vmlinux" ]; then
    KERNEL=$OUT/kernel/vmlinux
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hp-vm.XXXXXX")
qpid=""
cleanup() {
    # qpid is timeout(1): it passes TERM on to qemu (and KILLs 5 s later)
    if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
        kill -TERM "$qpid" 2>/dev/null || true
        wait "$qpid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The test script (and HP_VM_EXTRA_DIR) as a second, uncompressed cpio
# archive after the image's: the kernel unpacks concatenated archives.
mkdir -p "$tmp/extra"
if [ -n "${HP_VM_EXTRA_DIR:-}" ]; then cp -a "$HP_VM_EXTRA_DIR"/. "$tmp/extra/"; fi
cp "$SCRIPT" "$tmp/extra/test.sh"
chmod 755 "$tmp/extra/test.sh"
(cd "$tmp/extra" && find . -mindepth 1 -print0 | sort -z |
    cpio --null -o -H newc -R 0:0 --quiet) > "$tmp/extra.cpio"
# The second archive must start 4-byte aligned (newc offsets count from
# there; zero padding between archives is skipped): pad the first to 512.
size=$(stat -L -c %s "$INITRD")
{ cat "$INITRD"; head -c $(( (512 - size % 512) % 512 )) /dev/zero; cat "$tmp/extra.cpio"; } > "$tmp/initrd"

# qemu option values: a comma is written ",,"
qesc() { printf '%s' "${1//,/,,}"; }

netdev="user,id=n0,restrict=on"
fwd=${HP_VM_GUESTFWD_CMD:-}
if [ -z "$fwd" ] && [ -n "$IMAGE" ]; then
    [ -f "$IMAGE" ] || { log "$IMAGE: no such file"; exit 2; }
    command -v nbdkit >/dev/null || { log "no nbdkit"; exit 125; }
    img=$(cd "$(dirname "$IMAGE")" && pwd)/$(basename "$IMAGE")
    case $img in *[!A-Za-z0-9_./+-]*) log "$img: use a path without spaces or shell characters"; exit 2 ;; esac
    fwd="nbdkit -s file $img"
fi
# libslirp gives the command the connection as stdin, stdout and stderr and
# never reports how it ended: the wrapper keeps its stderr and exit status.
# The command line is split by glib's shell-like parser (not a shell): the
# two paths put in front of it must hold no characters it would interpret.
if [ -n "$fwd" ] && [ -n "${HP_VM_GUESTFWD_LOG:-}" ]; then
    mkdir -p "$HP_VM_GUESTFWD_LOG"
    fwdlog=$(cd "$HP_VM_GUESTFWD_LOG" && pwd)
    wrapper=$(cd "$(dirname "$0")" && pwd)/guestfwd-log.sh
    for p in "$fwdlog" "$wrapper"; do
        case $p in *[!A-Za-z0-9_./+-]*) log "$p: use a path without spaces or shell characters"; exit 2 ;; esac
    done
    fwd="sh $wrapper $fwdlog $fwd"
fi
[ -z "$fwd" ] || netdev="$netdev,guestfwd=tcp:10.0.2.100:10809-cmd:$(qesc "$fwd")"
[ -z "${HP_VM_NETDEV_EXTRA:-}" ] || netdev="$netdev,${HP_VM_NETDEV_EXTRA}"

# printk.devkmsg=on: the guests' agents log to /dev/kmsg (log = kmsg) and
# the checks read those lines back from dmesg; by default the kernel drops
# a writer's lines past a burst of 10 in 5 s ("N output lines suppressed
# due to ratelimiting"), which a login at log_level = debug exceeds.
append="console=ttyS0 panic=-1 mitigations=off printk.devkmsg=on"
[ "${HP_VM_VERBOSE:-0}" = 1 ] || append="$append quiet loglevel=3"
[ -z "${HP_VM_APPEND:-}" ] || append="$append $HP_VM_APPEND"

# accel=auto: KVM only when it demonstrably boots this kernel (the /dev/kvm
# of some hosts cannot run a stock kernel and fails or hangs).
if [ "$ACCEL" = auto ]; then
    ACCEL=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        probe=$OUT/.kvm-probe-$(cat "$OUT/kernel.version")
        if [ ! -f "$probe" ]; then
            printf 'exit 0\n' > "$tmp/probe.sh"
            if HP_VM_ACCEL=kvm HP_VM_TIMEOUT=20 "$0" "$OUT" "$tmp/probe.sh" >/dev/null 2>&1; then
                echo kvm > "$probe"
            else
                echo tcg > "$probe"
            fi
        fi
        ACCEL=$(cat "$probe")
    fi
fi
cpu=()
[ -z "${HP_VM_CPU:-}" ] || cpu=(-cpu "$HP_VM_CPU")

cmd=("$QEMU" -accel "$ACCEL" -m "$MEM" -smp "$SMP" "${cpu[@]}" -nodefaults -nographic
     -serial stdio -monitor none -no-reboot -fw_cfg name=etc/sercon-port,string=0
     -kernel "$KERNEL" -initrd "$tmp/initrd" -append "$append"
     -netdev "$netdev" -device virtio-net-pci,netdev=n0,romfile=)

log "accel $ACCEL, $(basename "$KERNEL"), timeout ${TIMEOUT}s"
# The reader below (tail -f) must find the file: created here, before
# both background processes start (tail -f on a missing file exits at
# once, "no files remaining", and the whole console would be lost).
: > "$tmp/fifo.out"
t0=$(date +%s%N)
# qemu's stdin is /dev/null; its output goes through the reader below which
# notes when the marker arrives.  Its stderr joins the console unless
# HP_VM_QEMU_STDERR names a file: there it is kept whole (the caller's copy
# of the console may be cut to its tail).
qerr=$tmp/fifo.out
[ -z "${HP_VM_QEMU_STDERR:-}" ] || qerr=$HP_VM_QEMU_STDERR
timeout -k 5 "$TIMEOUT" "${cmd[@]}" </dev/null >> "$tmp/fifo.out" 2>> "$qerr" &
qpid=$!
# tail follows the output until qemu exits (bounded: qemu is under timeout)
status=""
t_marker=""
while IFS= read -r line; do
    line=${line%$'\r'}
    # the price of silencing SeaBIOS (etc/sercon-port=0): one qemu warning
    case $line in *"externally provided fw_cfg item names"*) continue ;; esac
    printf '%s\n' "$line"
    [ -z "${HP_VM_LOG:-}" ] || printf '%s\n' "$line" >> "$HP_VM_LOG"
    case $line in
        HOMEPORT-VM-EXIT=*)
            status=${line#HOMEPORT-VM-EXIT=}
            t_marker=$(date +%s%N) ;;
    esac
done < <(tail -n +1 -s 0.05 --pid="$qpid" -f "$tmp/fifo.out" 2>/dev/null)
qrc=0
wait "$qpid" || qrc=$?
qpid=""
t1=$(date +%s%N)

if [ -n "$status" ] && [ "$status" -eq "$status" ] 2>/dev/null; then
    log "boot to marker $(( (t_marker - t0) / 1000000 )) ms, qemu exited after $(( (t1 - t0) / 1000000 )) ms; guest exit $status"
    exit "$status"
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    log "no HOMEPORT-VM-EXIT marker: timed out after ${TIMEOUT}s"
    exit 124
fi
log "no HOMEPORT-VM-EXIT marker: qemu exited with $qrc after $(( (t1 - t0) / 1000000 )) ms"
exit 125
