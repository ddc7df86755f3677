#!/usr/bin/env bash
# The last logout kills what the user left running (TERM, then KILL after
# kill_grace), unmounts the home, frees its loop device and record; what
# was written is in the image.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "alice's home served" pam_world alice
given "the agent" start_agent
given "alice logged in" login alice
echo "alice was here" > "$T/home/alice/note"

setpriv --reuid=2001 --regid=2001 --clear-groups bash -c "cd '$T/home/alice' && exec sleep 1000" &
SLEEPER=$!
setpriv --reuid=2001 --regid=2001 --clear-groups bash -c "trap '' TERM; cd '$T/home/alice' && sleep 1000" &
IGNORER=$!
wait_for bash -c "pgrep -u 2001 -x sleep | wc -l | grep -qx 2"
s=$(date +%s%N)
pt alice close_session
e=$(date +%s%N)
expect_rc 0 "last logout of alice"
contains "$T/out" "^Home of alice unmounted$" "greeter: unmounted"
check "the sleeper is gone" bash -c "! kill -0 $SLEEPER 2>/dev/null || [ \"\$(ps -o stat= -p $SLEEPER)\" = Z ]"
check "the TERM-ignoring process is gone too" bash -c "! ps -u 2001 -o stat= | grep -qv '^Z'"
check "...after the grace (>= 1000 ms: $(((e - s) / 1000000)) ms)" test $(((e - s) / 1000000)) -ge 1000
contains "$T/agent.log" "alice: stopped 3 processes of uid 2001, [0-9]+ of them with SIGKILL" "agent log: what it stopped"
wait "$SLEEPER" "$IGNORER" 2> /dev/null
check "home unmounted" bash -c "! grep -q ' $T/home/alice ' /proc/self/mountinfo"
check "no loop device left" test "$(nloops)" = 0
check "record gone" test ! -e "$R/homes/alice"
check "written data is in the image" bash -c "debugfs -R 'cat /note' '$T/srv/alice' 2>/dev/null | grep -qx 'alice was here'"
finish
