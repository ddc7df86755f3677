#!/usr/bin/env bash
# Leftover files of the agent and of the sync popup are removed at boot;
# nothing is touched while an agent is running.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
mkdir -p "$R"

touch "$T/var/tmp/horizon-pam_session_alice.flag" "$T/var/tmp/horizon-pam_session_bob.flag"
mkdir "$T/var/tmp/horizon-pam_session_dir.flag" # a directory is never removed
touch "$T/var/tmp/unrelated.flag"
# a pid file naming a dead process, and a socket nobody listens on
sleep 0 & dead=$!; wait $dead
echo "$dead" > "$R/agent.pid"
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$R/agent.sock"
touch "$T/home/profiletemp/x"

hp boot
expect_rc 0 "leftovers cleaned"
check "flag files removed" test ! -e "$T/var/tmp/horizon-pam_session_alice.flag" -a ! -e "$T/var/tmp/horizon-pam_session_bob.flag"
check "directory matching the pattern kept" test -d "$T/var/tmp/horizon-pam_session_dir.flag"
check "unrelated file kept" test -e "$T/var/tmp/unrelated.flag"
check "stale pid file removed" test ! -e "$R/agent.pid"
check "stale socket removed" test ! -e "$R/agent.sock"
contains "$T/out" "^leftover sync flag $T/var/tmp/horizon-pam_session_alice.flag: removed" "flag removal reported"
contains "$T/out" "^leftover pid file $R/agent.pid: removed" "pid file removal reported"
contains "$T/out" "^leftover socket $R/agent.sock: removed" "socket removal reported"
contains "$T/out" "horizon-pam_session_dir.flag: kept" "kept directory reported"

# --- a running agent: a live process whose name is "homeport" ------------
cp "$(command -v sleep)" "$T/homeport"
"$T/homeport" 30 &
agent=$!
track "$agent"
echo "$agent" > "$R/agent.pid"
touch "$T/var/tmp/horizon-pam_session_carol.flag" "$T/home/profiletemp/in-use"
hp boot
expect_rc 3 "agent running: cleanup refused"
contains "$T/out" "not cleaned: an agent is running \(pid $agent\)" "report names the agent's pid"
check "staging dir untouched" test -e "$T/home/profiletemp/in-use"
check "flag file untouched" test -e "$T/var/tmp/horizon-pam_session_carol.flag"
check "pid file untouched" test -e "$R/agent.pid"

# a pid file naming a live process that is not homeport (pid reuse)
echo $$ > "$R/agent.pid"
hp boot
expect_rc 0 "pid of another program: not an agent, cleaned"
check "that pid file removed" test ! -e "$R/agent.pid"

done_testing
