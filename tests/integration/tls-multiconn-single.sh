#!/usr/bin/env bash
# A home on 4 NBD connections under TLS whose server is restarted without
# multi-conn (nbdkit's multi-conn filter, multi-conn-mode=disable): the
# connections would no longer see each other's writes, so the home goes
# on with one connection; a write across the restart completes, the data
# is intact.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lib-tls.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
CLEANUP_HOOK=stop_homes

requires_tls ss
multiconn_home carol:2003 4
check "nbdkit with multi-conn" start_nbdkit_x509 "$PORT" file dir="$T/srv"
hp mount carol
expect_rc 0 "mount carol"
check "on 4 connections" wait_for_secs 30 grep -qx "connections=4" "$R/homes/carol:stats"
head -c 8M /dev/urandom > "$T/before"
check "a write on 4 connections" dd if="$T/before" of="$T/home/carol/before" bs=1M oflag=direct conv=fsync status=none
kill -9 "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null
check "nbdkit restarted without multi-conn" start_nbdkit_x509 "$PORT" \
    --filter=multi-conn file dir="$T/srv" multi-conn-mode=disable
head -c 8M /dev/urandom > "$T/after"
check "a write across the restart" dd if="$T/after" of="$T/home/carol/after" bs=1M oflag=direct conv=fsync status=none
check "the stats file says 1 connection" wait_for_secs 30 grep -qx "connections=1" "$R/homes/carol:stats"
check "nbdkit sees 1 connection" wait_for bash -c "[ \"\$(ss -Htn state established '( sport = :$PORT )' | wc -l)\" = 1 ]"
hp status
contains "$T/out" "^carol .* connected, sessions 0, reconnects [1-9]" "connected again"
hp umount carol
expect_rc 0 "umount carol"
restart_data_intact carol
done_testing
