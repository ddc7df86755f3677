#!/usr/bin/env bash
# NBD homes over FUSE + loop (attach = fuse): homeport mount/umount/status
# against a captive nbdkit serving images made by homeport mkhome; the data
# is read back from the image with debugfs.  Reconnect after the server is
# restarted mid-write; a clean I/O error when it stays away; busy unmount;
# owner check; fsck refusal; 20 homes at once.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport

CLEANUP_HOOK=stop_homes

add_users alice:2001 bob:2002 carol:2003 dave:2004
for i in $(seq -w 1 20); do add_users "u$i:$((3000 + 10#$i))"; done
mkdir -p "$T/srv" "$T/skel"
echo hi > "$T/skel/README"
conf() {
    ATTACH=auto HOME_CONF="dead_timeout = ${DEAD_TIMEOUT:-30s}
fix_owner = ${FIX_OWNER:-no}" IMAGE_SIZE=64M SERVER_CONF="skel = $T/skel" home_conf "servers = unix:$T/nbd.sock"
}
conf
for u in alice bob carol; do hp mkhome "$u"; done
hp mkhome dave --uid 4242 --gid 4242 # owned by someone else
check "nbdkit serves the image dir" start_nbdkit "$T/nbd.sock" file dir="$T/srv"

# --- mount, write, unmount, read back from the image ---
hp mount alice
expect_rc 0 "mount alice"
contains "$T/out" "^Requesting home of alice" "progress: requesting"
contains "$T/out" "^Checking the home of alice" "progress: checking"
contains "$T/out" "^Home of alice mounted on $T/home/alice$" "progress: mounted"
check "ext4 on a loop device at the home dir" bash -c "grep ' $T/home/alice ' /proc/self/mountinfo | grep -q ' - ext4 /dev/loop'"
check "mounted nosuid,nodev" bash -c "grep ' $T/home/alice ' /proc/self/mountinfo | grep -q 'nosuid,nodev'"
check "the home belongs to alice" test "$(stat -c %U "$T/home/alice")" = alice
check "skeleton is there" test "$(cat "$T/home/alice/README")" = hi
hp status
contains "$T/out" "^alice /dev/loop[0-9]+ on $T/home/alice \(mounted\): unix:$T/nbd.sock export 'alice' via fuse \(direct I/O\), connected, sessions 0, reconnects 0" "status line"
hp status --json
check "status JSON" test "$(json_get "$T/out" '[(h["user"], h["state"], h["attach"]) for h in j["homes"]] == [("alice", "connected", "fuse")] and j["count"] == 1')" = True
head -c 8M /dev/urandom > "$T/data"
cp "$T/data" "$T/home/alice/data"
hp mount alice
expect_rc 1 "a second mount of alice is refused"
contains "$T/err" "already mounted on $T/home/alice" "says where"
hp umount alice
expect_rc 0 "umount alice"
check "nothing mounted at the home dir" bash -c "! grep -q ' $T/home/alice ' /proc/self/mountinfo"
check "no FUSE mount left" bash -c "! grep -q ' $R/fuse/' /proc/self/mountinfo"
check "no record left" test ! -e "$R/homes/alice"
debugfs -R "dump /data $T/back" "$T/srv/alice" > /dev/null 2>&1
check "data read back from the image with debugfs" cmp -s "$T/data" "$T/back"
check "image fsck clean after umount" e2fsck -fn "$T/srv/alice"
# Something else mounted on the home dir: the home is not mounted over it.
mount -t tmpfs other "$T/home/alice"
hp mount alice
expect_rc 1 "mount alice with a tmpfs on her home dir"
contains "$T/err" "something else is mounted on $T/home/alice already" "says what is in the way"
check "the tmpfs is still the top mount there" bash -c "grep ' $T/home/alice ' /proc/self/mountinfo | tail -1 | grep -q ' - tmpfs other '"
check "nothing of alice's home left" bash -c "! grep -q ' $R/fuse/alice ' /proc/self/mountinfo && test ! -e '$R/homes/alice'"
umount "$T/home/alice"
# The loop device is autoclear: unmounted by hand, it is freed at once and
# may be bound by someone else before homeport releases it.  That binding
# must survive homeport's umount.
hp mount alice
dev=$(sed -n 's/^device=//p' "$R/homes/alice")
umount "$T/home/alice"
wait_for bash -c "! losetup '$dev' > /dev/null 2>&1"
truncate -s 1M "$T/other.img"
losetup "$dev" "$T/other.img" && track_loop "$dev"
hp umount alice
expect_rc 0 "umount alice after its loop device was freed and taken"
check "someone else's binding of $dev is left alone" bash -c "losetup '$dev' | grep -q other.img"
losetup -d "$dev"
hp umount alice
expect_rc 1 "umount of a home that is not mounted"
contains "$T/err" "no home of alice is mounted by homeport here" "says so"

# --- busy: a process inside keeps it; it is named, the home stays ---
hp mount alice
(cd "$T/home/alice" && exec sleep 60) &
busy=$!
track "$busy"
sleep 0.2
hp umount alice
expect_rc 1 "umount while a process sits in the home"
contains "$T/err" "is busy: .*$busy \(sleep, cwd\); it stays mounted" "the holder is named with pid and name"
check "still mounted" is_mounted "$T/home/alice"
kill "$busy"; wait "$busy" 2> /dev/null
hp umount alice
expect_rc 0 "umount after the process left"

# --- owner check ---
hp mount dave
expect_rc 1 "a home owned by another uid is refused"
contains "$T/err" "belongs to uid 4242, not 2004: chown it on the server, or set fix_owner = yes" "says what to do"
check "nothing left mounted after the refusal" bash -c "! grep -q ' $T/home/dave ' /proc/self/mountinfo && ! grep -q ' $R/fuse/dave ' /proc/self/mountinfo"
FIX_OWNER=yes conf
hp mount dave
expect_rc 0 "with fix_owner = yes it is mounted"
check "and given to dave" test "$(stat -c %U "$T/home/dave")" = dave
hp umount dave
conf

# --- a filesystem e2fsck -p cannot repair ---
cp "$T/srv/carol" "$T/carol.orig"
debugfs -w -R "clri <2>" "$T/srv/carol" > /dev/null 2>&1
hp mount carol
expect_rc 1 "a damaged filesystem still marked clean: the kernel refuses it"
contains "$T/err" "needs repair .*run 'e2fsck -f' on export 'carol'" "tells the admin what to run"
debugfs -w -R "ssv state 2" "$T/srv/carol" > /dev/null 2>&1 # "has errors": e2fsck -p runs
hp mount carol
expect_rc 1 "a damaged filesystem e2fsck -p cannot repair is refused"
contains "$T/err" "errors e2fsck -p cannot repair .*run 'e2fsck -f' on export 'carol'" "tells the admin what to run"
check "nothing left: no mount, no FUSE, no record" bash -c "! grep -q ' $T/home/carol ' /proc/self/mountinfo && ! grep -q ' $R/fuse/carol ' /proc/self/mountinfo && test ! -e '$R/homes/carol'"
cp "$T/carol.orig" "$T/srv/carol"

# --- an export the server does not have ---
add_users erin:2005
hp mount erin
expect_rc 1 "missing export refused"
contains "$T/err" "export 'erin'" "names the export"
check "no worker, no FUSE mount left" bash -c "! grep -q ' $R/fuse/erin ' /proc/self/mountinfo && test ! -e '$R/homes/erin'"

# --- invalid names never reach a path ---
hp mount "../etc"
expect_rc 2 "invalid user name refused"

# --- the server is restarted in the middle of a write (50 ms a write
# request, so that the copy takes a while) ---
kill "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null
check "nbdkit with slow writes" start_nbdkit "$T/nbd.sock" --filter=delay file dir="$T/srv" delay-write=50ms
hp mount bob
head -c 24M /dev/urandom > "$T/big"
(dd if="$T/big" of="$T/home/bob/big" bs=1M oflag=direct status=none; echo "dd=$?" > "$T/dd.rc") &
writer=$!
sleep 0.3
kill -9 "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null
sleep 1
check "nbdkit restarted" start_nbdkit "$T/nbd.sock" --filter=delay file dir="$T/srv" delay-write=50ms
for i in $(seq 300); do [ -e "$T/dd.rc" ] && break; sleep 0.1; done
wait "$writer" 2> /dev/null
check "the write completed after the reconnect" test "$(cat "$T/dd.rc" 2> /dev/null)" = dd=0
hp status
contains "$T/out" "^bob .* connected, sessions 0, reconnects [1-9]" "status counts the reconnect"
hp umount bob
expect_rc 0 "umount bob"
debugfs -R "dump /big $T/big.back" "$T/srv/bob" > /dev/null 2>&1
check "the data written across the restart is intact" cmp -s "$T/big" "$T/big.back"

# --- the server stays away longer than dead_timeout: clean I/O error ---
DEAD_TIMEOUT=2s conf
hp mount bob
kill -9 "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null
t0=$(date +%s%3N)
rc=0
timeout 30 dd if=/dev/urandom of="$T/home/bob/lost" bs=1M count=4 oflag=direct status=none 2> "$T/dd.err" || rc=$?
t1=$(date +%s%3N)
check "the write fails instead of hanging (exit $rc)" test "$rc" != 0 -a "$rc" != 124
check "within dead_timeout + connect time ($((t1 - t0)) ms < 15000)" test $((t1 - t0)) -lt 15000
hp status
contains "$T/out" "^bob .* disconnected, .*last error: cannot connect to unix:$T/nbd.sock" "status says disconnected, with the reason"
hp umount bob
check "umount still works with the server gone (exit $rc)" test "$rc" = 0
check "nbdkit back" start_nbdkit "$T/nbd.sock" file dir="$T/srv"
conf

# --- a server that exports the homes read-only: checked (-n), mounted ro ---
kill "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null
check "nbdkit read-only" start_nbdkit "$T/nbd.sock" -r file dir="$T/srv"
hp mount alice
expect_rc 0 "a read-only export is mounted"
check "mounted read-only" bash -c "grep ' $T/home/alice ' /proc/self/mountinfo | grep -q ' ro,'"
check "the old data is readable" cmp -s "$T/data" "$T/home/alice/data"
check "writing fails" bash -c "! touch '$T/home/alice/new' 2> /dev/null"
hp status
contains "$T/out" "^alice .*\(direct I/O, read-only\), connected" "status says read-only"
hp umount alice
expect_rc 0 "umount of the read-only home"
kill "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null
check "nbdkit read-write again" start_nbdkit "$T/nbd.sock" file dir="$T/srv"

# --- 20 homes at once ---
for i in $(seq -w 1 20); do hp mkhome "u$i" --size 32M --no-skel; done
pids=()
for i in $(seq -w 1 20); do
    timeout 60 "$HOMEPORT" -c "$CONF" mount "u$i" > "$T/m$i.out" 2>&1 &
    pids+=($!)
done
wait_all=0
for j in "${pids[@]}"; do wait "$j" || wait_all=$((wait_all + 1)); done
check "20 concurrent mounts succeeded ($wait_all failed)" test "$wait_all" = 0
check "20 homes mounted" test "$(grep -c " $T/home/u" /proc/self/mountinfo)" = 20
for i in $(seq -w 1 20); do echo "$i" > "$T/home/u$i/id"; done
hp status --json
check "status counts 20" test "$(json_get "$T/out" 'j["count"]')" = 20
pids=()
for i in $(seq -w 1 20); do
    timeout 60 "$HOMEPORT" -c "$CONF" umount "u$i" > "$T/u$i.out" 2>&1 &
    pids+=($!)
done
for j in "${pids[@]}"; do wait "$j"; done
check "all unmounted" test "$(grep -c " $T/home/u" /proc/self/mountinfo)" = 0
check "no FUSE mounts left" bash -c "! grep -q ' $R/fuse/' /proc/self/mountinfo"
check "no loop device left bound to a home ($(losetup -a | grep -c "$R"))" test "$(losetup -a | grep -c "$R")" = 0
check "no worker left" bash -c "! pgrep -f '$CONF [m]ount' > /dev/null"
check "no record left ($(ls -A "$R/homes" | tr "\n" " "))" test -z "$(ls -A "$R/homes")"
check "u07 kept its file" test "$(debugfs -R 'cat /id' "$T/srv/u07" 2> /dev/null)" = 07

done_testing
