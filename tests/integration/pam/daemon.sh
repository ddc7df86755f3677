#!/usr/bin/env bash
# Daemon mode: `homeport agent` daemonizes once ready, answers on its
# socket, re-adopts a home a killed agent left mounted, refuses a second
# agent, and stops on SIGTERM.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "carol's home served" pam_world carol
given "an agent in the foreground" start_agent
given "carol logged in" login carol
kill -9 "$AGENT"
wait "$AGENT" 2> /dev/null

hp agent
expect_rc 0 "agent daemonizes once ready"
AGENT=$(cat "$R/agent.pid")
check "the daemon runs" kill -0 "$AGENT"
raw 'homeport 1 ping\n'
contains "$T/out" "^ok homeport .* agent pid $AGENT," "the daemon answers on the socket"
hp agent
expect_rc 1 "a second agent refuses"
contains "$T/err" "another homeport agent is running \(pid $AGENT\)" "naming the first"
pt carol close_session
expect_rc 0 "carol logs out from the daemon's care"
check "carol's home unmounted" bash -c "! grep -q ' $T/home/carol ' /proc/self/mountinfo"
kill -TERM "$AGENT"
check "daemon stops on SIGTERM" wait_for bash -c "! kill -0 $AGENT 2>/dev/null"
finish
