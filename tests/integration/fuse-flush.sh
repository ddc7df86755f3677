#!/usr/bin/env bash
# What the FUSE disk sends the server as NBD flushes: a close() of the disk
# file sends none (FUSE_FLUSH comes with every close, durable or not: the
# prepare's own open/close sent one on the login's path), nor does an
# fsync with nothing written since the last flush (the loop device fsyncs
# the file when it is configured); an fsync after writes does (the
# filesystem's flush reaches the loop device, which fsyncs the disk file);
# the data written is in the image after umount.
# A captive nbdkit with its log filter counts the requests.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
requires_fuse
setup_root
R=$T/run/homeport
CLEANUP_HOOK=stop_homes

fuse_home alice
LOG=$T/nbd-requests.log
given "nbdkit with a request log" start_nbdkit "$T/nbd.sock" --filter=log file dir="$T/srv" logfile="$LOG"

flushes() { grep -c ' Flush id=' "$LOG" || true; }
more_flushes() { [ "$(flushes)" -gt "$1" ]; }
# logged_read BLOCK: read 4 KiB there (nothing has read it yet) and wait
# until the log has it: the requests before it are in the log then too.
logged_read() {
    dd if="$DISK" of=/dev/null bs=4096 skip="$1" count=1 iflag=direct 2> /dev/null
    wait_for grep -q " Read id=[0-9]* offset=0x$(printf %x $(($1 * 4096))) " "$LOG"
}
# first_at KIND: the line of the first request of that kind in the log
# (line order: a home has several connections, [nbd] connections, and the
# ids count on each alone)
first_at() { awk -v k="$1" '$4 == k { print NR; exit }' "$LOG"; }

hp mount alice
expect_rc 0 "mount alice"
DISK=$R/fuse/alice/disk
check "the FUSE disk is there" test -f "$DISK"
given "the mount's requests are logged" logged_read 12000
check "no flush before the mount's first write" test "$(first_at Flush)" -gt "$(first_at Write)"

before=$(flushes)
for i in 1 2 3; do
    exec {fd}< "$DISK"
    exec {fd}<&-
done
given "a read after the closes is logged" logged_read 12345
check "three open/close of the disk file send no NBD flush" test "$(flushes)" = "$before"

head -c 1M /dev/urandom > "$T/data"
cp "$T/data" "$T/home/alice/data"
before=$(flushes)
# syncfs on the home's filesystem (never a bare sync: other tests' mounts)
sync -f "$T/home/alice/data"
check "an fsync in the home reaches the server as an NBD flush" wait_for more_flushes "$before"
# the data's writes (64 KiB and more) before the last flush
last_at() { # KIND: the line of the last Flush, or of the last Write of 64 KiB or more
    local kind=$1 n=0 line=0 k count
    while read -r _ _ _ k _ _ count _; do
        line=$((line + 1))
        [ "$k" = "$kind" ] || continue
        count=${count#count=}
        [ "$kind" = Flush ] || [ $((count)) -ge 65536 ] && n=$line
    done < "$LOG"
    echo "$n"
}
check "  after the data's writes" test "$(last_at Flush)" -gt "$(last_at Write)"

# (the first fsync's metadata writes after its flush need a second one)
sync -f "$T/home/alice/data"
given "a read after a second fsync is logged" logged_read 12346
before=$(flushes)
sync -f "$T/home/alice/data"
given "a read after a third fsync is logged" logged_read 12347
check "an fsync with nothing written since the last flush: no NBD flush" test "$(flushes)" = "$before"

hp umount alice
expect_rc 0 "umount alice"
debugfs -R "dump /data $T/back" "$T/srv/alice" > /dev/null 2>&1
check "the data is in the image after umount" cmp -s "$T/data" "$T/back"
check "the image is fsck clean" e2fsck -fn "$T/srv/alice"
done_testing
