#!/usr/bin/env bash
# 50 users (NWAVE) log in at once, then out at once: every login and
# logout succeeds, each home has its worker under the agent (subreaper),
# and nothing is left after: mounts, loop devices, workers, NBD
# connections, the agent's fds, zombies, records.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
NWAVE=${NWAVE:-50}

users=()
for i in $(seq -w 1 "$NWAVE"); do users+=("w$i:$((3000 + 10#$i))"); done
given "the $NWAVE users" add_users "${users[@]}"
for i in $(seq -w 1 "$NWAVE"); do
    hp mkhome "w$i" --size 16M
    given "the home of w$i" test "$rc" = 0
done
given "nbdkit" start_nbdkit "$T/nbd.sock" file dir="$T/srv"
pam_services
given "the agent" start_agent
BASE_MOUNTS=$(nmounts) # with the agent's stage dir
pool_full() { warm_ready 2 && spares_ready 1; }
given "its warm connections and its spare worker" wait_for pool_full
BASE_CONNS=$(nbd_conns)

check "the test's users are still known (the namespace's /etc holds)" bash -c "getent passwd w01 bob > /dev/null"
BASE_FDS=$(agent_fds)
s=$(date +%s%N)
pids=()
for i in $(seq -w 1 "$NWAVE"); do
    timeout 120 pamtester hp "w$i" acct_mgmt open_session > "$T/wave.$i" 2>&1 &
    pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
e=$(date +%s%N)
diag "$NWAVE logins at once: $(((e - s) / 1000000)) ms"
check "$NWAVE concurrent logins all succeed ($fails failed)" test "$fails" = 0
n=0; for i in $(seq -w 1 "$NWAVE"); do mounted "w$i" && n=$((n + 1)); done
check "$NWAVE homes mounted ($n)" test "$n" = "$NWAVE"
lacks "$T/agent.log" "cannot record the last user" "concurrent logins all record the last user"
check "$NWAVE workers" test "$(nworkers)" = "$NWAVE"
check "the agent is their parent (subreaper)" test "$(ps -o pid= --ppid "$AGENT" | wc -l)" -ge "$NWAVE"
pids=()
for i in $(seq -w 1 "$NWAVE"); do
    timeout 120 pamtester hp "w$i" close_session > "$T/wave.$i" 2>&1 &
    pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
check "$NWAVE logouts all succeed ($fails failed)" test "$fails" = 0
check "no mount left" test "$(nmounts)" = "$BASE_MOUNTS"
check "no loop device left" test "$(nloops)" = 0
check "no worker left" wait_for bash -c '[ "$(nworkers)" = 0 ]'
check "no NBD connection left" wait_for bash -c "[ \"\$(nbd_conns)\" = $BASE_CONNS ]"
fds_back() { pool_full && [ "$(agent_fds)" = "$BASE_FDS" ]; }
check "no agent fd left (the pool full again)" wait_for fds_back
check "no zombie left under the agent" wait_for bash -c "! ps -o stat= --ppid $AGENT | grep -q Z"
check "no record left" test -z "$(ls "$R/homes")"
finish
