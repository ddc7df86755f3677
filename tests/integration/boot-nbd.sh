#!/usr/bin/env bash
# The NBD check at boot, against captive nbdkit servers: export list and
# size; timeouts (delay filter, a server that never speaks) reported within
# timeout + 1 s; a closed port refused; all servers checked in parallel.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root

mkdir "$T/exports"
truncate -s 10M "$T/exports/alice"
truncate -s 20M "$T/exports/bob"
check "nbdkit file dir= on a unix socket" start_nbdkit "$T/nbd.sock" file dir="$T/exports"

# elapsed SECONDS-VAR COMMAND…: wall time of a command in ms
ms_now() { date +%s%3N; }

# --- ok, with export list and size ---
NBD_CONF="servers = unix:$T/nbd.sock
probe_export = alice" write_conf
hp boot
expect_rc 0 "unix socket server ok"
contains "$T/out" "^nbd unix:$T/nbd.sock: ok, newstyle-fixed, connect [0-9.]+ ms, handshake [0-9.]+ ms, rtt [0-9.]+ ms, 2 exports \((alice, bob|bob, alice)\), probe export 'alice' 10485760 bytes$" "summary line: protocol, times, exports, size"
hp boot --json
check "JSON: ok" test "$(json_get "$T/out" 'j["nbd"][0]["ok"]')" = True
check "JSON: exports" test "$(json_get "$T/out" 'sorted(j["nbd"][0]["exports"])')" = "['alice', 'bob']"
check "JSON: probe size" test "$(json_get "$T/out" 'j["nbd"][0]["probe_size"]')" = 10485760
check "JSON: rtt measured" test "$(json_get "$T/out" 'j["nbd"][0]["rtt_ms"] > 0')" = True

# --- replies that arrive inside the call that sends the request (a fast
# local server) must not stall the probe: 20 runs, all ok and quick ---
CONNECT_TIMEOUT=2s NBD_CONF="servers = unix:$T/nbd.sock
probe_export = alice" write_conf
good=0; t0=$(ms_now)
for i in $(seq 20); do hp boot; [ "$rc" = 0 ] && good=$((good + 1)); done
t1=$(ms_now)
check "20 of 20 quick probes ok ($good)" test "$good" = 20
check "20 probes well under one timeout each ($((t1 - t0)) ms < 10000)" test $((t1 - t0)) -lt 10000

# --- the probe export does not exist ---
NBD_CONF="servers = unix:$T/nbd.sock
probe_export = zed" write_conf
hp boot
expect_rc 4 "missing probe export: NBD check failed"
contains "$T/out" "PROBE FAILED.*probe export 'zed': no such export" "missing export reported"

# --- TCP on loopback, a server that refuses to list exports ---
port=$(free_port)
check "nbdkit on 127.0.0.1:$port (list refused)" start_nbdkit_tcp "$port" --filter=exportname memory 1M exportname-list=error
NBD_CONF="servers = 127.0.0.1:$port" write_conf
hp boot
expect_rc 0 "TCP server ok without a probe export"
contains "$T/out" "^nbd 127.0.0.1:$port: ok, .*export list refused" "list refusal reported, not fatal"

# --- a closed port ---
closed=$(free_port)
NBD_CONF="servers = 127.0.0.1:$closed" write_conf
hp boot
expect_rc 4 "closed port: NBD check failed"
contains "$T/out" "^nbd 127.0.0.1:$closed: FAILED during connect: Connection refused" "refusal reported"
hp boot --json
check "JSON: ECONNREFUSED" test "$(json_get "$T/out" 'j["nbd"][0]["errno"]')" = ECONNREFUSED

# --- a missing unix socket ---
NBD_CONF="servers = unix:$T/no-such.sock" write_conf
hp boot
expect_rc 4 "missing socket: NBD check failed"
contains "$T/out" "FAILED during connect: No such file or directory" "missing socket reported"

# --- delay filter longer than the timeout: timed out within timeout + 1 s ---
check "nbdkit with a 10 s open delay" start_nbdkit "$T/slow.sock" --filter=delay file dir="$T/exports" delay-open=10
CONNECT_TIMEOUT=1s NBD_CONF="servers = unix:$T/slow.sock
probe_export = alice" write_conf
t0=$(ms_now); hp boot; t1=$(ms_now)
expect_rc 4 "slow server: NBD check failed"
contains "$T/out" "^nbd unix:$T/slow.sock: FAILED during info: timed out after 1000 ms during info" "timeout reported with the phase"
check "returned within timeout + 1 s ($((t1 - t0)) ms)" test $((t1 - t0)) -lt 2000

# --- a TCP listener that accepts and never speaks ---
silent=$(free_port)
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
conns = []
end = time.time() + 60
while time.time() < end:
    s.settimeout(1)
    try: conns.append(s.accept()[0])
    except socket.timeout: pass
' "$silent" &
track $!
wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$silent" 2>/dev/null
CONNECT_TIMEOUT=1500ms NBD_CONF="servers = 127.0.0.1:$silent unix:$T/slow.sock unix:$T/nbd.sock 127.0.0.1:$closed
probe_export = alice" write_conf
t0=$(ms_now); hp boot; t1=$(ms_now)
expect_rc 4 "four servers, two slow, one closed: NBD check failed"
contains "$T/out" "^nbd 127.0.0.1:$silent: FAILED during handshake: timed out after 1500 ms" "silent server: handshake timeout"
contains "$T/out" "^nbd unix:$T/slow.sock: FAILED during info: timed out" "slow server: timeout"
contains "$T/out" "^nbd unix:$T/nbd.sock: ok" "good server still ok"
contains "$T/out" "^nbd 127.0.0.1:$closed: FAILED during connect" "closed port refused"
check "checked in parallel: one timeout in all ($((t1 - t0)) ms < 2500)" test $((t1 - t0)) -lt 2500

# --- the staging dir is still cleaned when servers fail ---
touch "$T/home/profiletemp/x"
NBD_CONF="servers = 127.0.0.1:$closed" write_conf
hp boot
check "staging cleaned even when NBD fails" test ! -e "$T/home/profiletemp/x"

done_testing
