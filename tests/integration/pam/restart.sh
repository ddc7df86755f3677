#!/usr/bin/env bash
# The agent killed (-9) while a home is mounted: the home stays mounted and
# served, logins fail clearly; a new agent re-adopts the home.  A second
# agent refuses to start; agent --replace takes over (how the system's
# agent takes over from the initramfs's) keeping mounted and prepared
# homes.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "alice's and carol's homes served" pam_world alice carol
given "the agent" start_agent

pt alice acct_mgmt open_session
expect_rc 0 "alice logs in"
echo "before the restart" > "$T/home/alice/restart"
kill -9 "$AGENT"; wait "$AGENT" 2> /dev/null
check "home still mounted without the agent" mounted alice
check "and still served (the worker lives)" test "$(cat "$T/home/alice/restart")" = "before the restart"
rc=0; env PAM_TYPE=account PAM_USER=bob "$HOMEPORT" -c "$CONF" pam > "$T/out" 2>&1 || rc=$?
expect_rc 1 "agent down: a clear failure"
contains "$T/out" "the homeport agent is not running" "says so"
check "agent restarts" start_agent
contains "$T/agent.log" "re-adopted the home of alice: mounted on $T/home/alice, 1 session$" "re-adopted"
hp status
contains "$T/out" "^alice .*\(mounted\).*sessions 1" "status after restart"
# a hand-over (how the system's agent takes over from the initramfs's)
pt carol acct_mgmt
expect_rc 0 "carol's home prepared before the hand-over"
OLD=$AGENT
hp agent
expect_rc 1 "a second agent refuses to start"
contains "$T/err" "another homeport agent is running \(pid $OLD\)" "naming the running one"
hp -v agent --replace
expect_rc 0 "agent --replace takes over (in the background)"
contains "$T/err" "replacing the running agent \(pid $OLD\)" "it says whom it replaces"
check "the old agent is gone" wait_for bash -c "! kill -0 $OLD 2>/dev/null"
contains "$T/agent.log" "handing over to a new agent: exiting now" "the old one said why it left"
AGENT=$(cat "$R/agent.pid")
track "$AGENT"
check "the new agent wrote its pid" test "$AGENT" != "$OLD"
check "alice's home stayed mounted" mounted alice
check "carol's stayed prepared" grep -q " $R/stage/carol " /proc/self/mountinfo
pt carol open_session close_session
expect_rc 0 "carol's session on the new agent (the prepared home re-adopted)"
pt alice close_session
expect_rc 0 "alice logs out after the restart"
check "and her home is unmounted" bash -c "! grep -q ' $T/home/alice ' /proc/self/mountinfo"
check "data written before the restart is in the image" bash -c "debugfs -R 'cat /restart' '$T/srv/alice' 2>/dev/null | grep -qx 'before the restart'"
finish
