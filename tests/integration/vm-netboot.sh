#!/usr/bin/env bash
# The netboot thin client, built the way a site builds it: Debian's kernel
# and an initramfs made by the real mkinitramfs (initramfs-tools-core,
# busybox userland) with the project's hook and init-premount script
# (initramfs-hooks/initramfs-tools), the config pointing at an nbdkit on
# the host.  Booted under qemu (TCG) with ip=dhcp boot=hptest: /init runs
# our init-premount script as in production (network up with
# configure_networking, modprobe nbd, the boot phase on a dirty
# /home/profiletemp, the agent started with its warm connections), then the
# test's /scripts/hptest (tests/vm/netboot/hptest) checks that and switches
# to a tmpfs "real root" through initramfs-tools' own run-init, where
# tests/vm/netboot/guest.sh hands over to the system's agent (agent
# --replace), logs alice in as pam_exec would (kernel nbd), survives an
# nbdkit restart, hands over again with the home in use, logs out and
# powers off.  The host reads alice's files from the image.
# The image contents are checked with lsinitramfs (binary, config, secret
# 0600, nbd.ko, ext4.ko, the scripts).
. "$(dirname "$0")/../lib.sh"
if ! file -L "$HOMEPORT" | grep -q 'statically linked'; then
    echo "ok 1 - netboot VM # SKIP the guest runs only the static binary: covered by the static run"
    echo "1..1"
    exit 0
fi
enter_namespace "$@"
if ! command -v mkinitramfs > /dev/null || ! command -v lsinitramfs > /dev/null; then
    echo "ok 1 - netboot VM # SKIP no mkinitramfs (apt-get install initramfs-tools-core)"
    echo "1..1"
    exit 0
fi
setup_root
OUT=${HP_VM_OUT:-$TOP/build/vm}
HOOKS=$TOP/initramfs-hooks/initramfs-tools
mkdir -p "$T/srv"
cat >> "$CONF" <<C
[server]
image_dir = $T/srv
C

# The kernel (build-image.sh fetches and unpacks it once; its busybox
# initramfs is not used here).
rc=0
bash "$TOP/tests/vm/build-image.sh" "$OUT" "$HOMEPORT" > "$T/build.log" 2>&1 || rc=$?
if [ "$rc" = 0 ]; then ok "kernel ready"; else not_ok "kernel ready (exit $rc)"; tail -20 "$T/build.log" | sed 's/^/#   /'; fi
ABI=$(cat "$OUT/kernel.version")
KROOT=$OUT/kernel-$ABI/root

# mkinitramfs reads /lib/modules/ABI and /boot/config-ABI: the extracted
# kernel's, bound over tmpfs in this private mount namespace.  (/lib/modules
# is created empty on the host when it does not exist, as any kernel
# package would.)
mkdir -p /lib/modules
mount -t tmpfs -o mode=0755 hp-modules /lib/modules
mkdir "/lib/modules/$ABI"
mount --bind -o ro "$KROOT/lib/modules/$ABI" "/lib/modules/$ABI"
mount -t tmpfs -o mode=0755 hp-boot /boot
cp "$KROOT/boot/config-$ABI" /boot/

# The site's initramfs-tools configuration, in a conf dir of its own
C=$T/initramfs-tools
mkdir -p "$C/hooks" "$C/scripts/init-premount" "$C/conf.d"
printf 'MODULES=list\nBUSYBOX=y\nCOMPRESS=gzip\n' > "$C/initramfs.conf"
printf 'virtio_pci\nvirtio_net\nnbd\next4\n' > "$C/modules"
cp "$HOOKS/hooks/homeport" "$C/hooks/"
cp "$HOOKS/scripts/init-premount/homeport" "$C/scripts/init-premount/"
# the homeport config of the thin clients, and a [remote] secret
mkdir -p "$T/etc/homeport"
echo "not-a-real-secret" > "$T/etc/homeport/secret"
chmod 600 "$T/etc/homeport/secret"
# TLS files the hook must carry (tls = off: this guest's server is in clear)
printf -- '-----BEGIN CERTIFICATE-----\n' > "$T/etc/homeport/ca-cert.pem"
printf -- '-----BEGIN PRIVATE KEY-----\n' > "$T/etc/homeport/machine-key.pem"
cp "$T/etc/homeport/ca-cert.pem" "$T/etc/homeport/machine-cert.pem"
chmod 600 "$T/etc/homeport/machine-key.pem"
cat > "$T/client.conf" <<CONF
[agent]
log = kmsg
log_level = debug
[nbd]
servers = 10.0.2.100:10809
connect_timeout = 20s
tls = off
tls_ca_file = $T/etc/homeport/ca-cert.pem
tls_cert_file = $T/etc/homeport/machine-cert.pem
tls_key_file = $T/etc/homeport/machine-key.pem
[home]
attach = kernel
kernel_api = netlink
mount_dir = /home/%u
dead_timeout = 60s
[remote]
secret_file = $T/etc/homeport/secret
CONF
printf 'HOMEPORT_BIN=%s\nHOMEPORT_CONF=%s\n' "$HOMEPORT" "$T/client.conf" > "$C/conf.d/homeport"

IMG=$T/initrd.img
t0=$(date +%s%N)
rc=0
timeout 300 mkinitramfs -d "$C" -o "$IMG" "$ABI" > "$T/mkinitramfs.log" 2>&1 || rc=$?
if [ "$rc" = 0 ] && [ -s "$IMG" ]; then
    ok "mkinitramfs with the homeport hook ($(( ($(date +%s%N) - t0) / 1000000 )) ms, $(stat -c %s "$IMG") bytes)"
else
    not_ok "mkinitramfs (exit $rc)"
fi
sed 's/^/#   mkinitramfs: /' "$T/mkinitramfs.log"
lsinitramfs -l "$IMG" > "$T/contents" 2>&1
contains "$T/contents" ' usr/sbin/homeport$' "image: the homeport binary"
contains "$T/contents" ' etc/homeport\.conf$' "image: the config at /etc/homeport.conf"
contains "$T/contents" "^-rw------- .* ${T#/}/etc/homeport/secret\$" "image: the secret, mode 0600"
contains "$T/contents" "^-rw------- .* ${T#/}/etc/homeport/machine-key.pem\$" "image: the TLS key, mode 0600"
contains "$T/contents" " ${T#/}/etc/homeport/machine-cert.pem\$" "image: the machine's certificate"
contains "$T/contents" " ${T#/}/etc/homeport/ca-cert.pem\$" "image: the CA certificate"
contains "$T/contents" "/nbd\.ko" "image: nbd.ko"
contains "$T/contents" "/ext4\.ko" "image: ext4.ko"
contains "$T/contents" ' scripts/init-premount/homeport$' "image: the init-premount script"
contains "$T/contents" ' usr/sbin/e2fsck$' "image: e2fsck"
contains "$T/contents" ' usr/bin/busybox$' "image: busybox userland"
rm -rf "$T/x" && mkdir "$T/x" && (cd "$T/x" && unmkinitramfs "$IMG" . > /dev/null 2>&1)
check "image: the binary is the one built" cmp -s "$T/x/usr/sbin/homeport" "$HOMEPORT"
check "image: init-premount ORDER runs homeport" grep -q '/scripts/init-premount/homeport' "$T/x/scripts/init-premount/ORDER"

# A site without a homeport binary: the hook warns, the image is still made
printf 'HOMEPORT_BIN=%s\n' "$T/nonexistent" > "$C/conf.d/homeport"
rc=0
timeout 300 mkinitramfs -d "$C" -o "$T/nohp.img" "$ABI" > "$T/nohp.log" 2>&1 || rc=$?
check "no binary: mkinitramfs still succeeds (exit $rc)" test "$rc" = 0 -a -s "$T/nohp.img"
contains "$T/nohp.log" 'W: homeport: no homeport binary' "no binary: the hook warns"
printf 'HOMEPORT_BIN=%s\nHOMEPORT_CONF=%s\n' "$HOMEPORT" "$T/client.conf" > "$C/conf.d/homeport"

# alice's home on the "server"
rm -f "$T/srv/alice"
hp mkhome alice --uid 1001 --gid 1001 --no-skel --size 64M
expect_rc 0 "image for alice"

# The appended cpio: the test's boot script, users, a dirty staging dir
E=$T/extra
mkdir -p "$E/scripts" "$E/etc" "$E/home/profiletemp/olduser/.cache" "$E/var/tmp"
cp "$TOP/tests/vm/netboot/hptest" "$E/scripts/hptest"
printf 'root:x:0:0:root:/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\n' > "$E/etc/passwd"
printf 'root:x:0:\nalice:x:1001:\n' > "$E/etc/group"
echo "left by the last boot" > "$E/home/profiletemp/olduser/profile.dat"
echo x > "$E/home/profiletemp/olduser/.cache/blob"
echo stale > "$E/home/profiletemp/stale-file"
touch "$E/home/profiletemp/horizon-pam_session_alice.flag"
ln -s /etc "$E/home/profiletemp/etc-link"
touch "$E/var/tmp/horizon-pam_session_alice.flag"

IMGFILE=$T/srv/alice
rc=0
HP_VM_INITRD=$IMG HP_VM_EXTRA_DIR=$E HP_VM_TIMEOUT=${HP_VM_TIMEOUT:-240} \
    HP_VM_APPEND="ip=dhcp boot=hptest init=/test.sh" \
    bash "$TOP/tests/vm/run-vm.sh" "$OUT" "$TOP/tests/vm/netboot/guest.sh" "$IMGFILE" > "$T/vm.log" 2>&1 &
vm=$!
track "$vm"
# the host restarts the NBD server when the guest says so (each guest
# connection has its own nbdkit -s: killing them = a server restart)
killed=no
for i in $(seq 2400); do
    if grep -q HOMEPORT-READY-FOR-KILL "$T/vm.log"; then
        for p in $(pgrep -x nbdkit); do
            grep -qF "$IMGFILE" "/proc/$p/cmdline" 2> /dev/null && kill -9 "$p" && killed=yes
        done
        break
    fi
    kill -0 "$vm" 2> /dev/null || break
    sleep 0.1
done
wait "$vm"
vmrc=$?
check "the host restarted nbdkit mid-session" test "$killed" = yes
while read -r _ name result detail; do
    if [ "$result" = ok ]; then ok "guest: $name: $detail"; else not_ok "guest: $name: $detail"; fi
done < <(grep '^VMNET ' "$T/vm.log" | tr -d '\r')
check "guest checks ran (exit $vmrc)" test "$vmrc" = 0
grep -E '^VMNET-TIME|homeport.log: homeport: (agent ready|init-premount)|run-vm: boot' "$T/vm.log" | tr -d '\r' | sed 's/^/# /'
t_pre=$(sed -n 's/.*homeport: init-premount at \([0-9.]*\) s.*/\1/p' "$T/vm.log" | head -n1)
t_ready=$(sed -n 's/.*homeport: agent ready .* at \([0-9.]*\) s.*/\1/p' "$T/vm.log" | head -n1)
diag "boot-to-agent-ready: ${t_ready:-?} s after the kernel started (init-premount began at ${t_pre:-?} s)"
[ "$vmrc" = 0 ] || sed 's/^/#   vm: /' "$T/vm.log" | tail -60
check "image clean after the guest's logout" e2fsck -fn "$IMGFILE"
check "hello.txt read back on the host" test "$(debugfs -R 'cat /hello.txt' "$IMGFILE" 2> /dev/null)" = "written in the netbooted guest"
check "after.txt (after the nbdkit restart) read back" test "$(debugfs -R 'cat /after.txt' "$IMGFILE" 2> /dev/null)" = "after the restart"
done_testing
