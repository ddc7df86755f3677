#!/usr/bin/env bash
# A home kept busy by someone else at logout: the failure names the
# holder, the home stays mounted with its unmount pending, also across an
# agent restart, and is unmounted and released once the holder is gone.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "bob's home served" pam_world bob
given "the agent" start_agent
given "bob logged in" login bob

(cd "$T/home/bob" && exec sleep 1000) &
HOLDER=$!
pt bob close_session
expect_rc 1 "logout of a home held by a root process fails"
contains "$T/out" "the home of bob on $T/home/bob is busy: $HOLDER \(sleep, cwd\); it stays mounted" "naming the holder"
check "bob's home stays mounted" mounted bob
kill -9 "$AGENT"; wait "$AGENT" 2> /dev/null
check "agent restarts" start_agent
contains "$T/agent.log" "re-adopted the home of bob: mounted on $T/home/bob, 0 sessions, unmount pending" "re-adopted with its unmount pending"
kill "$HOLDER"; wait "$HOLDER" 2> /dev/null
check "the retry unmounts it once the holder is gone" wait_for_long bash -c "! grep -q ' $T/home/bob ' /proc/self/mountinfo"
check "and releases it" wait_for test ! -e "$R/homes/bob"
finish
