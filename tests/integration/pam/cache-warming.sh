#!/usr/bin/env bash
# The expected user: the agent remembers the last user and, at start,
# asks the server to cache the first 16 MiB of that user's export
# (NBD_CMD_CACHE); with expected_user set empty it warms nothing.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "bob's home served" pam_world bob
given "the agent" start_agent
given "bob logged in" login bob
pt bob close_session
kill -TERM "$AGENT"
given "the agent stopped" wait_for bash -c "! kill -0 $AGENT 2>/dev/null"
wait "$AGENT" 2> /dev/null

check "the last user is remembered" test "$(cat "$T/var/lib/homeport/last_user")" = bob
kill -9 "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null
check "nbdkit with a request log" start_nbdkit "$T/nbd.sock" --filter=log file dir="$T/srv" logfile="$T/nbd-requests.log"
start_agent
check "the agent warms the server for bob" wait_for grep -q "cache bob: unix:$T/nbd.sock warmed for bob: first 16777216 bytes of export 'bob' cached" "$T/agent.log"
check "the server saw NBD_CMD_CACHE for 16 MiB of bob's export" bash -c "grep -c 'Cache .*offset=0x[0-9a-f]* count=0x400000' '$T/nbd-requests.log' | grep -qx 4"
pt bob acct_mgmt open_session
expect_rc 0 "bob logs in after the warming"
pt bob close_session
kill -TERM "$AGENT"; wait "$AGENT" 2> /dev/null
sed -i "s/^\[nbd\]/[nbd]\nexpected_user = /" "$CONF"
: > "$T/nbd-requests.log"
start_agent
sleep 1
check "expected_user empty: no warming" bash -c "! grep -q Cache '$T/nbd-requests.log'"
finish
