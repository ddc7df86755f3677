#!/usr/bin/env bash
# The dracut module (initramfs-hooks/dracut/95homeport), no VM: dracut
# builds an image for the extracted Debian kernel with the module added,
# lsinitrd checks what went in (binary, config, secret 0600, nbd.ko,
# ext4.ko, the pre-mount hook, busybox) and that its scripts are POSIX sh.
# (The initramfs-tools hook is checked and booted by vm-netboot.sh.)
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
if ! command -v dracut > /dev/null || ! command -v lsinitrd > /dev/null; then
    echo "ok 1 - dracut module # SKIP no dracut (apt-get install dracut-core dracut-network)"
    echo "1..1"
    exit 0
fi
setup_root
OUT=${HP_VM_OUT:-$TOP/build/vm}
MOD=$TOP/initramfs-hooks/dracut/95homeport

check "module-setup.sh parses (bash -n)" bash -n "$MOD/module-setup.sh"
check "homeport-start.sh is POSIX sh (busybox ash -n)" busybox sh -n "$MOD/homeport-start.sh"
check "init-premount script is POSIX sh (busybox ash -n)" busybox sh -n "$TOP/initramfs-hooks/initramfs-tools/scripts/init-premount/homeport"
check "initramfs-tools hook is POSIX sh (busybox ash -n)" busybox sh -n "$TOP/initramfs-hooks/initramfs-tools/hooks/homeport"

# initramfs-tools hook, a configuration without NBD servers (the package's
# default): nothing goes in, update-initramfs goes on
if [ -r /usr/share/initramfs-tools/hook-functions ]; then
    printf '[nbd]\nservers =\n' > "$T/noservers.conf"
    mkdir -p "$T/itd"
    rc=0
    DESTDIR=$T/itd CONFDIR=$T/no-confdir HOMEPORT_BIN=$HOMEPORT HOMEPORT_CONF=$T/noservers.conf \
        timeout 60 sh "$TOP/initramfs-hooks/initramfs-tools/hooks/homeport" > "$T/out" 2> "$T/err" || rc=$?
    expect_rc 0 "initramfs-tools hook, no [nbd] servers: exits 0"
    contains "$T/err" "no \[nbd\] servers in $T/noservers.conf: not added to the initramfs" "says why it adds nothing"
    check "nothing added to the image" test -z "$(ls -A "$T/itd")"
else
    skip "initramfs-tools hook without servers" "no initramfs-tools"
fi

# the kernel: the one the VM tests fetch (build-image.sh, once)
rc=0
if file -L "$HOMEPORT" | grep -q 'statically linked'; then
    bash "$TOP/tests/vm/build-image.sh" "$OUT" "$HOMEPORT" > "$T/build.log" 2>&1 || rc=$?
else
    [ -s "$OUT/kernel.version" ] || rc=1
fi
if [ "$rc" != 0 ] || [ ! -s "$OUT/kernel.version" ]; then
    skip "dracut image" "no kernel in $OUT (the static run fetches it)"
    done_testing
    exit
fi
ABI=$(cat "$OUT/kernel.version")
KMOD=$OUT/kernel-$ABI/root/lib/modules/$ABI

# our module next to dracut's, in this namespace only
mkdir "$T/modules.d"
cp -a /usr/lib/dracut/modules.d/. "$T/modules.d/"
cp -a "$MOD" "$T/modules.d/"
mount --bind "$T/modules.d" /usr/lib/dracut/modules.d

mkdir -p "$T/etc/homeport"
echo "not-a-real-secret" > "$T/etc/homeport/secret"
chmod 600 "$T/etc/homeport/secret"
printf -- '-----BEGIN PRIVATE KEY-----\n' > "$T/etc/homeport/psk"
chmod 600 "$T/etc/homeport/psk"
printf '[nbd]\nservers = 10.0.2.100:10809\ntls = off\ntls_psk_file = %s\n[remote]\nsecret_file = %s\n' \
    "$T/etc/homeport/psk" "$T/etc/homeport/secret" > "$T/client.conf"

t0=$(date +%s%N)
rc=0
HOMEPORT_BIN=$HOMEPORT HOMEPORT_CONF=$T/client.conf timeout 600 \
    dracut --force --no-hostonly --no-early-microcode --kver "$ABI" --kmoddir "$KMOD" \
    --modules "base busybox homeport" --compress gzip "$T/dracut.img" > "$T/dracut.log" 2>&1 || rc=$?
if [ "$rc" = 0 ] && [ -s "$T/dracut.img" ]; then
    ok "dracut with the homeport module ($(( ($(date +%s%N) - t0) / 1000000 )) ms, $(stat -c %s "$T/dracut.img") bytes)"
else
    not_ok "dracut (exit $rc)"
    tail -30 "$T/dracut.log" | sed 's/^/#   /'
fi
lsinitrd "$T/dracut.img" > "$T/contents" 2>&1
contains "$T/contents" '^dracut modules:' "lsinitrd reads the image"
contains "$T/contents" '^homeport$' "image: module homeport included"
contains "$T/contents" ' usr/sbin/homeport$' "image: the homeport binary"
contains "$T/contents" ' etc/homeport\.conf$' "image: the config"
contains "$T/contents" "^-rw------- .* ${T#/}/etc/homeport/secret\$" "image: the secret, mode 0600"
contains "$T/contents" "^-rw------- .* ${T#/}/etc/homeport/psk\$" "image: the TLS PSK file, mode 0600"
contains "$T/contents" '/nbd\.ko' "image: nbd.ko"
contains "$T/contents" '/ext4\.ko' "image: ext4.ko"
contains "$T/contents" 'hooks/pre-mount/50-homeport-start\.sh$' "image: the pre-mount hook"
contains "$T/contents" ' usr/bin/busybox$' "image: busybox userland"

# not asked for: check() returns 255, so a default image leaves it out
printf '[nbd]\n' > "$T/empty.conf"
rc=0
HOMEPORT_BIN=$T/nonexistent HOMEPORT_CONF=$T/client.conf timeout 600 \
    dracut --force --no-hostonly --no-early-microcode --kver "$ABI" --kmoddir "$KMOD" \
    --modules "base homeport" --compress gzip "$T/nohp.img" > "$T/nohp.log" 2>&1 || rc=$?
contains "$T/nohp.log" "homeport.*(cannot|can.t)" "no binary: dracut leaves the module out and says so"
lacks "$T/nohp.log" "Including module: homeport" "no binary: the module is not included"
done_testing
