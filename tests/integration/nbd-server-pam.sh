#!/usr/bin/env bash
# Logins and a reconnect with Debian's nbd-server as the home server (as
# with nbdkit in pam/*.sh and home-fuse.sh): the agent's warm
# connections to nbd-server, a login through pamtester on one; nbd-server
# killed (the main process, then its children, which hold the warm
# connections and the port) and started again: the next login goes on with
# a fresh connection, within a short bound, and the agent says why; then a
# home mounted with homeport mount, nbd-server killed and restarted in the
# middle of a write: the FUSE worker reconnects and the data is intact.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root
stop_all() {
    [ -n "${AGENT:-}" ] && kill -9 "$AGENT" 2> /dev/null
    [ -n "${DD:-}" ] && kill -9 "$DD" 2> /dev/null
    stop_homes
    stop_nbd_server
}
CLEANUP_HOOK=stop_all
requires nbd-server pamtester
add_users nsuser:2603
mkdir -p "$T/srv"
PORT=$(free_port)
CONNECT_TIMEOUT=20s HOME_CONF="dead_timeout = 60s" SESSION_CONF="kill_grace = 1s" IMAGE_SIZE=64M \
    home_conf "servers = 127.0.0.1:$PORT
warm_connections = 2
spare_workers = 0" # (the login takes a warm connection, not a spare worker's)
hp mkhome nsuser
expect_rc 0 "an image made by mkhome"
printf '[generic]\nallowlist = true\n[nsuser]\nexportname = %s\n' "$T/srv/nsuser" > "$T/ns-server.cfg"
server() { start_nbd_server "$T/ns-server.cfg" "$PORT"; }
# the main process and its children (one a connection), by their parent
ns_children() { pgrep -P "$(cat "$T/nbd-server.pid")" | wc -l; }
export -f ns_children; export T
check "nbd-server on 127.0.0.1:$PORT" server
pam_service
check "the agent starts" start_agent_fg
check "2 warm connections: 2 children of nbd-server" wait_for bash -c '[ "$(ns_children)" -ge 2 ]'

pt nsuser acct_mgmt open_session
expect_rc 0 "nsuser logs in"
contains "$T/agent.log" "account nsuser: on a warm connection to 127.0.0.1:$PORT" "  on a warm connection to nbd-server"
echo "first session" > "$T/home/nsuser/first"
pt nsuser close_session
expect_rc 0 "and logs out"
check "  the pool is refilled" wait_for bash -c '[ "$(ns_children)" -ge 2 ]'

# nbd-server killed: first the main process, its children (the warm
# connections) left holding the port, as after a kill -9 of the service;
# then them too, and the service started again.
kids=$(pgrep -P "$(cat "$T/nbd-server.pid")" | tr '\n' ' ')
kill -9 "$(cat "$T/nbd-server.pid")"
sleep 0.5
# shellcheck disable=SC2086 # a list of pids
kill -9 $kids 2> /dev/null
check "nbd-server started again on the same port" wait_for_secs 10 server
s=$(date +%s%N)
pt nsuser acct_mgmt open_session
e=$(date +%s%N)
expect_rc 0 "the next login goes on"
check "  within a short bound, not connect_timeout (20 s): $(((e - s) / 1000000)) ms < 10000" test $(((e - s) / 1000000)) -lt 10000
check "  the agent says what became of the warm connections" \
    grep -qE "warm connection to 127.0.0.1:$PORT (closed by the server|was gone|did not answer)" "$T/agent.log"
contains "$T/out" "Home of nsuser mounted on $T/home/nsuser" "  greeter: mounted"
check "  the first session's file is there" grep -qx "first session" "$T/home/nsuser/first"
pt nsuser close_session
expect_rc 0 "  and the logout"
kill "$AGENT"; wait "$AGENT" 2> /dev/null; AGENT=

# A write through the FUSE worker while nbd-server is killed and restarted.
hp mount nsuser
expect_rc 0 "homeport mount from nbd-server"
head -c 24M /dev/urandom > "$T/data"
# 384 pieces of 64 KiB, 10 ms apart: about 4 s of writing
(
    for i in $(seq 0 383); do
        dd if="$T/data" of="$T/home/nsuser/data" bs=64k skip="$i" seek="$i" count=1 \
            conv=notrunc oflag=direct status=none || exit 1
        sleep 0.01
    done
) &
DD=$!
sleep 0.5
stop_nbd_server
sleep 1
check "nbd-server killed in the middle of the write, started again" server
check "the write finishes" wait_for_secs 60 bash -c "! kill -0 $DD 2> /dev/null"
wait "$DD"
rc=$?
DD=
check "  every piece written (exit $rc)" test "$rc" = 0
hp status
contains "$T/out" "reconnects [1-9]" "the FUSE worker reconnected"
hp umount nsuser
expect_rc 0 "homeport umount"
check "the data is in the image, intact" bash -c "debugfs -R 'dump /data $T/back' '$T/srv/nsuser' 2> /dev/null && cmp -s '$T/data' '$T/back'"
check "the image is clean" bash -c "e2fsck -fn '$T/srv/nsuser' > /dev/null 2>&1"
done_testing
