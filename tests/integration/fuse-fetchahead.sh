#!/usr/bin/env bash
# The FUSE worker fetches the reads of an ext4 mount ahead (the start of
# the device with the superblock and group descriptors, group 0's first
# inodes, the journal's superblock), in three requests while the loop
# device is being set up: the check and the mount then read nothing more
# from the server before the mount's first write.  For a filesystem of 1
# KiB blocks (64 MiB) and one of 4 KiB blocks (1 GiB).  What was fetched
# is never served after a write: a file written, the home unmounted and
# mounted again, the file read back.  nbdkit's log filter shows the requests.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
requires_fuse
requires debugfs
setup_root
R=$T/run/homeport
CLEANUP_HOOK=stop_homes

add_users alice:2001 bob:2002
mkdir -p "$T/srv"
ATTACH=fuse IMAGE_SIZE=64M home_conf "servers = unix:$T/nbd.sock"
hp mkhome alice
given "alice's home image (64 MiB)" test "$rc" = 0
hp mkhome bob --size 1G
given "bob's home image (1 GiB)" test "$rc" = 0
check "alice's filesystem has 1 KiB blocks" bash -c "dumpe2fs -h '$T/srv/alice' 2> /dev/null | grep -q '^Block size: *1024$'"
check "bob's has 4 KiB blocks" bash -c "dumpe2fs -h '$T/srv/bob' 2> /dev/null | grep -q '^Block size: *4096$'"
LOG=$T/nbd-requests.log
given "nbdkit with a request log" start_nbdkit "$T/nbd.sock" --filter=log file dir="$T/srv" logfile="$LOG"

# logged_read USER BLOCK: read 4 KiB of USER's disk there (nothing has
# read it) and wait until the log has it: what came before is logged too.
logged_read() {
    dd if="$R/fuse/$1/disk" of=/dev/null bs=4096 skip="$2" count=1 iflag=direct 2> /dev/null
    wait_for grep -q " Read id=[0-9]* offset=0x$(printf %x $(($2 * 4096))) " "$LOG"
}
# before_write USER: the reads of USER's home before its first write, on
# any of its connections (the worker opens more after the mount: [nbd]
# connections), "OFFSET+COUNT" each.
before_write() {
    awk -v e="export=$1" '$4 == "Connect" && $5 == e { mine[$3] = 1 }
        ($3 in mine) && $4 == "Write" { exit }
        ($3 in mine) && $4 == "Read" { sub("offset=", "", $6); sub("count=", "", $7); print $6 "+" $7 }' "$LOG"
}

for u in alice bob; do
    hp mount "$u"
    expect_rc 0 "mount $u"
    given "$u's requests are logged" logged_read "$u" 12345
    reads=$(before_write "$u" | tr '\n' ' ')
    check "$u: three reads before the mount's first write ($reads)" test "$(before_write "$u" | wc -l)" = 3
    check "$u:   the first is the device's first 64 KiB" test "$(before_write "$u" | head -1)" = "0x0+0x10000"
done

# Written after the mount, read back after a remount: nothing stale.
head -c 3M /dev/urandom > "$T/data"
cp "$T/data" "$T/home/alice/data"
hp umount alice
expect_rc 0 "umount alice"
hp mount alice
expect_rc 0 "mount alice again"
check "the file written before is read back whole" cmp -s "$T/data" "$T/home/alice/data"
hp umount alice
hp umount bob
expect_rc 0 "umount bob"
check "alice's image is fsck clean" e2fsck -fn "$T/srv/alice"
check "bob's image is fsck clean" e2fsck -fn "$T/srv/bob"
done_testing
