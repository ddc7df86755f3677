#!/usr/bin/env bash
# A home's extra NBD connection that the server refuses after the mount is
# tried again later: nbdkit with its limit filter (limit=1) lets a home on
# 3 connections open one; restarted without the limit, it sees the home
# on 3 (the first reconnected by the next write, the others opened by the
# worker's retries), and the data written before and after is intact.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lib-tls.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
CLEANUP_HOOK=stop_homes

requires_tls ss
multiconn_home dave:2004 3
check "nbdkit with one connection at most" start_nbdkit_x509 "$PORT" --filter=limit file dir="$T/srv" limit=1
hp mount dave
expect_rc 0 "mount dave"
head -c 4M /dev/urandom > "$T/before"
check "a write on the one connection" dd if="$T/before" of="$T/home/dave/before" bs=1M oflag=direct conv=fsync status=none
# the worker tries its second connection 100 ms after the mount
check "  the home is on 1 connection" grep -qx "connections=1" "$R/homes/dave:stats"
sleep 0.5
check "  nbdkit sees 1 connection" test "$(established "$PORT")" = 1
kill -9 "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null
check "nbdkit restarted without the limit" start_nbdkit_x509 "$PORT" file dir="$T/srv"
head -c 4M /dev/urandom > "$T/after"
check "a write across the restart" dd if="$T/after" of="$T/home/dave/after" bs=1M oflag=direct conv=fsync status=none
check "the stats file says 3 connections" wait_for_secs 30 grep -qx "connections=3" "$R/homes/dave:stats"
check "nbdkit sees 3 connections" wait_for bash -c "[ \"\$(ss -Htn state established '( sport = :$PORT )' | wc -l)\" = 3 ]"
hp umount dave
expect_rc 0 "umount dave"
restart_data_intact dave
done_testing
