#!/usr/bin/env bash
# Warm connections to a server that closes idle connections in the options
# phase, as qemu's NBD server does (10 s in qemu-storage-daemon 7.2): the
# agent learns the server's idle limit, says it once in the log and in
# homeport status, keeps 1 warm connection instead of 2, opens it again no
# sooner than the limit after it closed, never holds a login on a dead one,
# and goes back to 2 when the server stops closing them.  First against
# nbdkit behind a captive relay (tests/idle-close-proxy.py) that closes
# connections idle for 6 s, then against qemu-storage-daemon itself.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
stop_all() {
    [ -n "${AGENT:-}" ] && kill -CONT "$AGENT" 2> /dev/null && kill -9 "$AGENT" 2> /dev/null
    stop_homes
}
CLEANUP_HOOK=stop_all
requires pamtester python3 ss
add_users wuser:2611
mkdir -p "$T/srv"
LIMIT=6
PORT=$(free_port)
conf() { # conf PORT
    CONNECT_TIMEOUT=20s NBD_CONF="servers = 127.0.0.1:$1
warm_connections = 2
spare_workers = 0" write_conf # (the pool's connections alone are counted)
    cat >> "$CONF" <<C
[home]
mount_dir = $T/home/%u
attach = fuse
[session]
kill_grace = 1s
[server]
image_dir = $T/srv
default_size = 32M
C
}
conf "$PORT"
hp mkhome wuser
check "nbdkit behind a relay that closes connections idle for $LIMIT s" start_nbdkit "$T/nbd.sock" file dir="$T/srv"
python3 "$TOP/tests/idle-close-proxy.py" "$PORT" "$T/nbd.sock" "$LIMIT" "$T/keep" "$T/accepts.log" 2>> "$T/proxy.log" &
track $!
wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2> /dev/null
conns() { ss -Htn state established "( sport = :$1 )" | wc -l; }
export -f conns
pam_service
check "the agent starts" start_agent_fg

# --- learned, said once --------------------------------------------------------
LEARNT="NBD server 127.0.0.1:$PORT closes idle connections after about [0-9.]+ s: keeping 1 warm connection\(s\) to it instead of 2"
check "the agent learns that the server closes idle connections" wait_for_secs 60 grep -qE "$LEARNT" "$T/agent.log"
contains "$T/agent.log" "closes idle connections after about [56]\.[0-9] s" "  after about $LIMIT s"
t_learnt=$(python3 -c 'import time; print(time.monotonic())')
after() { awk -v t="$t_learnt" '$1 == "accept" && $2 > t + 1' "$T/accepts.log" | wc -l; }
export -f after; export t_learnt T
check "2 reconnects since" wait_for_secs 60 bash -c '[ "$(after)" -ge 2 ]'
check "the log says it once (not once a connection)" test "$(grep -cE "$LEARNT" "$T/agent.log")" = 1
check "  and one close at info level" test "$(grep -c "closed by the server after" "$T/agent.log")" = 1
# after the learning: never more than 1 connection at a time, and an
# accept no sooner than the limit after the one before
max=0
for _ in $(seq 30); do c=$(conns "$PORT"); [ "$c" -gt "$max" ] && max=$c; sleep 0.2; done
check "at most 1 connection held since ($max)" test "$max" -le 1
gaps=$(awk -v t="$t_learnt" '$1 == "accept" && $2 > t + 1 { if (p) printf "%.1f ", $2 - p; p = $2 }' "$T/accepts.log")
check "reconnects at least $LIMIT s apart: ${gaps:-none}" \
    awk -v l="$LIMIT" -v g="$gaps" 'BEGIN { n = split(g, a, " "); if (n < 1) exit 1; for (i = 1; i <= n; i++) if (a[i] < l) exit 1 }'

hp status
contains "$T/out" "^warm connections to 127\.0\.0\.1:$PORT: [01] ready of 1 \(2 configured: the server closes idle connections after about [56]\.[0-9] s\)" "status says it"
hp status --json
check "status --json: configured 2, kept 1, idle limit ~${LIMIT} s" test "$(json_get "$T/out" \
    '[(w["server"], w["configured"], w["kept"], 5000 <= w["idle_limit_ms"] <= 7000) for w in j["warm"]]')" = "[('127.0.0.1:$PORT', 2, 1, True)]"

# --- a login while the warm connection is dead ------------------------------------
# The agent stopped while the server closes its warm connection: the login
# comes in before the agent has seen the close.
check "a warm connection ready" wait_for_secs 30 bash -c "[ \$(conns $PORT) = 1 ]"
kill -STOP "$AGENT"
n=$(grep -c idle-close "$T/accepts.log")
wait_for_secs 20 bash -c "[ \$(grep -c idle-close '$T/accepts.log') -gt $n ]"
kill -CONT "$AGENT"
s=$(date +%s%N)
pt wuser acct_mgmt open_session
e=$(date +%s%N)
expect_rc 0 "a login right after the server closed the warm connection"
check "it did not wait on it: $(((e - s) / 1000000)) ms < 5000" test $(((e - s) / 1000000)) -lt 5000
pt wuser close_session
expect_rc 0 "and the logout"

# --- the server stops closing idle connections ----------------------------------
touch "$T/keep"
check "the agent notices, and says so" wait_for_secs 90 grep -q "NBD server 127.0.0.1:$PORT keeps idle connections open now: back to 2" "$T/agent.log"
check "2 warm connections again" wait_for_secs 20 bash -c "[ \$(conns $PORT) = 2 ]"
hp status
contains "$T/out" "^warm connections to 127\.0\.0\.1:$PORT: 2 ready of 2, [0-9]+ closed idle by the server$" "status: 2 ready of 2"
kill -TERM "$AGENT"
check "the agent stops" wait_for bash -c "! kill -0 $AGENT 2> /dev/null"
wait "$AGENT" 2> /dev/null
check "its status file is gone" test ! -e "$R/warm"
hp status
lacks "$T/out" "^warm connections" "status says nothing of warm connections without an agent"

# --- qemu-storage-daemon ------------------------------------------------------------
if ! command -v qemu-storage-daemon > /dev/null; then
    skip "qemu-storage-daemon" "qemu-storage-daemon is not installed (qemu-system-common)"
    done_testing
    exit
fi
QPORT=$(free_port)
qemu-storage-daemon --blockdev "driver=file,node-name=f,filename=$T/srv/wuser" \
    --nbd-server "addr.type=inet,addr.host=127.0.0.1,addr.port=$QPORT" \
    --export type=nbd,id=e,node-name=f,name=wuser,writable=on >> "$T/qsd.log" 2>&1 &
track $!
check "qemu-storage-daemon on 127.0.0.1:$QPORT" wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$QPORT" 2> /dev/null
conf "$QPORT"
: > "$T/agent.log"
check "the agent starts" start_agent_fg
check "it learns qemu's idle limit" wait_for_secs 90 grep -qE "NBD server 127.0.0.1:$QPORT closes idle connections after about (9|10|11)\.[0-9] s" "$T/agent.log"
hp status --json
check "status --json: kept 1" test "$(json_get "$T/out" '[(w["configured"], w["kept"]) for w in j["warm"]]')" = "[(2, 1)]"
s=$(date +%s%N)
pt wuser acct_mgmt open_session
e=$(date +%s%N)
expect_rc 0 "a login on qemu-storage-daemon"
check "  in $(((e - s) / 1000000)) ms < 5000" test $(((e - s) / 1000000)) -lt 5000
contains "$T/out" "Home of wuser mounted on $T/home/wuser" "greeter: mounted"
pt wuser close_session
expect_rc 0 "and the logout"
done_testing
