#!/usr/bin/env bash
# Homes on Ceph RBD, served over NBD by qemu-storage-daemon (qemu's rbd
# driver): a one-node cluster started by the test (1 mon, 1 mgr, 2
# bluestore OSDs on sparse files, cephx, pool size 2) in a private network
# namespace (the mon on 127.0.0.1 of that namespace only) and mount
# namespace, every daemon a child in the foreground with its config, keys,
# sockets and data under the test's tmpfs.  Homes made by homeport mkhome
# and imported with rbd import; the boot probe and logins through pamtester
# with the agent (also after the exporter closed the agent's idle warm
# connections: qemu's NBD server drops connections that stay in option mode
# for 10 s); an OSD SIGKILLed and restarted during a write; the exporter
# (configs/ceph/homeport-exporter, as a site runs it) killed and restarted
# during writes to an image with rbd's exclusive lock and to one without,
# then stopped cleanly and restarted (the FUSE workers reconnect); the
# data read back from RBD with rbd export; the exporter under TLS with
# homeport's tls = require.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lib-tls.sh"
requires ceph-mon ceph-mgr ceph-osd ceph ceph-authtool monmaptool rbd qemu-storage-daemon pamtester ip ss
requires_fuse
# qemu's rbd driver is a module of its own (qemu-block-extra): without it
# qemu says the driver is unknown, with it the missing conf file
timeout 10 qemu-storage-daemon --blockdev driver=rbd,node-name=x,pool=p,image=i,conf=/nonexistent 2>&1 |
    grep -q "does not accept value 'rbd'" && skip_all "qemu's rbd driver is not installed (qemu-block-extra)"
if [ "$(id -u)" = 0 ] && [ -z "${HP_IN_NETNS:-}" ]; then
    HP_IN_NETNS=1 exec unshare -n -- bash "$0" "$@"
fi
enter_namespace "$@"
ip link set lo up
setup_root
TEST_START=$(date +%s%N)
C=$T/ceph
export CEPH_CONF=$C/ceph.conf
PORT=10809
USERS="rbduser1 rbduser2 rbduser3"

# pids of the daemons by name (mon.a, mgr.x, osd.0, osd.1, qsd); each is
# also tracked, so the EXIT trap kills it (after stop_homes has unmounted
# the homes while the exporter still runs).
declare -A PID
WRITERS=()
stop_all() {
    [ -n "${AGENT:-}" ] && kill -9 "$AGENT" 2> /dev/null
    [ ${#WRITERS[@]} -gt 0 ] && kill -9 "${WRITERS[@]}" 2> /dev/null
    stop_homes
}
CLEANUP_HOOK=stop_all
unmounted() { ! is_mounted "$1"; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
# ceph and rbd, bounded: a cluster that does not answer fails the check
ceph_() { timeout 60 ceph --connect-timeout 30 "$@"; }
rbd_() { timeout 120 rbd "$@"; }

# daemon NAME COMMAND…: a Ceph daemon (or the exporter) in the foreground,
# its stderr in $C/log/NAME.err.
daemon() {
    local name=$1; shift
    "$@" >> "$C/log/$name.err" 2>&1 &
    PID[$name]=$!
    track "$!"
}

write_ceph_conf() {
    mkdir -p "$C"/{run,log,mon,mgr/ceph-x,osd}
    cat > "$CEPH_CONF" <<CONF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:3300
mon initial members = a
public network = 127.0.0.0/8
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
osd pool default size = 2
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon osd min down reporters = 1
mon data avail warn = 1
run dir = $C/run
admin socket = $C/run/\$cluster-\$name.asok
log file = $C/log/\$cluster-\$name.log
mon data = $C/mon/\$cluster-\$id
mgr data = $C/mgr/\$cluster-\$id
osd data = $C/osd/\$cluster-\$id
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 2G
bluestore block path = $C/osd/\$cluster-\$id.block
[client.admin]
keyring = $C/client.admin.keyring
[client.homeport-nbd]
keyring = $C/client.homeport-nbd.keyring
CONF
}

# The monitor: its map and keys made by hand (monmaptool, ceph-authtool).
start_mon() {
    {
        ceph-authtool --create-keyring "$C/mon.keyring" --gen-key -n mon. --cap mon 'allow *' &&
            ceph-authtool --create-keyring "$C/client.admin.keyring" --gen-key -n client.admin \
                --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' &&
            ceph-authtool "$C/mon.keyring" --import-keyring "$C/client.admin.keyring"
    } > /dev/null || return 1
    monmaptool --create --addv a '[v2:127.0.0.1:3300]' --fsid "$FSID" "$C/monmap" > /dev/null &&
        ceph-mon --mkfs -i a --monmap "$C/monmap" --keyring "$C/mon.keyring" 2>> "$C/log/mkfs.err" || return 1
    daemon mon.a ceph-mon -f -i a
    ceph_ health > /dev/null
}

start_mgr() {
    ceph_ auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' > "$C/mgr/ceph-x/keyring" || return 1
    daemon mgr.x ceph-mgr -f -i x
}

# new_osd: an OSD id from the mon, its key, bluestore made on a sparse file
# (bluestore_block_create), then the daemon.
new_osd() {
    local uuid key id
    uuid=$(cat /proc/sys/kernel/random/uuid) key=$(ceph-authtool --gen-print-key) &&
        id=$(echo "{\"cephx_secret\": \"$key\"}" | ceph_ osd new "$uuid" -i -) &&
        mkdir -p "$C/osd/ceph-$id" &&
        ceph-authtool --create-keyring "$C/osd/ceph-$id/keyring" --name "osd.$id" --add-key "$key" > /dev/null &&
        timeout 60 ceph-osd -i "$id" --mkfs --osd-uuid "$uuid" >> "$C/log/mkfs.err" 2>&1 || return 1
    daemon "osd.$id" ceph-osd -f -i "$id"
}

# every placement group active+clean, HEALTH_OK
cluster_ok() {
    ceph_ pg stat 2> /dev/null | grep -qE '^([0-9]+) pgs: \1 active\+clean;' &&
        ceph_ health 2> /dev/null | grep -qx HEALTH_OK
}

FSID=$(cat /proc/sys/kernel/random/uuid)
write_ceph_conf
t0=$(date +%s%N)
check "ceph-mon on 127.0.0.1:3300 of this network namespace" start_mon
check "ceph-mgr" start_mgr
check "osd.0: bluestore on a sparse file" new_osd
check "osd.1: bluestore on a sparse file" new_osd
make_pool() {
    ceph_ osd pool create homes 16 16 > /dev/null 2>&1 && rbd_ pool init homes &&
        ceph_ osd pool get homes size | grep -qx 'size: 2'
}
check "pool homes, size 2, for rbd" make_pool
check "HEALTH_OK, all placement groups active+clean" wait_for_secs 120 cluster_ok
UP_MS=$(ms_since "$t0")
if [ "$_tap_failed" != 0 ]; then
    diag "the daemons' logs end with:"
    tail -n 5 "$C"/log/*.err "$C"/log/*.log 2> /dev/null | sed 's/^/#   /'
    bail "a running cluster"
fi
diag "cluster up (mkfs of mon and OSDs to HEALTH_OK): $UP_MS ms" \
    "resident memory (KiB): $(for d in mon.a mgr.x osd.0 osd.1; do printf '%s %s ' "$d" "$(ps -o rss= -p "${PID[$d]}")"; done)"
check "cephx: a client without the key is refused" bash -c "! timeout 30 ceph --connect-timeout 5 --keyring /dev/null health > /dev/null 2>&1"
ceph_ auth get-or-create client.homeport-nbd mon 'profile rbd' osd 'profile rbd pool=homes' \
    > "$C/client.homeport-nbd.keyring"
check "the exporter's key: rbd on pool homes only" test -s "$C/client.homeport-nbd.keyring"

# --- homes: homeport mkhome, then rbd import --------------------------------
add_users rbduser1:2701 rbduser2:2702 rbduser3:2703
mkdir -p "$T/srv"
CONNECT_TIMEOUT=20s HOME_CONF="dead_timeout = 120s" SESSION_CONF="kill_grace = 1s" IMAGE_SIZE=256M
home_conf "servers = 127.0.0.1:$PORT
probe_export = rbduser1
warm_connections = 2"
for u in $USERS; do
    hp mkhome "$u"
    expect_rc 0 "homeport mkhome $u (256 MiB)"
done
t0=$(date +%s%N)
for u in rbduser1 rbduser2; do rbd_ import --no-progress "$T/srv/$u" "homes/$u" || not_ok "rbd import $u"; done
IMPORT_MS=$(ms_since "$t0")
diag "rbd import of two 256 MiB homes: $IMPORT_MS ms"
rbd_ import --no-progress --image-feature layering "$T/srv/rbduser3" homes/rbduser3 || not_ok "rbd import rbduser3"
check "3 images in pool homes, 256 MiB each" bash -c "[ \"\$(rbd ls -l homes | awk '\$2 == \"256\" && \$3 == \"MiB\"' | wc -l)\" = 3 ]"
rm -f "$T"/srv/rbduser*

# --- the exporter: qemu-storage-daemon, one export a home -------------------
# qsd [TLS_DIR]: the exporter as a site runs it (configs/ceph/): every
# image of pool homes, as client.homeport-nbd, on 127.0.0.1:$PORT
qsd() {
    daemon qsd env LISTEN=127.0.0.1 PORT="$PORT" TLS_DIR="${1:-}" "$TOP/configs/ceph/homeport-exporter"
    wait_for_secs 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2> /dev/null
}
stop_qsd() { kill -9 "${PID[qsd]}" 2> /dev/null; wait "${PID[qsd]}" 2> /dev/null; }
if ! qsd; then
    sed 's/^/#   /' "$C/log/qsd.err"
    bail "qemu-storage-daemon serves the homes from RBD on 127.0.0.1:$PORT"
fi
ok "qemu-storage-daemon serves the homes from RBD on 127.0.0.1:$PORT"

hp boot
expect_rc 0 "the boot probe passes against the exporter"
contains "$T/out" "^nbd 127.0.0.1:$PORT: ok, newstyle-fixed, .*3 exports \(rbduser[123], rbduser[123], rbduser[123]\), probe export 'rbduser1' 268435456 bytes$" \
    "  both exports listed, the probe export's size"

# --- logins through PAM with the agent ------------------------------------------
pam_service
check "the agent starts" start_agent_fg
# established connections to the exporter, seen from the server's side
export PORT
conns() { ss -Htn state established "( sport = :$PORT )" | wc -l; }
export -f conns
check "the agent holds 2 warm connections to the exporter" wait_for_secs 20 bash -c '[ "$(conns)" -ge 2 ]'
s=$(date +%s%N)
pt rbduser1 acct_mgmt open_session
expect_rc 0 "rbduser1 logs in ($(ms_since "$s") ms)"
contains "$T/out" "Home of rbduser1 mounted on $T/home/rbduser1" "  greeter: mounted"
check "  the home belongs to rbduser1" test "$(stat -c %U "$T/home/rbduser1")" = rbduser1
echo "on ceph" > "$T/home/rbduser1/note"
pt rbduser1 close_session
expect_rc 0 "  and logs out"
check "  the home is unmounted" unmounted "$T/home/rbduser1"

# qemu's NBD server closes a connection still in option mode after 10 s
# (not configurable in qemu 7.2): a login after that idle time must not
# wait on a dead warm connection.
sleep 12
s=$(date +%s%N)
pt rbduser1 acct_mgmt open_session
LOGIN_MS=$(ms_since "$s")
expect_rc 0 "a login after 12 s idle, past qemu's 10 s limit on idle option-mode connections ($LOGIN_MS ms)"
check "  within 10 s" test "$LOGIN_MS" -lt 10000
check "  the first session's file is there" grep -qx "on ceph" "$T/home/rbduser1/note"
diag "what the agent said of its warm connections (count, message):"
grep -iE 'warm' "$T/agent.log" | sed -E 's/^[^ ]+ //; s/[0-9]+ ms/N ms/g' | sort | uniq -c | sort -rn | head -8 | sed 's/^/#   /'
pt rbduser1 close_session
expect_rc 0 "  and the logout"
kill "$AGENT"
wait "$AGENT" 2> /dev/null
AGENT=

# --- writes through the FUSE worker while the cluster or the exporter fails -------
head -c 16M /dev/urandom > "$T/data"
# paced_write FILE: $T/data into FILE in 256 pieces of 64 KiB, 10 ms
# apart (a few seconds of writing), in the background; its pid is added
# to WRITERS, and it leaves the time it ended in $T/end.N (N: its index).
WRITERS=()
paced_write() {
    local n=${#WRITERS[@]}
    (for i in $(seq 0 255); do
        dd if="$T/data" of="$1" bs=64k skip="$i" seek="$i" count=1 conv=notrunc oflag=direct status=none || exit 1
        sleep 0.01
    done; date +%s%N > "$T/end.$n") &
    WRITERS+=($!)
    echo "$1" >> "$T/writes"
}
# writer_done N DESCRIPTION START: the write WRITERS[N] finishes within
# 120 s, every piece (START: when it began, date +%s%N)
writer_done() {
    local rc=0 pid=${WRITERS[$1]}
    if wait_for_secs 120 bash -c "! kill -0 $pid 2> /dev/null"; then
        wait "$pid" || rc=$?
        WRITE_MS=$((($(cat "$T/end.$1" 2> /dev/null || echo "$3") - $3) / 1000000))
        check "$2 (every piece written in $WRITE_MS ms, exit $rc)" test "$rc" = 0
    else
        WRITE_MS=120000
        not_ok "$2: still writing after 120 s"
    fi
}
# under_way N…: the writes WRITERS[N]… have 2 MiB of their 16 on disk and
# are still writing
under_way() {
    local n f
    for n; do
        f=$(sed -n "$((n + 1))p" "$T/writes")
        wait_for_secs 30 bash -c "[ \"\$(stat -c %s '$f' 2> /dev/null)\" -ge 2097152 ]" 2> /dev/null &&
            kill -0 "${WRITERS[$n]}" 2> /dev/null || return 1
    done
}
osds_up() { ceph_ osd stat 2> /dev/null | grep -q '2 osds: 2 up'; }

for u in rbduser2 rbduser3; do
    hp mount "$u"
    expect_rc 0 "homeport mount $u from the exporter"
done
s=$(date +%s%N)
paced_write "$T/home/rbduser2/osd-kill"
check "a write under way" under_way 0
kill -9 "${PID[osd.0]}"
wait "${PID[osd.0]}" 2> /dev/null
sleep 1
daemon osd.0 ceph-osd -f -i 0
ok "osd.0 SIGKILLed in the middle of the write, started again"
writer_done 0 "the write goes on across the OSD's death" "$s"
check "both OSDs up again" wait_for_secs 60 osds_up

# The exporter killed while it writes to two homes: rbduser2's image has
# rbd's default features, so the restarted exporter waits for the dead
# one's exclusive lock (its watch times out on the OSDs, 30 s by default);
# rbduser3's has layering only, no lock to wait for.
s=$(date +%s%N)
paced_write "$T/home/rbduser2/qsd-kill"
paced_write "$T/home/rbduser3/qsd-kill"
check "two writes under way" under_way 1 2
stop_qsd
check "the exporter killed in the middle of two writes, started again" qsd
writer_done 1 "the write goes on across the exporter's restart (exclusive-lock)" "$s"
writer_done 2 "  and to the image without exclusive-lock" "$s"
check "  which waited for no lock: $WRITE_MS ms < 25000" test "$WRITE_MS" -lt 25000

# A clean stop (SIGTERM, as systemctl restart does, to add a home) releases
# the lock: the restarted exporter does not wait for it.
s=$(date +%s%N)
paced_write "$T/home/rbduser2/qsd-term"
check "a write under way" under_way 3
kill -TERM "${PID[qsd]}"
check "the exporter stopped with SIGTERM in the middle of a write" wait_for_secs 30 bash -c "! kill -0 ${PID[qsd]} 2> /dev/null"
stop_qsd
check "  and started again" qsd
writer_done 3 "the write goes on across the exporter's clean restart (exclusive-lock)" "$s"
check "  with no wait for the lock: $WRITE_MS ms < 25000" test "$WRITE_MS" -lt 25000
WRITERS=()
hp status
cp "$T/out" "$T/status"
for u in rbduser2 rbduser3; do
    contains "$T/status" "^$u .*reconnects [1-9]" "the FUSE worker of $u reconnected"
    hp umount "$u"
    expect_rc 0 "homeport umount $u"
done

# --- the data, read back from RBD -------------------------------------------------
stop_qsd
for u in $USERS; do rbd_ export --no-progress "homes/$u" "$T/back-$u" > /dev/null 2>&1 || not_ok "rbd export $u"; done
check "rbd export: the note written at login" bash -c "debugfs -R 'cat /note' '$T/back-rbduser1' 2> /dev/null | grep -qx 'on ceph'"
for f in rbduser2/osd-kill rbduser2/qsd-kill rbduser2/qsd-term rbduser3/qsd-kill; do
    check "rbd export: $f, written across the failure, intact" \
        bash -c "debugfs -R 'dump /${f#*/} $T/back.file' '$T/back-${f%/*}' > /dev/null 2>&1 && cmp -s '$T/data' '$T/back.file'"
done
for u in $USERS; do check "the file system of $u is clean" bash -c "e2fsck -fn '$T/back-$u' > /dev/null 2>&1"; done
rm -f "$T"/back-* "$T/back.file"

# --- the exporter under TLS -----------------------------------------------------------
if "$HOMEPORT" version | grep -qF "(TLS for NBD)" && command -v certtool > /dev/null; then
    check "a test PKI (certtool)" make_pki
    check "the exporter with --object tls-creds-x509 (verify-peer) and tls-creds on the NBD server" \
        qsd "$T/pki/server"
    home_conf "servers = 127.0.0.1:$PORT
probe_export = rbduser1"
    hp boot
    expect_rc 4 "a machine in clear gets nothing"
    lacks "$T/out" "268435456 bytes" "  not even the probe export's size"
    diag "$(grep "^nbd " "$T/out")"
    home_conf "servers = localhost:$PORT
probe_export = rbduser1
$(tls_x509_conf)"
    hp boot
    expect_rc 0 "tls = require: the boot probe passes"
    contains "$T/out" "^nbd localhost:$PORT: ok, .*TLS \(X\.509 with this machine's certificate\)" "  over TLS"
    hp mount rbduser1
    expect_rc 0 "  homeport mount over TLS"
    check "  the note is there" grep -qx "on ceph" "$T/home/rbduser1/note"
    hp umount rbduser1
    expect_rc 0 "  homeport umount"
else
    skip "the exporter under TLS" "this binary has no TLS for NBD, or certtool is missing"
fi
diag "test total: $(ms_since "$TEST_START") ms (cluster up $UP_MS ms, import $IMPORT_MS ms)"
done_testing
