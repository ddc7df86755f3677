#!/bin/sh
# The guest's second half for tests/integration/vm-netboot.sh: /test.sh,
# run by initramfs-tools' run-init as the real root's init (pid 1) after the
# switch root.  The initramfs agent must still be serving; the system's
# agent takes over (agent --replace), then alice logs in as pam_exec would
# drive it (account, open_session), writes, the host restarts the NBD
# server mid-session (reconnect), the agent is replaced once more with the
# home mounted (re-adopted), close_session unmounts and detaches, power off.
# Lines "VMNET <name> ok|fail <detail>"; pid 1 must never exit, so every
# path ends at the marker and poweroff.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
cd /
mount -t tmpfs tmpfs /tmp 2>/dev/null
failed=$(grep -c . /run/hptest.failed 2>/dev/null)
failed=${failed:-1}
res() {
	n=$1
	r=$2
	shift 2
	echo "VMNET $n $r $*"
	[ "$r" = ok ] || failed=$((failed + 1))
}
finish() {
	echo "VMNET-TIME done at $(cut -d' ' -f1 /proc/uptime) s"
	echo "HOMEPORT-VM-EXIT=$failed"
	sync
	poweroff -f
	sleep 30
}
ms() { cut -d' ' -f1 /proc/uptime | tr -d .; } # centiseconds
established() { grep -c ' 6402000A:2A39 01 ' /proc/net/tcp; }
HP=homeport
echo "VMNET-TIME real root at $(cut -d' ' -f1 /proc/uptime) s"

# After the switch root: /run moved with its socket, the initramfs agent
# still runs.
old=$(cat /run/hptest.initramfs-agent 2>/dev/null)
[ -n "$old" ] && kill -0 "$old" 2>/dev/null && [ -S /run/homeport/agent.sock ] &&
	res agent-survives-switch-root ok "initramfs agent pid $old alive, /run/homeport/agent.sock moved with /run" ||
	res agent-survives-switch-root fail "pid '$old', $(ls -l /run/homeport 2>&1)"

# The hand-over: the system's agent (init script / unit) replaces it.
a=$(ms)
if out=$(timeout 60 $HP agent --replace 2>&1); then res replace ok "agent --replace: exit 0 $out"; else res replace fail "$out"; fi
new=$(cat /run/homeport/agent.pid 2>/dev/null)
i=0
while [ -n "$old" ] && kill -0 "$old" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ -n "$new" ] && [ "$new" != "$old" ] && kill -0 "$new" 2>/dev/null && ! kill -0 "$old" 2>/dev/null; then
	res handed-over ok "new agent pid $new, initramfs agent $old gone, in $(( ($(ms) - a) * 10 )) ms"
else
	res handed-over fail "old '$old' new '$new'"
fi
# the new root is the agent's root now
[ "$(readlink /proc/$new/root)" = / ] && res agent-root ok "the agent runs in the real root" || res agent-root fail "root $(readlink /proc/$new/root)"
i=0
while [ "$(established)" -lt 2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(established)" -ge 2 ] && res warm-after-handover ok "$(established) warm connections open" || res warm-after-handover fail "$(established)"

# The login, as pam_exec drives it
a=$(ms)
if out=$(PAM_TYPE=account PAM_USER=alice PAM_SERVICE=login timeout 60 $HP pam 2>&1); then res pam-account ok "$(echo "$out" | tail -n1)"; else res pam-account fail "$out"; fi
b=$(ms)
if out=$(PAM_TYPE=open_session PAM_USER=alice PAM_SERVICE=login timeout 60 $HP pam 2>&1); then res pam-open ok "$(echo "$out" | tail -n1)"; else res pam-open fail "$out"; fi
c=$(ms)
echo "VMNET-TIME login: account $(( (b - a) * 10 )) ms, open_session $(( (c - b) * 10 )) ms, total $(( (c - a) * 10 )) ms (uptime clock, 10 ms steps)"
dmesg | grep -q 'account alice: on a warm connection' && res pam-warm ok "account used a warm connection" || res pam-warm fail "no 'on a warm connection' in the log"
line=$(grep ' /home/alice ' /proc/mounts)
case $line in
/dev/nbd*" /home/alice ext4 "*) res home-mounted ok "$line" ;;
*)
	res home-mounted fail "mounts: $line"
	dmesg | tail -n 30 | sed 's/^/  kmsg: /'
	echo "HOMEPORT-READY-FOR-KILL"
	finish
	;;
esac
dev=${line%% *}
[ -e "/sys/block/${dev#/dev/}/pid" ] && res kernel-nbd ok "$dev connected in the kernel" || res kernel-nbd fail "no /sys/block/${dev#/dev/}/pid"
[ "$(stat -c %u /home/alice)" = 1001 ] && res owner ok "home owned by 1001" || res owner fail "uid $(stat -c %u /home/alice)"
echo "written in the netbooted guest" > /home/alice/hello.txt && sync && res write ok "hello.txt" || res write fail "write failed"

# The host restarts the NBD server (kills the guestfwd's nbdkit): the
# worker reconnects and the session goes on.
echo "HOMEPORT-READY-FOR-KILL"
i=0
while [ $i -lt 60 ]; do
	dd if=/dev/urandom of=/home/alice/during.$i bs=64k count=1 2>/dev/null && sync
	case $($HP status 2>&1) in *"reconnects "[1-9]*) break ;; esac
	sleep 1
	i=$((i + 1))
done
st=$($HP status 2>&1)
echo "$st" | sed 's/^/  /'
case $st in *connected*"reconnects "[1-9]*) res reconnect ok "after ${i}s: $(echo "$st" | grep -o 'reconnects [0-9]*')" ;; *) res reconnect fail "$st" ;; esac
echo "after the restart" > /home/alice/after.txt && sync && res write-after ok "after.txt" || res write-after fail "write failed"

# A second hand-over with the home in use: the new agent re-adopts it.
prev=$new
if out=$(timeout 60 $HP agent --replace 2>&1); then :; else res replace-in-session fail "$out"; fi
new=$(cat /run/homeport/agent.pid 2>/dev/null)
i=0
while kill -0 "$prev" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
st=$($HP status 2>&1)
if [ "$new" != "$prev" ] && ! kill -0 "$prev" 2>/dev/null && case $st in "alice $dev on /home/alice (mounted)"*) true ;; *) false ;; esac; then
	res replace-in-session ok "agent $prev -> $new, alice still mounted"
else
	res replace-in-session fail "$prev -> $new: $st"
fi

if out=$(PAM_TYPE=close_session PAM_USER=alice PAM_SERVICE=login timeout 60 $HP pam 2>&1); then res pam-close ok "$(echo "$out" | tail -n1)"; else res pam-close fail "$out"; fi
grep -q ' /home/alice ' /proc/mounts && res unmounted fail "still mounted" || res unmounted ok "not mounted"
i=0
while [ -e "/sys/block/${dev#/dev/}/pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -e "/sys/block/${dev#/dev/}/pid" ] && res detached fail "$dev still connected" || res detached ok "$dev disconnected"
dmesg | grep -i 'homeport' | tail -n 15 | sed 's/^/  kmsg: /'
finish
