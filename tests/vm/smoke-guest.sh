#!/bin/sh
# Guest side of tests/vm/smoke.sh (busybox sh, runs as /test.sh in the VM).
# Prints one "SMOKE <name> ok|fail <detail>" line a check; the host turns
# them into TAP.  Exit status: the number of failed checks.
failed=0
res() { # NAME ok|fail DETAIL...
    n=$1; r=$2; shift 2
    echo "SMOKE $n $r $*"
    [ "$r" = ok ] || failed=$((failed + 1))
}

res kernel ok "$(uname -r)"

if v=$(homeport version 2>&1); then
    res version ok "$(echo "$v" | head -n1)"
else
    res version fail "exit $?: $v"
fi
echo "$v" | sed 's/^/  /'

if grep -q '^nbd ' /proc/modules && [ -e /sys/block/nbd0 ]; then
    res nbd ok "nbd.ko loaded, $(ls -d /sys/block/nbd* | wc -l) devices"
else
    res nbd fail "$(grep '^nbd ' /proc/modules || echo 'nbd not in /proc/modules'); $(ls -d /sys/block/nbd0 2>&1)"
fi

if grep -q 'ext4$' /proc/filesystems; then res ext4 ok "ext4 in /proc/filesystems"; else res ext4 fail "no ext4 in /proc/filesystems"; fi

# The raw NBD greeting through the guestfwd (nbdkit -s on the host): keep
# nc's stdin open for a second so that it reads the server's hello.
sleep 1 | timeout 10 nc "$HP_VM_NBD_HOST" "$HP_VM_NBD_PORT" > /tmp/greeting 2>/tmp/nc.err
g=$(head -c 16 /tmp/greeting)
if [ "$g" = NBDMAGICIHAVEOPT ]; then
    res greeting ok "NBDMAGIC IHAVEOPT from $HP_VM_NBD_HOST:$HP_VM_NBD_PORT"
else
    res greeting fail "got '$g' $(cat /tmp/nc.err)"
fi

# homeport's own NBD check at boot, against the same forward
mkdir -p /etc
cat > /etc/homeport.conf <<CONF
[agent]
log = stderr
[nbd]
servers = $HP_VM_NBD_HOST:$HP_VM_NBD_PORT
connect_timeout = 20s
CONF
timeout 60 homeport -c /etc/homeport.conf boot > /tmp/boot.out 2>&1
rc=$?
sed 's/^/  /' /tmp/boot.out
line=$(grep "^nbd $HP_VM_NBD_HOST:$HP_VM_NBD_PORT: " /tmp/boot.out)
case $rc:$line in
    "0:nbd $HP_VM_NBD_HOST:$HP_VM_NBD_PORT: ok,"*) res boot ok "$line" ;;
    *) res boot fail "exit $rc: ${line:-no nbd line}" ;;
esac

# restrict=on: nothing but the forwards; the gateway refuses connections
if timeout 5 nc "10.0.2.2" 22 </dev/null >/dev/null 2>&1; then
    res restricted fail "connected to 10.0.2.2:22"
else
    res restricted ok "10.0.2.2:22 not reachable"
fi

exit $failed
