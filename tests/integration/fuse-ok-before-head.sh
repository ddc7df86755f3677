#!/usr/bin/env bash
# The FUSE worker says "ok" as soon as its FUSE loop serves the disk, and
# gives its verdict on the filesystem (worker.h) when the superblock it
# fetches ahead is in: the prepare binds its loop device meanwhile, and
# waits for the head only in its check.  nbdkit's delay filter holds every
# read for 1 s: the prepare's attach phase (worker, FUSE, loop device) is
# then well under it, and its check phase waits for the head.  Before the
# split, "ok" waited for the head and the attach took the whole second.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
requires_fuse
setup_root
CLEANUP_HOOK=stop_homes

fuse_home alice
given "nbdkit delaying every read by 1 s" start_nbdkit "$T/nbd.sock" --filter=delay \
    file dir="$T/srv" rdelay=1

hp -v mount alice
expect_rc 0 "mount alice"
line=$(grep -m1 'home of alice prepared' "$T/err")
check "the prepare logs its phases ($line)" test -n "$line"
# "... in T ms: attach A, check C, mount M"
attach=$(sed -n 's/.*: attach \([0-9]*\)\.[0-9], check .*/\1/p' <<< "$line")
check_ms=$(sed -n 's/.*, check \([0-9]*\)\.[0-9], mount .*/\1/p' <<< "$line")
check "the attach did not wait for the server's read (${attach:-?} ms < 700)" \
    test -n "$attach" -a "${attach:-9999}" -lt 700
check "the check waited for the head instead (${check_ms:-?} ms >= 300)" \
    test -n "$check_ms" -a "${check_ms:-0}" -ge 300
check "and found it clean: no e2fsck, whose reads would take seconds (${check_ms:-?} ms < 1900)" \
    test "${check_ms:-9999}" -lt 1900
hp umount alice
expect_rc 0 "umount alice"
done_testing
