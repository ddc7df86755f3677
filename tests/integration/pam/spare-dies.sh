#!/usr/bin/env bash
# A spare worker taken by a login that ends before it answers: the login
# does not fail on it.  Its job starts a worker of its own, which serves
# the home, and the dead spare's FUSE mount and dir are cleaned up.
# nbdkit is stopped (SIGSTOP) while the spare asks for the export, so that
# the spare can be killed before its answer; it is let go on right after.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "alice's home served" pam_world alice
check "agent starts" start_agent
check "a spare worker is ready" wait_for spares_ready 1
S=$(spare_pids)

kill -STOP "$NBDKIT_PID"
(
    pt alice acct_mgmt
    echo "$rc" > "$T/login.rc"
) &
LOGIN=$!
check "the login takes the spare" wait_for grep -q "account alice: on spare worker $S" "$T/agent.log"
kill -9 "$S"
kill -CONT "$NBDKIT_PID"
wait "$LOGIN"
rc=$(cat "$T/login.rc")
expect_rc 0 "account alice, the spare killed before its answer"
contains "$T/agent.log" "alice: the spare worker failed" "the job says so and starts a worker of its own"
W=$(sed -n 's/^worker=//p' "$R/homes/alice")
check "alice's home has a live worker (${W:-none}), not the spare ($S)" \
    bash -c "[ -n '$W' ] && [ '$W' != '$S' ] && kill -0 '$W'"
check "the dead spare's FUSE mount and dir are gone" \
    bash -c "! grep -q ' $R/spare/$S ' /proc/self/mountinfo && test ! -e '$R/spare/$S'"

pt alice open_session
expect_rc 0 "open_session alice"
check "her home is mounted" bash -c "grep ' $T/home/alice ' /proc/self/mountinfo | grep -q ' - ext4 /dev/loop'"
pt alice close_session
expect_rc 0 "close_session alice"
check "her worker is gone" wait_for bash -c '[ "$(nworkers)" = 0 ]'
check "a spare is ready again" wait_for_long spares_ready 1
done_testing
