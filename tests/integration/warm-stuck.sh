#!/usr/bin/env bash
# A warm connection that no longer answers (its server process is stuck,
# as nbd-server's children are after its main process was killed) must
# not hold a login for the whole connect_timeout: the agent waits a short
# bound for NBD_OPT_GO on it, then connects afresh.  nbdkit A holds the
# agent's warm connections and is stopped (SIGSTOP); nbdkit B serves the
# same socket path for new connections.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
stop_all() {
    [ -n "${A_PID:-}" ] && kill -CONT "$A_PID" 2> /dev/null
    [ -n "${AGENT:-}" ] && kill -9 "$AGENT" 2> /dev/null
    stop_homes
}
CLEANUP_HOOK=stop_all
requires pamtester
add_users wuser:2602
mkdir -p "$T/srv"
CONNECT_TIMEOUT=20s SESSION_CONF="kill_grace = 1s" home_conf "servers = unix:$T/nbd.sock
warm_connections = 2
spare_workers = 0" # (the login takes a warm connection, not a spare worker's)
hp mkhome wuser
check "nbdkit A" start_nbdkit "$T/nbd.sock" file dir="$T/srv"
A_PID=$NBDKIT_PID
pam_service
check "the agent starts" start_agent_fg
check "2 warm connections to nbdkit A" wait_for bash -c "[ \$(ls -l /proc/$A_PID/fd | grep -c socket) = 3 ]"
kill -STOP "$A_PID"
check "nbdkit B on the same socket path; A stopped, holding the warm ones" start_nbdkit "$T/nbd.sock" file dir="$T/srv"
s=$(date +%s%N)
pt wuser acct_mgmt open_session
e=$(date +%s%N)
expect_rc 0 "the login goes on"
contains "$T/agent.log" "account wuser: on a warm connection" "it took a warm connection first"
check "within a short bound, not connect_timeout (20 s): $(((e - s) / 1000000)) ms < 10000" test $(((e - s) / 1000000)) -lt 10000
contains "$T/out" "Home of wuser mounted on $T/home/wuser" "greeter: mounted"
pt wuser close_session
expect_rc 0 "and the logout"
kill -CONT "$A_PID"
done_testing
