#!/usr/bin/env bash
# Slow work for one user blocks nobody else: carol's logout waits out a
# 3 s kill_grace while bob logs in; carol's own account request, sent
# during her logout, queues and runs after it.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "bob's and carol's homes served" pam_world bob carol
GRACE=3s conf
given "the agent" start_agent
given "carol logged in" login carol

setpriv --reuid=2003 --regid=2003 --clear-groups bash -c "trap '' TERM; exec sleep 1000" &
IGNORER=$!
wait_for pgrep -u 2003 -x sleep
s=$(date +%s%N)
timeout 30 pamtester hp carol close_session > "$T/close.out" 2>&1 &
CLOSER=$!
sleep 0.3
rc=0; env PAM_TYPE=account PAM_USER=carol "$HOMEPORT" -c "$CONF" pam > "$T/carol.out" 2>&1 &
QUEUED=$!
sleep 0.2
b=$(date +%s%N)
pt bob acct_mgmt open_session
e=$(date +%s%N)
expect_rc 0 "bob logs in while carol's logout waits out its grace"
check "bob was not held up ($(((e - b) / 1000000)) ms < 2000)" test $(((e - b) / 1000000)) -lt 2000
wait "$CLOSER"; rc=$?
c=$(date +%s%N)
expect_rc 0 "carol's slow logout finishes"
check "after the 3 s grace ($(((c - s) / 1000000)) ms)" test $(((c - s) / 1000000)) -ge 3000
wait "$QUEUED"; rc=$?
expect_rc 0 "carol's account, sent during her logout, ran after it"
contains "$T/carol.out" "^Requesting home of carol" "on a home prepared afresh"
check "in that order in the log" bash -c "grep -E 'close_session carol: Home of carol unmounted|account carol: Home of carol is ready' '$T/agent.log' | tail -2 | head -1 | grep -q close_session"
wait "$IGNORER" 2> /dev/null
finish
