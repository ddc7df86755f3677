#!/usr/bin/env bash
# The FUSE worker keeps the ranges a mount read (after the device's first
# 64 KiB: group 0's inodes, the journal's superblock) in
# state_dir/layout/USER, and at the next attach asks for them together
# with the first 64 KiB, one round trip instead of one after the other.
# Each read waits 30 ms in the server (nbdkit's delay filter), so the log
# filter, in front of it, shows which reads were in flight at once.  A
# hint that does not fit (other ranges, another size) costs only the
# round trips: the mount works, the data is right, the hint is corrected.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
requires_fuse
setup_root
R=$T/run/homeport
CLEANUP_HOOK=stop_homes

add_users alice:2001
mkdir -p "$T/srv"
ATTACH=fuse IMAGE_SIZE=64M home_conf "servers = unix:$T/nbd.sock
connections = 1"
hp mkhome alice
given "alice's home image" test "$rc" = 0
LOG=$T/nbd-requests.log
given "nbdkit with a request log, each read delayed 30 ms" start_nbdkit "$T/nbd.sock" \
    --filter=log --filter=delay file dir="$T/srv" logfile="$LOG" rdelay=30ms
HINT=$T/var/lib/homeport/layout/alice

# reads_in_flight: for the last connection of alice, the most reads that
# were started and not yet answered at once, before the first write.
reads_in_flight() {
    awk '$4 == "Connect" && $5 == "export=alice" { c = $3; n = 0; most = 0; done = 0 }
        $3 != c || done { next }
        $4 == "Write" { done = 1; next }
        $4 == "Read" { if (++n > most) most = n }
        $4 == "...Read" { n-- }
        END { print most }' "$LOG"
}
# bytes_served: what the server read for alice's last connection, in bytes.
bytes_served() {
    local c x sum=0
    c=$(awk '$4 == "Connect" && $5 == "export=alice" { c = $3 } END { print c }' "$LOG")
    for x in $(awk -v c="$c" '$3 == c && $4 == "Read" {
            for (i = 5; i <= NF; i++) if ($i ~ /^count=/) print substr($i, 7) }' "$LOG"); do
        sum=$((sum + x))
    done
    echo "$sum"
}
# counted_all: the worker's stats count every byte the server read (the
# stats file is rewritten within a second of a change).
counted_all() {
    [ "$(sed -n 's/^bytes_read=//p' "$R/homes/alice:stats" 2> /dev/null)" = "$(bytes_served)" ]
}
mount_alice() { # WHAT
    hp mount alice
    expect_rc 0 "mount alice ($1)"
}
umount_alice() {
    hp umount alice
    given "umount alice" test "$rc" = 0
}

check "no hint before the first mount" test ! -e "$HINT"
mount_alice "no hint"
check "  one read at a time before the first write" test "$(reads_in_flight)" = 1
echo "written with a hint" > "$T/home/alice/note"
umount_alice
check "the hint is kept" test -s "$HINT"
check "  mode 0600" test "$(stat -c %a "$HINT")" = 600
read -r size ranges < "$HINT"
check "  for the image's size ($size)" test "$size" = "$(stat -c %s "$T/srv/alice")"
check "  the inodes and the journal's superblock ($ranges)" test "$(echo "$ranges" | wc -w)" = 2
good=$(cat "$HINT")

mount_alice "with the hint"
check "  the three reads in flight at once" test "$(reads_in_flight)" = 3
check "  the worker's stats count them ($(bytes_served) bytes read by the server)" wait_for counted_all
check "  the note is there" test "$(cat "$T/home/alice/note")" = "written with a hint"
umount_alice
check "the hint is unchanged" test "$(cat "$HINT")" = "$good"

echo "$size 1048576+4096 2097152+4096" > "$HINT"
mount_alice "a hint of other ranges"
check "  the note is there" test "$(cat "$T/home/alice/note")" = "written with a hint"
umount_alice
check "  the hint is corrected" test "$(cat "$HINT")" = "$good"

echo "12345 1048576+4096" > "$HINT"
mount_alice "a hint for another size"
check "  one read at a time again" test "$(reads_in_flight)" = 1
umount_alice
check "  the hint is corrected" test "$(cat "$HINT")" = "$good"

printf 'garbage\n' > "$HINT"
mount_alice "a hint that is not one"
umount_alice
check "  the hint is corrected" test "$(cat "$HINT")" = "$good"
check "alice's image is fsck clean" e2fsck -fn "$T/srv/alice"
done_testing
