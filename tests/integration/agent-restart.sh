#!/usr/bin/env bash
# An agent killed with SIGKILL and started again at once, the way an init
# system or a script restarts a crashed daemon: the new agent must start
# every time.  The dying agent holds its lock until its exit is through;
# the new one waits for a lock whose holder is on its way out, and still
# refuses at once when a live agent holds it.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
N=${RESTARTS:-200}

stop_agent() { [ -f "$R/agent.pid" ] && kill -9 "$(cat "$R/agent.pid")" 2> /dev/null; }
CLEANUP_HOOK=stop_agent

sed -i 's/^\[nbd\]/[nbd]\nwarm_connections = 0/' "$CONF"
hp agent
expect_rc 0 "the agent starts in the background"
fails=0
for i in $(seq "$N"); do
    old=$(cat "$R/agent.pid")
    kill -9 "$old"
    # no wait: the old agent is not our child, and its exit may not be
    # through yet when the new one asks for the lock
    if ! timeout 20 "$HOMEPORT" -c "$CONF" agent 2>> "$T/err"; then
        fails=$((fails + 1))
        wait_for bash -c "! kill -0 $old 2> /dev/null"
        timeout 20 "$HOMEPORT" -c "$CONF" agent 2>> "$T/err"
    fi
done
check "$N restarts right after kill -9 all start ($fails failed)" test "$fails" = 0
lacks "$T/err" "another homeport agent" "none was refused as a running agent"

AGENT=$(cat "$R/agent.pid")
s=$(date +%s%N)
hp agent
e=$(date +%s%N)
expect_rc 1 "a live agent: the second start refuses"
contains "$T/err" "another homeport agent is running \(pid $AGENT\)" "naming it"
check "at once, without the wait for a dying one ($(((e - s) / 1000000)) ms)" test $(((e - s) / 1000000)) -lt 1000
done_testing
