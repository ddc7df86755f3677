#!/usr/bin/env bash
# The agent's spare worker ([nbd] spare_workers): ready before any login
# with its FUSE mount under RUN_DIR/spare; killed, it is cleaned up and
# replaced; taken by a login that then fails (no export on the server), it
# is stopped and nothing of it is left; not taken by an exempt user's
# login; dropped at a reload that sets spare_workers = 0; ended with the
# agent, by a stop or by the agent's
# death; what a dead agent's spare left is cleaned up at the next start.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "alice's home served" pam_world alice
# a dead spare's leftover: a dir with a mount on it
mkdir -p "$R/spare/99999"
given "a leftover mount under RUN_DIR/spare" mount -t tmpfs leftover "$R/spare/99999"
check "agent starts" start_agent
check "the leftover is unmounted and removed" bash -c "! grep -q ' $R/spare/99999 ' /proc/self/mountinfo && test ! -e '$R/spare/99999'"
check "RUN_DIR/spare is a private mount" bash -c "grep ' $R/spare ' /proc/self/mountinfo | grep -qv shared:"
check "a spare worker is ready" wait_for spares_ready 1
S1=$(spare_pids)
spare_mounted() { grep -q " $R/spare/$1 .* - fuse" /proc/self/mountinfo; }
export -f spare_mounted
check "its FUSE mount is on RUN_DIR/spare/PID" spare_mounted "$S1"
check "the dir holds no disk until it is taken" bash -c "test -z \"\$(ls -A '$R/spare/$S1')\""
check "it leads its own session, as a home's worker" test "$(ps -o sid= -p "$S1" | tr -d ' ')" = "$S1"
hp status
contains "$T/out" "^spare workers: pid $S1 \(waiting for a login" "status shows it"
hp status --json
check "status --json lists it" python3 -c "import json,sys; j = json.load(open('$T/out')); sys.exit(j['spare_workers'] != [$S1])"

kill -9 "$S1"
check "killed: the agent notices" wait_for grep -q "spare worker $S1 ended" "$T/agent.log"
check "and detaches its dead FUSE mount, removes its dir" bash -c "! grep -q ' $R/spare/$S1 ' /proc/self/mountinfo && test ! -e '$R/spare/$S1'"
check "another spare is ready (after the backoff)" wait_for_long bash -c "[ -n \"\$(spare_pids)\" ] && [ \"\$(spare_pids)\" != $S1 ]"
check "ping says so" wait_for spares_ready 1
S2=$(spare_pids)

pt bob acct_mgmt
expect_rc 1 "account bob: no export for him on the server"
contains "$T/agent.log" "account bob: on spare worker $S2" "the login took the spare"
contains "$T/out" "export 'bob'" "the refusal names the export"
check "the server's answer is final: no worker of the job's own tries again" bash -c "! grep -q 'bob: the spare worker failed' '$T/agent.log'"
check "the taken spare is gone" wait_for bash -c "! kill -0 $S2 2> /dev/null"
check "nothing of it is mounted" bash -c "! grep -qE ' ($R/spare/$S2|$R/fuse/bob|$R/stage/bob) ' /proc/self/mountinfo"
check "no dir of it, no record for bob" bash -c "test ! -e '$R/spare/$S2' && test ! -e '$R/homes/bob'"
check "a new spare replaces it" wait_for spares_ready 1

# an exempt user's login does not take it
S3=$(spare_pids)
pt listed acct_mgmt
expect_rc 0 "account of an exempt user"
check "the spare is not taken for it" bash -c "! grep -q 'account listed: on spare' '$T/agent.log' && [ \"\$(spare_pids)\" = $S3 ] && spare_mounted $S3"

pt alice acct_mgmt open_session
expect_rc 0 "alice logs in on a spare"
pt alice close_session
expect_rc 0 "alice logs out"
check "her worker (the spare taken) is gone" wait_for bash -c '[ "$(nworkers)" = 0 ]'
check "no FUSE mount of hers left" bash -c "! grep -q ' $R/fuse/alice ' /proc/self/mountinfo"

check "a spare is ready again" wait_for spares_ready 1
S3=$(spare_pids)
sed -i "s/^spare_workers = .*/spare_workers = 0/" "$CONF"
kill -HUP "$AGENT"
check "reload with spare_workers = 0: the spare ends" wait_for bash -c "! kill -0 $S3 2> /dev/null"
check "and none is ready" wait_for spares_ready 0
check "its mount and dir are gone" bash -c "! grep -q ' $R/spare/$S3 ' /proc/self/mountinfo && test ! -e '$R/spare/$S3'"
sed -i "s/^spare_workers = .*/spare_workers = 1/" "$CONF"
kill -HUP "$AGENT"
check "reload with spare_workers = 1: one again" wait_for spares_ready 1
S4=$(spare_pids)

kill -TERM "$AGENT"
check "the agent stops" wait_for bash -c "! kill -0 $AGENT 2> /dev/null"
check "its spare ends with it" wait_for bash -c "! kill -0 $S4 2> /dev/null"
check "leaving no mount, no dir" bash -c "! grep -q ' $R/spare/$S4 ' /proc/self/mountinfo && test ! -e '$R/spare/$S4'"

check "agent starts again" start_agent
check "with a spare" wait_for spares_ready 1
S5=$(spare_pids)
kill -9 "$AGENT"; wait "$AGENT" 2> /dev/null
check "the agent killed: its spare ends too" wait_for bash -c "! kill -0 $S5 2> /dev/null"
check "and unmounts" bash -c "! grep -q ' $R/spare/$S5 ' /proc/self/mountinfo"
finish
