#!/usr/bin/env bash
# The FUSE worker reads the superblock anyway (it fetches the mount's reads
# ahead) and tells the prepare whether e2fsck -p would find nothing to do
# (its verdict "clean", after its "ok"): the prepare then reads no
# superblock of its own through the loop device.  A filesystem not marked
# clean is read by the prepare and checked as before (e2fsck -p runs).  strace on the prepare's process (the
# worker it forks is not traced) shows its 1 KiB read at offset 1024.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
requires_fuse
requires debugfs strace
setup_root
R=$T/run/homeport
CLEANUP_HOOK=stop_homes

fuse_home alice
given "nbdkit" start_nbdkit "$T/nbd.sock" file dir="$T/srv"

# mount_traced FILE: homeport mount alice, its own syscalls in FILE.  (The
# sanitizers' leak check cannot run under ptrace, and would fork.)
mount_traced() {
    rc=0
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 timeout 60 strace -o "$1" \
        -e trace=pread64,clone,clone3,fork,vfork \
        "$HOMEPORT" -c "$CONF" -v mount alice > "$T/out" 2> "$T/err" || rc=$?
}
sb_reads() { grep -c 'pread64(.*, 1024, 1024) = 1024' "$1" || true; }
forks() { grep -cE '^(clone|clone3|fork|vfork)\(' "$1" || true; }

mount_traced "$T/clean.strace"
expect_rc 0 "mount alice (clean filesystem)"
check "the prepare read no superblock itself ($(sb_reads "$T/clean.strace") reads)" test "$(sb_reads "$T/clean.strace")" = 0
check "one process started: the worker, no e2fsck ($(forks "$T/clean.strace"))" test "$(forks "$T/clean.strace")" = 1
hp umount alice
expect_rc 0 "umount alice"

# Not marked clean (as after a crash without a journal to replay).
debugfs -w -R "ssv state 0" "$T/srv/alice" > /dev/null 2>&1
check "the image now says not clean" bash -c "dumpe2fs -h '$T/srv/alice' 2> /dev/null | grep -q '^Filesystem state: *not clean$'"
mount_traced "$T/dirty.strace"
expect_rc 0 "mount alice (not clean: checked)"
check "the prepare read the superblock itself" test "$(sb_reads "$T/dirty.strace")" = 1
check "two processes started: the worker and e2fsck -p ($(forks "$T/dirty.strace"))" test "$(forks "$T/dirty.strace")" = 2
hp umount alice
expect_rc 0 "umount alice"
check "the image is clean again" bash -c "dumpe2fs -h '$T/srv/alice' 2> /dev/null | grep -q '^Filesystem state: *clean$'"
done_testing
