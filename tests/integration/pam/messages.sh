#!/usr/bin/env bash
# What homeport pam tells the greeter: JSON lines (pam_messages = json),
# the reason of a refusal (unknown user, a home owned by someone else) as
# its last line; usage errors (no PAM_USER, an unknown stage, not under
# pam_exec); auth has nothing to do.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "bob's and dave's homes served" pam_world bob dave
MESSAGES=json conf
given "the agent" start_agent

pt bob acct_mgmt
expect_rc 0 "account bob (json)"
check "every line is a JSON message" bash -c "grep -v '^pamtester:' '$T/out' | python3 -c '
import json,sys
ls=[json.loads(l) for l in sys.stdin]
assert ls and all(set(m)=={\"message\",\"isError\"} and m[\"isError\"] is False for m in ls), ls
print(ls[-1][\"message\"])' | grep -qx 'Home of bob is ready'"
pt nosuchuser acct_mgmt
expect_rc 1 "unknown user refused"
contains "$T/out" '"isError": true' "json: isError on failure"
contains "$T/out" "user 'nosuchuser' is unknown" "json: the reason"
MESSAGES=text conf
rc=0; env PAM_TYPE=open_session PAM_USER=dave "$HOMEPORT" -c "$CONF" pam > "$T/out" 2>&1 || rc=$?
expect_rc 1 "home owned by someone else refused"
check "the reason is the last line" bash -c "tail -1 '$T/out' | grep -q 'the home of dave belongs to uid 4242, not 2004'"
check "nothing of dave's is left" test ! -e "$R/homes/dave"
rc=0; env PAM_TYPE=open_session "$HOMEPORT" -c "$CONF" pam > "$T/out" 2>&1 || rc=$?
expect_rc 1 "no PAM_USER"
rc=0; env PAM_TYPE=fly PAM_USER=carol "$HOMEPORT" -c "$CONF" pam > "$T/out" 2>&1 || rc=$?
expect_rc 2 "unknown stage"
contains "$T/out" "unknown PAM stage 'fly'" "says so"
rc=0; env -u PAM_TYPE "$HOMEPORT" -c "$CONF" pam > "$T/out" 2> "$T/err" || rc=$?
expect_rc 2 "not under pam_exec"
contains "$T/err" "PAM_TYPE is not set" "says so"
rc=0; env PAM_TYPE=auth PAM_USER=carol "$HOMEPORT" -c "$CONF" pam > "$T/out" 2>&1 || rc=$?
expect_rc 0 "auth has nothing to do"
finish
