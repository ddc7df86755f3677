#!/usr/bin/env bash
# Warm connections: the server goes away (the agent notices the closed
# connections) and comes back (the agent opens them again, a login uses
# one); with warm_connections = 0 none is held and a login connects
# afresh.  (No spare worker: a login would take it before a warm one.)
# shellcheck source=lib.sh
SPARES=0
source "$(dirname "$0")/lib.sh"

given "bob's home served" pam_world bob
given "the agent" start_agent
given "its warm connections" wait_for bash -c '[ "$(nbd_conns)" = 3 ]'

kill -9 "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null
check "the agent notices the closed connections" wait_for grep -q "warm connection to unix:$T/nbd.sock closed by the server" "$T/agent.log"
check "nbdkit back" start_nbdkit "$T/nbd.sock" file dir="$T/srv"
export NBDKIT_PID
check "and opens 2 warm connections again" wait_for_long warm_ready 2
n=$(grep -c "on a warm connection" "$T/agent.log")
pt bob acct_mgmt open_session
expect_rc 0 "bob logs in on a new warm connection"
check "it was a warm one" test "$(grep -c "on a warm connection" "$T/agent.log")" -gt "$n"
pt bob close_session
sed -i "s/^\[nbd\]/[nbd]\nwarm_connections = 0/" "$CONF"
kill -HUP "$AGENT"
check "warm_connections = 0: none held" wait_for warm_ready 0
n=$(grep -c "on a warm connection" "$T/agent.log")
pt bob acct_mgmt open_session
expect_rc 0 "bob logs in on a fresh connection"
check "not a warm one" test "$(grep -c "on a warm connection" "$T/agent.log")" = "$n"
finish
