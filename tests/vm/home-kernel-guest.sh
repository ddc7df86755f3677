#!/bin/sh
# Guest side of tests/integration/vm-home-kernel.sh (busybox sh, /test.sh in
# the VM): alice's home over the kernel's nbd driver.  Prints one
# "VMHOME <name> ok|fail <detail>" line a check; exit status = failures.
# API=ioctl (set by the host in front of this script): the old ioctl
# interface, which cannot reconnect, so that part is skipped.
API=${API:-netlink}
# TLS=1: the server requires TLS with a pre-shared key (the host put the
# key file in /etc/homeport/psk): the kernel gets the relay's socket
TLS=${TLS:-0}
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
if [ "$TLS" = 1 ]; then
    sed -i 's|^\[nbd\]$|[nbd]\ntls_psk_file = /etc/homeport/psk\ntls_psk_identity = thin01|' /etc/homeport.conf
fi
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

# The same home through the agent and the PAM client, as pam_exec drives
# it: prepared at account on a warm connection handed to nbd.ko, mounted
# at open_session, released at close_session.
if [ "$API" = netlink ]; then
    $HP -v agent -f 2> /tmp/agent.log &
    agent=$!
    i=0
    while [ ! -S /run/homeport/agent.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    # the warm connections (opened at a random moment within 4 s)
    i=0
    while ! $HP status | grep -q '^warm connections to .*: [1-9][0-9]* ready' && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    ms() { cut -d' ' -f1 /proc/uptime | tr -d .; } # centiseconds
    a=$(ms)
    if out=$(PAM_TYPE=account PAM_USER=alice PAM_SERVICE=login timeout 60 $HP pam 2>&1); then res pam-account ok "$(echo "$out" | tail -n1)"; else res pam-account fail "$out"; fi
    b=$(ms)
    if out=$(PAM_TYPE=open_session PAM_USER=alice PAM_SERVICE=login timeout 60 $HP pam 2>&1); then res pam-open ok "$out"; else res pam-open fail "$out"; fi
    c=$(ms)
    echo "VMHOME-TIME account $(( (b - a) * 10 ))ms open_session $(( (c - b) * 10 ))ms (uptime clock, 10 ms steps)"
    grep -q "account alice: on a warm connection" /tmp/agent.log && res pam-warm ok "account used a warm connection" || res pam-warm fail "$(cat /tmp/agent.log)"
    line=$(grep ' /home/alice ' /proc/mounts)
    case $line in /dev/nbd*) res pam-device ok "$line" ;; *) res pam-device fail "mounts: $line" ;; esac
    pdev=${line%% *}
    echo "written through PAM" > /home/alice/pam.txt && sync
    if out=$(PAM_TYPE=close_session PAM_USER=alice PAM_SERVICE=login timeout 60 $HP pam 2>&1); then res pam-close ok "$out"; else res pam-close fail "$out"; fi
    grep -q ' /home/alice ' /proc/mounts && res pam-unmounted fail "still mounted" || res pam-unmounted ok "not mounted"
    [ -e "/sys/block/${pdev#/dev/}/pid" ] && res pam-disconnected fail "$pdev still connected" || res pam-disconnected ok "$pdev disconnected"
    kill $agent
    wait $agent
    sed 's/^/  agent: /' /tmp/agent.log

    # The server goes away for good (the host hides the image, so every
    # reconnect fails): after dead_timeout the kernel fails I/O cleanly,
    # status says so, and the home can still be unmounted.
    sed 's/^dead_timeout = .*/dead_timeout = 3s/' /etc/homeport.conf > /etc/homeport-dead.conf
    HPD="homeport -c /etc/homeport-dead.conf"
    if out=$(timeout 60 $HPD mount alice 2>&1); then res dead-mount ok "$(echo "$out" | tail -n1)"; else res dead-mount fail "$out"; fi
    echo "HOMEPORT-READY-FOR-DEATH"
    t0=$(date +%s)
    i=0
    while [ $i -lt 60 ] && dd if=/dev/zero of=/home/alice/dead.$i bs=4k count=1 conv=fsync 2>/dev/null; do
        sleep 1
        i=$((i + 1))
    done
    t1=$(date +%s)
    [ $i -lt 60 ] && res dead-eio ok "writes fail after $((t1 - t0)) s (server gone, dead_timeout 3s)" || res dead-eio fail "writes still succeed after 60 s"
    st=$($HPD status 2>&1)
    echo "$st" | sed 's/^/  /'
    case $st in *disconnected*) res dead-status ok "status: disconnected" ;; *) res dead-status fail "$st" ;; esac
    out=$(timeout 60 $HPD umount alice 2>&1)
    echo "$out" | sed 's/^/  /'
    grep -q ' /home/alice ' /proc/mounts && res dead-unmounted fail "still mounted" || res dead-unmounted ok "unmounted within $(( $(date +%s) - t1 )) s"
    echo "HOMEPORT-DEATH-DONE"
fi
# With io_timeout set the driver never holds a request it cannot send
stuck=$(dmesg | grep "Possible stuck request")
[ -z "$stuck" ] && res no-stuck-request ok "no request held past the io_timeout" || res no-stuck-request fail "$stuck"
exit $failed
