#!/usr/bin/env bash
# Many thin clients at once (tests/herd.py): 20 agents, each in its own
# network namespace (a veth to one server namespace, addresses that exist
# only there), mount namespace, host name, run_dir and config, start at the
# same moment against one nbdkit; then every user logs in at once through
# `homeport pam`; then nbdkit is killed and restarted under the herd.
# Asserts: every agent ready and its warm pool full, every login done and
# its home mounted, the server's connections bounded (agents x
# (warm_connections + spare_workers + a home's [nbd] connections)), no
# reconnect storm at boot or at the
# restart (at most HERD_MAX_1S SYNs in any 1 s window), every warm pool
# full again after the restart.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lib-herd.sh"
enter_namespace "$@"
setup_root
requires python3 ip tcpdump nsenter flock
[ -e /dev/fuse ] || { echo "1..0 # SKIP no /dev/fuse"; exit 0; }
N=${HERD_AGENTS:-20}
WARM=2
SPARE=1      # spare_workers: homeport's default (a spare holds a warm connection)
HOME_CONNS=4 # [nbd] connections of a home, as tests/herd.py writes it
check "$N users and their homes" herd_homes "$N"
herd_run "$N" --warm "$WARM" --restart
[ -n "${HERD_LOGS:-}" ] && mkdir -p "$HERD_LOGS" && cp -r "$T"/herd.* "$T"/syn.log "$T"/a0* "$HERD_LOGS"/ 2> /dev/null
expect_rc 0 "the herd ran"
sed 's/^/# /' "$T/herd.out"
[ "$rc" = 0 ] || { sed 's/^/# err: /' "$T/herd.err" | tail -20; done_testing; exit; }
j() { json_get "$T/herd.json" "$1"; }
check "every agent ready within 60 s" test "$(j 'j["ready_s"]["count"] == '"$N"' and j["ready_s"]["max"] < 60')" = True
check "every warm pool full ($WARM each)" test "$(j 'j["warm_full_s"]["count"]')" = "$N"
check "a boot probe each" test "$(j 'j["probe_ms"]["count"]')" = "$N"
check "every login done" test "$(j 'j["logins"]["ok"]')" = "$N"
check "  and every home mounted in its agent's namespace" test "$(j 'j["mounted"]')" = "$N"
check "the server's connections bounded: $(j 'j["server_connections"]["max"]') <= $((N * (WARM + SPARE + HOME_CONNS)))" \
    test "$(j 'j["server_connections"]["max"]')" -le $((N * (WARM + SPARE + HOME_CONNS)))
# boot: a probe and WARM connections each, one more for the pool when the
# spare takes one; the logins take the spare's (or a warm one), replaced
# once, and each home opens HOME_CONNS - 1 more: nothing more
check "no more connections than needed from start to logins done: $(j 'sum(j["boot_syns_per_s"])') <= $((N * (WARM + SPARE + 1 + HOME_CONNS)))" \
    test "$(j 'sum(j["boot_syns_per_s"])')" -le $((N * (WARM + SPARE + 1 + HOME_CONNS)))
# the restart: the closes are seen at the same moment by every agent; the
# reconnects (and the refused attempts while nbdkit is down) are spread
MAX1=${HERD_MAX_1S:-$((N * WARM * 3 / 4))}
check "restart: at most $MAX1 SYNs in any 1 s (saw $(j 'j["restart"]["syns_max_1s"]'); per second: $(j 'j["restart"]["syns_per_s"]'))" \
    test "$(j 'j["restart"]["syns_max_1s"]')" -le "$MAX1"
check "restart: every warm pool full again within 60 s ($(j 'j["restart"]["pools_back_s"]') s)" \
    test "$(j 'j["restart"]["pools_back_s"] is not None and j["restart"]["pools_back_s"] < 60')" = True
# this run's namespaces only (another run's may be there, or be left)
check "no network namespace left" bash -c "! ip netns list | grep -q '^$(j 'j["netns_prefix"]')[sa]'"
done_testing
