#!/usr/bin/env bash
# A home on 4 NBD connections under TLS, the server killed and restarted
# in the middle of a write: each connection reconnects, the write
# completes, the data is intact in the image.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lib-tls.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
CLEANUP_HOOK=stop_homes

requires_tls
multiconn_home bob:2002 4
slow_nbdkit() { start_nbdkit_x509 "$PORT" --filter=delay file dir="$T/srv" delay-write=50ms; }
check "nbdkit with slow writes" slow_nbdkit

hp mount bob
expect_rc 0 "mount bob"
check "on 4 connections" wait_for_secs 30 grep -qx "connections=4" "$R/homes/bob:stats"
head -c 32M /dev/urandom > "$T/big"
(dd if="$T/big" of="$T/home/bob/big" bs=1M oflag=direct status=none; echo "dd=$?" > "$T/dd.rc") &
writer=$!
check "the write is under way" wait_for_secs 30 bash -c "[ \"\$(stat -c %s '$T/home/bob/big' 2> /dev/null || echo 0)\" -gt 0 ]"
kill -9 "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null
check "the write is not over when the server dies" test ! -e "$T/dd.rc"
check "nbdkit restarted" slow_nbdkit
check "the write completes after the reconnect" wait_for_secs 60 test -e "$T/dd.rc"
wait "$writer" 2> /dev/null
check "  without an error" test "$(cat "$T/dd.rc" 2> /dev/null)" = dd=0
hp status
contains "$T/out" "^bob .* reconnects [1-9]" "status counts the reconnects"
hp umount bob
expect_rc 0 "umount bob"
debugfs -R "dump /big $T/big.back" "$T/srv/bob" > /dev/null 2>&1
check "the data written across the restart is intact" cmp -s "$T/big" "$T/big.back"
check "the image is clean" e2fsck -fn "$T/srv/bob"
lacks "$T/nbdkit.log" "[Gg][Nn][Uu][Tt][Ll][Ss]" "nbdkit logged no TLS error"
done_testing
