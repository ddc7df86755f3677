#!/usr/bin/env bash
# The agent asks for the user's export on a warm connection as the login
# comes in (NBD_OPT_GO sent before the job starts, its answer read by the
# home's worker): the worker serves the home on that very connection, not
# on a new one; an export the server does not have is refused at account
# with the server's word for it, and nothing is left attached.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

PORT=$(free_port)
SESSION_CONF="lease = 60s
kill_grace = 1s
pam_timeout = 60s" SERVER_CONF="skel = $T/skel" home_conf "servers = 127.0.0.1:$PORT
connections = 1
spare_workers = 0"
given "alice's home" homes alice
check "nbdkit serves the image dir on TCP" start_nbdkit_tcp "$PORT" file dir="$T/srv"
export NBDKIT_PID
pam_services
check "agent starts" start_agent
check "2 warm connections wait" wait_for warm_ready 2
# the client ports of the connections to the server, with their processes
conns() { ss -Htnp state established "( dport = :$PORT )"; }
port_of() { awk '{ n = split($3, a, ":"); print a[n] }'; }
WARM=" $(conns | port_of | tr '\n' ' ')"
diag "warm connections from ports$WARM"

pt alice acct_mgmt
expect_rc 0 "account alice"
W=$(sed -n 's/^worker=//p' "$R/homes/alice")
HOME_PORT=$(conns | grep "pid=$W," | port_of)
check "the worker has one connection to the server" test "$(echo "$HOME_PORT" | wc -w)" = 1
check "one of the warm ones (port $HOME_PORT)" bash -c "case '$WARM' in *' $HOME_PORT '*) ;; *) exit 1 ;; esac"
pt alice open_session
expect_rc 0 "open_session alice"
check "her home is mounted" mounted alice

check "the pool is full again" wait_for warm_ready 2
pt bob acct_mgmt
expect_rc 1 "account bob: no export for him on the server"
contains "$T/out" "export 'bob'" "the refusal names the export"
check "nothing recorded for bob" test ! -e "$R/homes/bob"
check "no stage mount for bob" bash -c "! grep -q ' $R/stage/bob ' /proc/self/mountinfo"
check "alice's home still the only loop device" test "$(nloops)" = 1
pt alice close_session
expect_rc 0 "alice logs out"
finish
