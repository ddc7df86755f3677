#!/usr/bin/env bash
# How many NBD connections a home over FUSE opens under TLS: with
# [nbd] connections = 3, 3 when the server advertises multi-conn (nbdkit's
# file plugin), and 1 when it does not (nbdkit's multi-conn filter with
# multi-conn-mode=disable), as counted on the server's side of the sockets.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lib-tls.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
CLEANUP_HOOK=stop_homes

requires_tls ss
multiconn_home alice:2001 3
export PORT
export -f established

check "nbdkit with multi-conn on 127.0.0.1:$PORT" start_nbdkit_x509 "$PORT" file dir="$T/srv"
hp mount alice
expect_rc 0 "mount alice"
check "nbdkit sees 3 connections" wait_for_secs 30 bash -c '[ "$(established "$PORT")" = 3 ]'
check "  and the stats file says 3" wait_for_secs 30 grep -qx "connections=3" "$R/homes/alice:stats"
head -c 4M /dev/urandom > "$T/data"
check "I/O on them" dd if="$T/data" of="$T/home/alice/data" bs=1M oflag=direct status=none
hp umount alice
expect_rc 0 "umount alice"
check "the connections are closed" wait_for bash -c '[ "$(established "$PORT")" = 0 ]'
diag "$(cat "$T/nbdkit.log")"
kill "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null

check "nbdkit without multi-conn" start_nbdkit_x509 "$PORT" \
    --filter=multi-conn file dir="$T/srv" multi-conn-mode=disable
hp mount alice
expect_rc 0 "mount alice"
check "the stats file says 1" grep -qx "connections=1" "$R/homes/alice:stats"
head -c 4M /dev/urandom > "$T/data"
check "a write" dd if="$T/data" of="$T/home/alice/data" bs=1M oflag=direct status=none
check "nbdkit sees 1 connection" test "$(established "$PORT")" = 1
hp umount alice
expect_rc 0 "umount alice"
debugfs -R "dump /data $T/back" "$T/srv/alice" > /dev/null 2>&1
check "the data is in the image" cmp -s "$T/data" "$T/back"
done_testing
