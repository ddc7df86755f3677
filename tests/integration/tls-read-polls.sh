#!/usr/bin/env bash
# A FUSE home read over TLS waits in poll(2) only when the socket is empty:
# libnbd read one TLS record (16 KiB) a step and polled between records,
# 64 polls a MiB, even with the next records already in (deps/patches,
# libnbd-3).  Counted with strace on the worker while dd reads 16 MiB with
# O_DIRECT through the loop device; the data read back must be what was
# written.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lib-tls.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
CLEANUP_HOOK=stop_homes

requires_tls strace
own_libnbd || skip_all "the polls are those of homeport's own libnbd (static build)"
multiconn_home alice:2001 1

check "nbdkit with TLS on 127.0.0.1:$PORT" start_nbdkit_x509 "$PORT" file dir="$T/srv"
hp mount alice
expect_rc 0 "mount alice"
head -c 16M /dev/urandom > "$T/data"
check "16 MiB written" dd if="$T/data" of="$T/home/alice/data" bs=1M oflag=direct status=none
WORKER=$(sed -n 's/^worker=//p' "$R/homes/alice")
check "the worker's pid" test -n "$WORKER"
strace -f -c -e trace=poll,ppoll,recvfrom -o "$T/strace" -p "$WORKER" 2> "$T/strace.err" &
STRACE=$!
track "$STRACE"
check "strace attached" wait_for grep -q "attached" "$T/strace.err"
check "16 MiB read back with O_DIRECT" dd if="$T/home/alice/data" of="$T/back" bs=1M iflag=direct status=none
kill -INT "$STRACE"
wait "$STRACE" 2> /dev/null
check "  the data read is the data written" cmp -s "$T/data" "$T/back"
count() { awk -v s="$1" '$NF == s { print $4 }' "$T/strace"; }
polls=$(count poll) recvs=$(count recvfrom)
diag "$(cat "$T/strace")"
check "the records were received ($recvs recvfrom for 16 MiB)" test "${recvs:-0}" -ge 1024
# One poll a record would be 1024; one a FUSE request, as in clear, is
# at most 16 (1 MiB requests) plus the stats thread's and FUSE's own.
check "at most 128 polls for 1024 records (${polls:-0})" test "${polls:-0}" -le 128
hp umount alice
expect_rc 0 "umount alice"
done_testing
