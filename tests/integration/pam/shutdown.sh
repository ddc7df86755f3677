#!/usr/bin/env bash
# SIGTERM: no new logins while the agent shuts down; prepared homes are
# released, homes in use stay mounted; the agent exits after
# shutdown_timeout, removing its socket and pid file.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "bob's and carol's homes served" pam_world bob carol
sed -i "s/^\[agent\]/[agent]\nshutdown_timeout = 2s/" "$CONF"
given "the agent" start_agent
given "carol logged in" login carol
pt bob acct_mgmt
given "bob's home prepared" test "$rc" = 0

kill -TERM "$AGENT"
given "the agent shutting down" wait_for grep -q "shutting down" "$T/agent.log"
rc=0; env PAM_TYPE=account PAM_USER=dave "$HOMEPORT" -c "$CONF" pam > "$T/out" 2>&1 || rc=$?
expect_rc 1 "no new logins while shutting down"
contains "$T/out" "shutting down" "says so"
check "the agent exits after shutdown_timeout" wait_for bash -c "! kill -0 $AGENT 2>/dev/null"
wait "$AGENT" 2> /dev/null
check "bob's prepared home was released" test ! -e "$R/homes/bob"
check "carol's home in use stays mounted" mounted carol
contains "$T/agent.log" "the home of carol stays mounted \(1 session\)" "and the log says so"
check "socket and pid file removed" test ! -e "$SOCK" -a ! -e "$R/agent.pid"
finish
