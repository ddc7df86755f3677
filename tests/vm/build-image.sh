#!/usr/bin/env bash
# build-image.sh OUTDIR HOMEPORT_BIN
#
# Builds what tests/vm/run-vm.sh boots: Debian's kernel (vmlinuz, and the
# uncompressed vmlinux for a PVH boot) and a busybox initramfs holding the
# static homeport binary, the kernel modules for nbd + ext4 + virtio-net and
# an /init that runs a test script passed in by run-vm.sh.
#
# Idempotent: the kernel stage is stamped by kernel version, the initramfs by
# a hash of everything that goes into it, so a second run takes well under a
# second.  See tests/vm/README.md.
#
# Knobs (environment):
#   HP_VM_KERNEL   kernel ABI to use, e.g. 6.1.0-56-amd64.  Default: the one
#                  already in OUTDIR, else what linux-image-amd64 depends on.
#   HP_VM_MODULES  modules to load, dependencies are added (space separated).
#   HP_VM_INITRD_COMPRESS  gzip (default) or none.
set -euo pipefail
export LC_ALL=C

usage() { echo "usage: $0 OUTDIR HOMEPORT_BIN" >&2; exit 2; }
[ $# -eq 2 ] || usage
OUT=$1
HP_BIN=$2
[ -x "$HP_BIN" ] || { echo "build-image: $HP_BIN: not an executable" >&2; exit 2; }
file -L "$HP_BIN" 2>/dev/null | grep -q 'static' ||
    { echo "build-image: $HP_BIN is not statically linked (the guest has no libc)" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
HP_BIN=$(cd "$(dirname "$HP_BIN")" && pwd)/$(basename "$HP_BIN")
SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")

MODULES=${HP_VM_MODULES:-virtio_pci virtio_net nbd ext4}
COMPRESS=${HP_VM_INITRD_COMPRESS:-gzip}
BUSYBOX=${HP_VM_BUSYBOX:-/bin/busybox}

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for tool in dpkg-deb modinfo cpio xz gzip readelf; do
    command -v "$tool" >/dev/null || die "missing $tool (see tests/vm/apt-packages.txt)"
done
file "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' ||
    die "$BUSYBOX is not a static busybox (install busybox-static)"

# one build at a time per OUTDIR
exec 9>"$OUT/.lock"
flock -w 1200 9 || die "$OUT is locked by another build"

tmp=$(mktemp -d "$OUT/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

t_start=$(date +%s%N)

# ---------------------------------------------------------------- kernel --
if [ -n "${HP_VM_KERNEL:-}" ]; then
    KVER=$HP_VM_KERNEL
elif [ -s "$OUT/kernel.version" ]; then
    KVER=$(cat "$OUT/kernel.version")
else
    KVER=$(apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: linux-image-\(.*-amd64\)$/\1/p' | head -n1)
    [ -n "$KVER" ] || die "cannot find the kernel version (apt-cache depends linux-image-amd64); set HP_VM_KERNEL"
fi
KDIR=$OUT/kernel-$KVER
ROOT=$KDIR/root

# extract_vmlinux BZIMAGE OUT: the uncompressed ELF kernel inside a bzImage
# (like the kernel's scripts/extract-vmlinux): try each compressed-stream
# magic in the file until one decompresses to an ELF file.
extract_vmlinux() {
    local img=$1 dst=$2 off magic cmd n=0
    for magic in '\xfd7zXZ\x00:xz -dc --single-stream' '\x28\xb5\x2f\xfd:zstd -dcq' \
                 '\x1f\x8b\x08:gzip -dcq'; do
        cmd=${magic#*:}
        for off in $(grep -obUaP "${magic%%:*}" "$img" | cut -d: -f1 | head -n 20); do
            n=$((n + 1))
            tail -c +$((off + 1)) "$img" | $cmd > "$dst" 2>/dev/null || true
            if [ "$(head -c 4 "$dst" | od -An -c | tr -d ' ')" = '177ELF' ] &&
               readelf -h "$dst" >/dev/null 2>&1; then
                return 0
            fi
        done
    done
    rm -f "$dst"
    return 1
}

if [ ! -e "$KDIR/.stamp" ]; then
    log "kernel $KVER: fetching linux-image-$KVER"
    rm -rf "$KDIR"
    mkdir -p "$KDIR/deb"
    fetch() {
        (cd "$KDIR/deb" && timeout 600 apt-get download -q -o APT::Sandbox::User=root \
            "linux-image-$KVER" </dev/null)
    }
    if ! fetch; then
        log "apt-get download failed; refreshing package lists once"
        timeout 600 apt-get update -q </dev/null >&2 || true
        fetch || die "apt-get download linux-image-$KVER failed"
    fi
    deb=$(ls "$KDIR"/deb/linux-image-"$KVER"_*.deb | head -n1)
    log "kernel $KVER: extracting $(basename "$deb")"
    dpkg-deb -x "$deb" "$ROOT"
    [ -f "$ROOT/boot/vmlinuz-$KVER" ] || die "no /boot/vmlinuz-$KVER in $deb"
    ln -sf "root/boot/vmlinuz-$KVER" "$KDIR/vmlinuz"
    # The uncompressed kernel boots through PVH (no decompression under TCG)
    if extract_vmlinux "$ROOT/boot/vmlinuz-$KVER" "$KDIR/vmlinux"; then
        if ! readelf -n "$KDIR/vmlinux" | grep -q 'Xen .*0x00000012'; then
            log "vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): not usable"
            rm -f "$KDIR/vmlinux"
        fi
    else
        log "could not extract vmlinux from the bzImage; the bzImage will be booted"
    fi
    # modules.alias etc., to resolve soft dependencies ("crypto-crc32c")
    if command -v depmod >/dev/null; then
        depmod -b "$ROOT" "$KVER" || log "depmod failed: soft dependencies not resolved"
    fi
    rm -rf "$KDIR/deb" "$ROOT/usr/share/doc"
    touch "$KDIR/.stamp"
    log "kernel $KVER ready in $KDIR"
fi
echo "$KVER" > "$OUT/kernel.version"
ln -sfn "kernel-$KVER" "$OUT/kernel"
MODDIR=$ROOT/lib/modules/$KVER

# ------------------------------------------------------ module load order --
# modfile NAME: path of the module's file (name with - or _), or nothing.
modfile() {
    local n=$1 alt
    alt=$(printf '%s' "$n" | tr '_-' '-_')
    find "$MODDIR/kernel" \( -name "$n.ko" -o -name "$n.ko.*" -o -name "$alt.ko" -o -name "$alt.ko.*" \) \
        -print -quit
}
# builtin NAME: the module is built into the kernel.
builtin() {
    grep -qE "/($1|$(printf '%s' "$1" | tr '_-' '-_')).ko$" "$MODDIR/modules.builtin" 2>/dev/null
}
# softdeps FILE: the "pre:" soft dependencies, resolved through modules.alias.
softdeps() {
    local sd w
    sd=$(modinfo -F softdep "$1" 2>/dev/null || true)
    [ -n "$sd" ] || return 0
    [ -f "$MODDIR/modules.alias" ] || return 0
    # "pre: a b post: c": keep the words after pre: up to the next key
    printf '%s\n' "$sd" | tr ' ' '\n' | awk '/^pre:$/{p=1;next} /:$/{p=0} p&&NF' |
    while read -r w; do
        command -v modprobe >/dev/null &&
            modprobe -d "$ROOT" -S "$KVER" -R "$w" 2>/dev/null || true
    done
}

declare -A seen=()
order=()
softs=()
# visit NAME SOFT: depth-first, dependencies first.  Bounded by the module
# count (each is visited once).
visit() {
    local name=$1 soft=$2 f d
    name=${name//-/_}
    [ -z "${seen[$name]:-}" ] || return 0
    seen[$name]=1
    f=$(modfile "$name")
    if [ -z "$f" ]; then
        builtin "$name" && return 0
        [ "$soft" = 1 ] && { log "soft dependency $name not found, skipped"; return 0; }
        die "module $name: not found in $MODDIR and not built in"
    fi
    for d in $(softdeps "$f"); do visit "$d" 1; done
    for d in $(modinfo -F depends "$f" | tr ',' ' '); do visit "$d" "$soft"; done
    order+=("$f")
    softs+=("$soft")
}
# The resolved order is cached per kernel and module list.
order_cache=$KDIR/order-$(printf '%s' "$MODULES" | sha256sum | cut -c1-16)
if [ -s "$order_cache" ]; then
    while read -r f soft; do order+=("$f"); softs+=("$soft"); done < "$order_cache"
else
    for m in $MODULES; do visit "$m" 0; done
    for i in "${!order[@]}"; do echo "${order[$i]} ${softs[$i]}"; done > "$order_cache.tmp"
    mv "$order_cache.tmp" "$order_cache"
fi

# ------------------------------------------------------------- initramfs --
# Everything that goes in: hash it, rebuild only when it changed.
inputs_hash=$( {
    echo "kver=$KVER modules=$MODULES compress=$COMPRESS"
    printf '%s\n' "${order[@]}"
    sha256sum "$HP_BIN" "$BUSYBOX" "$SELF" "${order[@]}"
} | sha256sum | cut -d' ' -f1)

INITRD=$OUT/initramfs.cpio$([ "$COMPRESS" = gzip ] && echo .gz || true)
if [ -s "$INITRD" ] && [ -f "$OUT/.stamp-initramfs" ] &&
   [ "$(cat "$OUT/.stamp-initramfs")" = "$inputs_hash" ]; then
    log "up to date ($(( ($(date +%s%N) - t_start) / 1000000 )) ms)"
    exit 0
fi

log "initramfs: $(basename "$HP_BIN"), busybox, ${#order[@]} modules"
S=$tmp/root
mkdir -p "$S"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,mnt,root,var/tmp,lib/modules}
cp "$BUSYBOX" "$S/bin/busybox"
# applet symlinks, made here so that /init needs no "busybox --install"
# (perl-base is essential in Debian; one ln per applet costs seconds here)
"$BUSYBOX" --list-full | S=$S perl -ne 'chomp; next if $_ eq "bin/busybox";
    symlink("/bin/busybox", "$ENV{S}/$_") or die "symlink $_: $!\n"'

cp "$HP_BIN" "$S/sbin/homeport"
chmod 755 "$S/sbin/homeport"

: > "$S/lib/modules/load-order"
i=0
for f in "${order[@]}"; do
    base=$(basename "$f")
    case $base in
        *.ko.xz)  xz -dc "$f" > "$S/lib/modules/${base%.xz}"; base=${base%.xz} ;;
        *.ko.zst) zstd -dcq "$f" > "$S/lib/modules/${base%.zst}"; base=${base%.zst} ;;
        *.ko.gz)  gzip -dc "$f" > "$S/lib/modules/${base%.gz}"; base=${base%.gz} ;;
        *)        cp "$f" "$S/lib/modules/$base" ;;
    esac
    # "name optional": a soft dependency may fail to load (e.g. a CPU feature)
    echo "$base ${softs[$i]}" >> "$S/lib/modules/load-order"
    i=$((i + 1))
done
echo "$KVER" > "$S/etc/kernel-version"
echo "root:x:0:0:root:/root:/bin/sh" > "$S/etc/passwd"
echo "root:x:0:" > "$S/etc/group"
printf '127.0.0.1 localhost\n10.0.2.100 nbdhost\n' > "$S/etc/hosts"
echo homeport-vm > "$S/etc/hostname"

cat > "$S/init" <<'INIT'
#!/bin/sh
# /init of the homeport test VM (tests/vm/build-image.sh).  Runs /test.sh,
# which tests/vm/run-vm.sh appends as a second cpio archive, prints
# HOMEPORT-VM-EXIT=<status> and powers off.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname homeport-vm

fail() { echo "HOMEPORT-VM: $*"; echo "HOMEPORT-VM-EXIT=${rc:-99}"; sync; poweroff -f; sleep 10; }

# Modules, dependencies first.  MOD.PARAM=VALUE words on the kernel command
# line are passed to insmod, as modprobe would (e.g. nbd.nbds_max=4).
set -- $(cat /proc/cmdline)
while read -r ko optional; do
    m=${ko%.ko}; params=""
    for w in "$@"; do
        case $w in "$m".*=*|"$(echo "$m" | tr _ -)".*=*) params="$params ${w#*.}" ;; esac
    done
    if [ "$optional" = 1 ]; then
        # e.g. crc32c-intel without SSE4.2 (qemu's default CPU): "No such device"
        insmod "/lib/modules/$ko" $params 2>/dev/null || true
    elif ! insmod "/lib/modules/$ko" $params; then
        rc=98; fail "insmod $ko failed"
    fi
done < /lib/modules/load-order

# qemu user networking: 10.0.2.15/24, gateway 10.0.2.2, host services
# through guestfwd on 10.0.2.100.
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ -e /sys/class/net/eth0 ]; then
    ip link set eth0 up
    ip addr add 10.0.2.15/24 dev eth0
    ip route add default via 10.0.2.2
else
    echo "HOMEPORT-VM: no eth0"
fi

export HP_VM=1 HP_VM_NBD_HOST=10.0.2.100 HP_VM_NBD_PORT=10809
echo "HOMEPORT-VM: ready at $(cut -d' ' -f1 /proc/uptime) s, kernel $(uname -r)"
if [ -f /test.sh ]; then
    cd /root
    sh /test.sh </dev/null
    rc=$?
    cd /
else
    echo "HOMEPORT-VM: no /test.sh"
    rc=127
fi
echo "HOMEPORT-VM: done at $(cut -d' ' -f1 /proc/uptime) s"
echo "HOMEPORT-VM-EXIT=$rc"
sync
poweroff -f
sleep 10
INIT
chmod 755 "$S/init"

(cd "$S" && find . -print0 | sort -z |
    cpio --null -o -H newc -R 0:0 --quiet) > "$tmp/initramfs.cpio"
if [ "$COMPRESS" = gzip ]; then
    gzip -6 -n < "$tmp/initramfs.cpio" > "$tmp/initramfs.cpio.gz"
fi
rm -f "$OUT/initramfs.cpio" "$OUT/initramfs.cpio.gz"
mv "$tmp/$(basename "$INITRD")" "$INITRD"
ln -sfn "$(basename "$INITRD")" "$OUT/initramfs"
echo "$inputs_hash" > "$OUT/.stamp-initramfs"
log "wrote $INITRD ($(stat -c %s "$INITRD") bytes) in $(( ($(date +%s%N) - t_start) / 1000000 )) ms"
