#!/usr/bin/env bash
# The agent starts (pid file, socket mode 0600, warm connections to the
# server and a spare worker on one of them before any login); a login
# through PAM: account prepares the home on the stage dir (greeter lines,
# the spare worker used and replaced), open_session mounts it on the home
# dir.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "alice's home" homes alice
check "nbdkit serves the image dir" start_nbdkit "$T/nbd.sock" file dir="$T/srv"
pam_services
check "the service uses the shipped snippets" grep -q "^session requisite pam_exec.so stdout quiet $HOMEPORT -c $CONF pam" "$T/pam.d/hp"
check "agent starts" start_agent
check "pid file names it" test "$(cat "$R/agent.pid")" = "$AGENT"
check "socket is mode 0600" test "$(stat -c %a "$SOCK")" = 600
# the listening socket, 2 warm connections, the spare's
check "2 warm connections and a spare worker's wait on the server before any login" wait_for bash -c '[ "$(nbd_conns)" = 4 ]'
check "the spare worker is ready" wait_for spares_ready 1
check "its FUSE mount waits under the run dir" grep -q " $R/spare/$(spare_pids) " /proc/self/mountinfo

pt alice acct_mgmt
expect_rc 0 "account alice"
contains "$T/out" "^Checking user\.\.\.$" "greeter: checking user"
contains "$T/out" "^Requesting home of alice from unix:$T/nbd.sock\.\.\.$" "greeter: requesting home"
contains "$T/out" "^Checking the home of alice\.\.\.$" "greeter: checking the home"
contains "$T/out" "^Home of alice is ready$" "greeter: ready"
# the job sends its progress to the client itself, the agent the result
check "greeter lines in order, the result last" bash -c "grep -E '^(Checking|Requesting|Home of)' '$T/out' | cut -c1-12 | tr '\n' '|' | grep -qx 'Checking use|Requesting h|Checking the|Home of alic|'"
check "prepared, not yet on the home dir" bash -c "! grep -q ' $T/home/alice ' /proc/self/mountinfo"
check "prepared on the stage dir" grep -q " $R/stage/alice " /proc/self/mountinfo
contains "$T/agent.log" "account alice: on spare worker [0-9]+" "it used the agent's spare worker"
check "its FUSE mount moved onto the home's FUSE dir" grep -q " $R/fuse/alice " /proc/self/mountinfo
check "its worker is the spare that was taken" bash -c "grep -q \"^worker=\$(sed -n 's/.*account alice: on spare worker \([0-9]*\).*/\1/p' '$T/agent.log')\$\" '$R/homes/alice'"
# the listening socket, 2 idle warm ones, a new spare's, the home's 4
# ([nbd] connections: the spare's warm one and 3 opened after the mount)
check "which is replaced in the background (2 idle + a spare + the home's 4)" wait_for bash -c '[ "$(nbd_conns)" = 8 ]'
check "a new spare is ready" wait_for spares_ready 1
hp status
contains "$T/out" "^alice /dev/loop[0-9]+ on $R/stage/alice \(prepared\): .*sessions 0" "status: prepared"
s=$(date +%s%N)
pt alice open_session
e=$(date +%s%N)
expect_rc 0 "open_session alice"
diag "open_session through pamtester: $(((e - s) / 1000000)) ms"
contains "$T/out" "^Home of alice mounted on $T/home/alice$" "greeter: mounted"
check "home mounted on the home dir" mounted alice
check "the stage mount is gone" bash -c "! grep -q ' $R/stage/alice ' /proc/self/mountinfo"
check "the home belongs to alice" test "$(stat -c %U "$T/home/alice")" = alice
check "skeleton there" test "$(cat "$T/home/alice/README")" = hi
hp status --json
check "status: mounted, 1 session" test "$(json_get "$T/out" '[(h["user"], h["phase"], h["sessions"]) for h in j["homes"]] == [("alice", "mounted", 1)]')" = True
finish
