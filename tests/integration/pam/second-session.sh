#!/usr/bin/env bash
# A second session of a user shares the mount of the first; closing one
# keeps the home mounted for the other.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "alice's home served" pam_world alice
given "the agent" start_agent
given "alice logged in" login alice
echo "alice was here" > "$T/home/alice/note"

pt alice acct_mgmt open_session
expect_rc 0 "second login of alice"
contains "$T/out" "2 sessions" "greeter: second session"
check "still one mount" test "$(grep -c " $T/home/alice " /proc/self/mountinfo)" = 1
pt alice close_session
expect_rc 0 "first logout"
contains "$T/out" "1 session of alice still open" "greeter: still open"
check "home stays for the other session" mounted alice
check "data still there" test "$(cat "$T/home/alice/note")" = "alice was here"
finish
