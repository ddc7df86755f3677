#!/bin/sh
# Guest side of tests/integration/vm-home-kernel.sh (busybox sh, /test.sh in
# the VM): alice's home over the kernel's nbd driver.  Prints one
# "VMHOME <name> ok|fail <detail>" line a check; exit status = failures.
# API=ioctl (set by the host in front of this script): the old ioctl
# interface, which cannot reconnect, so that part is skipped.
API=${API:-netlink}
failed=0
res() {
    n=$1; r=$2; shift 2
    echo "VMHOME $n $r $*"
    [ "$r" = ok ] || failed=$((failed + 1))
}
echo "root:x:0:0:root:/root:/bin/sh" > /etc/passwd
echo "alice:x:1001:1001::/home/alice:/bin/sh" >> /etc/passwd
printf 'root:x:0:\nalice:x:1001:\n' > /etc/group
mkdir -p /run /home
cat > /etc/homeport.conf <<CONF
[agent]
log = stderr
[nbd]
servers = $HP_VM_NBD_HOST:$HP_VM_NBD_PORT
connect_timeout = 20s
[home]
attach = kernel
kernel_api = $API
mount_dir = /home/%u
dead_timeout = 60s
CONF
HP="homeport -c /etc/homeport.conf"

t0=$(date +%s)
if out=$(timeout 60 $HP mount alice 2>&1); then res mount ok "$(echo "$out" | tail -n1)"; else res mount fail "$out"; fi
echo "$out" | sed 's/^/  /'
line=$(grep ' /home/alice ' /proc/mounts)
case $line in
    "/dev/nbd"*" /home/alice ext4 "*nosuid*nodev*) res device ok "$line" ;;
    *) res device fail "mounts: $line" ;;
esac
dev=${line%% *}
[ -e "/sys/block/${dev#/dev/}/pid" ] && res connected ok "$dev has a receiver" || res connected fail "no /sys/block/${dev#/dev/}/pid"
st=$($HP status 2>&1)
echo "$st" | sed 's/^/  /'
case $st in "alice $dev on /home/alice (mounted): "*"via kernel"*connected*) res status ok "kernel, connected" ;; *) res status fail "$st" ;; esac
if [ $failed -gt 0 ]; then
    echo "HOMEPORT-READY-FOR-KILL" # let the host go on
    exit $failed
fi
owner=$(stat -c %u /home/alice)
[ "$owner" = 1001 ] && res owner ok "root of the home is uid 1001" || res owner fail "uid $owner"

echo "written in the guest" > /home/alice/hello.txt
dd if=/dev/urandom of=/home/alice/big bs=1M count=4 2>/dev/null
sync
echo "VMHOME-SUM $(sha256sum /home/alice/big | cut -d' ' -f1)"

if [ "$API" = netlink ]; then
# The host kills the server process now; the kernel holds I/O, the worker
# reconnects (NBD_CMD_RECONFIGURE) and I/O goes on.
echo "HOMEPORT-READY-FOR-KILL"
i=0
while [ $i -lt 30 ]; do
    dd if=/dev/urandom of=/home/alice/during.$i bs=64k count=1 2>/dev/null && sync
    case $($HP status 2>&1) in *"reconnects "[1-9]*) break ;; esac
    sleep 1
    i=$((i + 1))
done
st=$($HP status 2>&1)
echo "$st" | sed 's/^/  /'
case $st in *connected*"reconnects "[1-9]*) res reconnect ok "after ${i}s: $(echo "$st" | grep -o 'reconnects [0-9]*')" ;; *) res reconnect fail "$st" ;; esac
fi
echo "after the reconnect" > /home/alice/after.txt && sync && res write-after ok "written and synced" || res write-after fail "write failed"

if out=$(timeout 60 $HP umount alice 2>&1); then res umount ok "$out"; else res umount fail "$out"; fi
grep -q ' /home/alice ' /proc/mounts && res unmounted fail "still mounted" || res unmounted ok "not mounted"
[ -e "/sys/block/${dev#/dev/}/pid" ] && res disconnected fail "$dev still connected" || res disconnected ok "$dev disconnected"
echo "VMHOME-TIME mount-to-umount $(( $(date +%s) - t0 ))s"
exit $failed
