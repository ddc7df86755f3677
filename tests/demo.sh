#!/usr/bin/env bash
# The README's demo: the boot phase end to end on a machine of its own.
# Everything happens in a private mount namespace on a tmpfs; the real
# /home is never touched.  Servers are captive nbdkit processes.
. "$(dirname "$0")/lib.sh"
enter_namespace "$@"
setup_root
S=$T/home/profiletemp

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; echo "[exit $?]"; }

say "Home images made with homeport mkhome, served by nbdkit on a unix socket; a second server on 127.0.0.1"
mkdir -p "$T/srv/homes" "$T/skel"
echo "welcome" > "$T/skel/README"
cat >> "$CONF" <<CONF
[server]
image_dir = $T/srv/homes
skel = $T/skel
default_size = 64M
CONF
run "$HOMEPORT" -c "$CONF" mkhome alice --uid 1001 --gid 1001
run "$HOMEPORT" -c "$CONF" mkhome bob --uid 1002 --gid 1002 --size 128M
ls -ls "$T/srv/homes"
start_nbdkit "$T/homes.sock" file dir="$T/srv/homes" || { echo "nbdkit did not start"; exit 1; }
port=$(free_port)
start_nbdkit_tcp "$port" memory 1G || { echo "nbdkit (tcp) did not start"; exit 1; }

say "A dirty staging dir, as a crash leaves it"
mkdir -p "$S/alice/.config" "$S/bob"
echo "half-synced" > "$S/alice/.config/settings"
ln -s /etc "$S/bob/etc-link"
touch "$S/name with spaces" "$T/var/tmp/horizon-pam_session_alice.flag"
stale_fuse "$S/carol" && echo "stale FUSE mount at $S/carol (its daemon was SIGKILLed)"
find "$S" -maxdepth 2 2>/dev/null | sed "s|$T||" | sort
grep -F "$T" /proc/self/mountinfo | awk '{print "mounted:", $5, $9}' | sed "s|$T||"

NBD_CONF="servers = unix:$T/homes.sock 127.0.0.1:$port
probe_export = alice" write_conf
say "The configuration (boot part)"
cat "$CONF"

say "homeport boot"
run "$HOMEPORT" -c "$CONF" boot
echo "staging dir now: $(ls -A "$S" | wc -l) entries, $(stat -c '%U %a' "$S")"
test -f /etc/passwd && echo "/etc is intact (the symlink was removed, not followed)"

say "A live mount below the staging dir: boot refuses and deletes nothing"
mkdir -p "$S/dave" && mount -t tmpfs dave-home "$S/dave" && touch "$S/dave/work" "$S/notes"
run "$HOMEPORT" -c "$CONF" boot
ls "$S"
umount "$S/dave"

say "An unreachable server and a slow one (timeout 1s): reported, boot does not hang"
start_nbdkit "$T/slow.sock" --filter=delay file dir="$T/srv/homes" delay-open=10
CONNECT_TIMEOUT=1s NBD_CONF="servers = unix:$T/homes.sock unix:$T/slow.sock 127.0.0.1:$(free_port)
probe_export = alice" write_conf
start=$(date +%s%3N)
run "$HOMEPORT" -c "$CONF" boot
echo "took $(( $(date +%s%3N) - start )) ms"

say "The same as JSON (homeport boot --json)"
"$HOMEPORT" -c "$CONF" boot --json
echo
say "The resident agent, and alice logging in through PAM (pamtester, pam_exec -> homeport pam)"
add_users alice:1001
NBD_CONF="servers = unix:$T/homes.sock" write_conf
cat >> "$CONF" <<CONF
[home]
mount_dir = $T/home/%u
[session]
kill_grace = 2s
CONF
stop_agent() { [ -f "$T/run/homeport/agent.pid" ] && kill "$(cat "$T/run/homeport/agent.pid")" 2> /dev/null; sleep 0.5; }
CLEANUP_HOOK=stop_agent
run "$HOMEPORT" -c "$CONF" agent
echo "agent pid $(cat "$T/run/homeport/agent.pid"), socket: $(stat -c '%A %U' "$T/run/homeport/agent.sock")"
mkdir -p "$T/pam.d"
cat > "$T/pam.d/demo-login" <<PAM
auth     required pam_permit.so
account  required pam_exec.so stdout $HOMEPORT -c $CONF pam
session  required pam_exec.so stdout $HOMEPORT -c $CONF pam
PAM
mount --bind "$T/pam.d" /etc/pam.d
cat /etc/pam.d/demo-login
start=$(date +%s%3N)
run pamtester -v demo-login alice acct_mgmt open_session
echo "login took $(( $(date +%s%3N) - start )) ms (both stages, through PAM)"
grep " $T/home/alice " /proc/self/mountinfo | awk '{print "mounted:", $5, $9, $10}' | sed "s|$T||"
setpriv --reuid=1001 --regid=1001 --clear-groups sh -c "echo 'a note alice wrote at $(date)' > '$T/home/alice/note.txt'"
setpriv --reuid=1001 --regid=1001 --clear-groups sh -c "cd '$T/home/alice' && exec sleep 600" &
echo "alice left a process running in her home (pid $!)"
run "$HOMEPORT" -c "$CONF" status
run pamtester -v demo-login alice close_session
echo "mounted after logout: $(grep -c " $T/home/alice " /proc/self/mountinfo), alice's processes left: $(pgrep -u 1001 | wc -l)"
echo "read back from the image on the server side:"
debugfs -R "cat /note.txt" "$T/srv/homes/alice" 2>/dev/null
stop_agent

say "Demo done. (Everything lived in a private mount namespace; nothing is left behind.)"
