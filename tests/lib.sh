# tests/lib.sh: sourced by every integration test.
#
# Each test prints TAP ("ok N - …", "not ok N - …", "ok N - … # SKIP why")
# and runs in its own private mount namespace on a tmpfs, so that the real
# machine's mounts and /home are never touched.  Captive servers are started
# with -f as children and killed in the EXIT trap.

set -u
export LC_ALL=C

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOMEPORT=${HOMEPORT:-$TOP/build/homeport}
[ "${HOMEPORT#/}" = "$HOMEPORT" ] && HOMEPORT=$TOP/$HOMEPORT

_tap_n=0
_tap_failed=0

ok() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $*"; }
not_ok() { _tap_n=$((_tap_n + 1)); _tap_failed=$((_tap_failed + 1)); echo "not ok $_tap_n - $*"; }
skip() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $1 # SKIP $2"; }
diag() { printf '# %s\n' "$@"; }

# check DESCRIPTION COMMAND...: ok when the command succeeds.
check() {
    local desc=$1; shift
    if "$@"; then ok "$desc"; else not_ok "$desc"; diag "command failed: $*"; fi
}

# expect_rc WANT DESCRIPTION: compares $rc (set by the caller) with WANT.
expect_rc() {
    if [ "$rc" = "$1" ]; then ok "$2 (exit $rc)"; else not_ok "$2: exit $rc, want $1"; show_out; fi
}

# contains FILE PATTERN DESCRIPTION (grep -E)
contains() {
    if grep -qE -- "$2" "$1"; then ok "$3"; else not_ok "$3"; diag "no /$2/ in $1:"; sed 's/^/#   /' "$1"; fi
}
lacks() {
    if ! grep -qE -- "$2" "$1"; then ok "$3"; else not_ok "$3"; diag "unexpected /$2/ in $1:"; sed 's/^/#   /' "$1"; fi
}

show_out() {
    [ -f "$T/out" ] && sed 's/^/#   out: /' "$T/out"
    [ -f "$T/err" ] && sed 's/^/#   err: /' "$T/err"
    return 0
}

done_testing() {
    echo "1..$_tap_n"
    [ "$_tap_failed" -eq 0 ]
}

# Re-run this script inside a private mount namespace (once).
enter_namespace() {
    [ "$(id -u)" = 0 ] || skip_all "needs root (mounts, namespaces)"
    if [ -z "${HP_IN_NS:-}" ]; then
        HP_IN_NS=1 exec unshare -m --propagation private -- bash "$0" "$@"
    fi
}

_pids=()
_loops=()
# Remember a child to kill at exit.
track() { _pids+=("$1"); }
# Remember a loop device to detach at exit (loop devices are not namespaced).
track_loop() { _loops+=("$1"); }

_cleanup() {
    local p
    ${CLEANUP_HOOK:-:}
    for p in "${_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    for p in "${_pids[@]}"; do wait "$p" 2>/dev/null; done
    if [ -n "${T:-}" ] && [ -d "$T" ]; then
        umount -R -l "$T" 2>/dev/null
    fi
    for p in "${_loops[@]}"; do losetup -d "$p" 2>/dev/null; done
    if [ -n "${T:-}" ] && [ -d "$T" ]; then
        rmdir "$T" 2>/dev/null
    fi
}

# stop_homes [RUN_DIR CONF]: for CLEANUP_HOOK in tests that mount homes
# (default: $T/run/homeport and $CONF): unmount each recorded home, kill its
# worker (workers run in sessions of their own and outlive the test
# otherwise), then lazily detach whatever is still mounted below $T.
stop_homes() {
    local f run=${1:-$T/run/homeport} conf=${2:-$CONF}
    for f in "$run"/homes/*; do
        case $f in *:* | *"*") continue ;; esac
        timeout 20 "$HOMEPORT" -c "$conf" umount "$(basename "$f")" > /dev/null 2>&1
        kill -9 "$(sed -n 's/^worker=//p' "$f")" 2> /dev/null
    done
    grep -o " $T[^ ]* " /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
}

# A fresh tmpfs root $T with the layout the config below points at.
setup_root() {
    T=$(mktemp -d /tmp/homeport-test.XXXXXX)
    trap _cleanup EXIT
    trap 'exit 130' INT TERM
    mount -t tmpfs -o mode=0755 homeport-test "$T"
    mkdir -p "$T/home/profiletemp" "$T/run" "$T/var/tmp" "$T/outside"
    CONF=$T/homeport.conf
    write_conf
}

# write_conf [extra lines for [nbd]] — the test's configuration.
write_conf() {
    cat > "$CONF" <<CONF
[agent]
run_dir = $T/run/homeport
state_dir = $T/var/lib/homeport
log = stderr
[boot]
staging_dir = $T/home/profiletemp
home_root = $T/home
flag_files = $T/var/tmp/horizon-pam_session_*.flag
unmount_stale = ${UNMOUNT_STALE:-yes}
[nbd]
connect_timeout = ${CONNECT_TIMEOUT:-5s}
${NBD_CONF:-}
CONF
}

# home_conf [NBD-LINES]: the configuration of a test of NBD homes:
# write_conf with NBD-LINES in [nbd] (servers, tls_* …), homes mounted on
# $T/home/USER with attach = $ATTACH (default fuse) and HOME_CONF's lines,
# SESSION_CONF's lines in [session] when set, images made in $T/srv of
# IMAGE_SIZE (default 32M) and SERVER_CONF's lines in [server].
home_conf() {
    NBD_CONF=${1:-} write_conf
    cat >> "$CONF" << C
[home]
mount_dir = $T/home/%u
attach = ${ATTACH:-fuse}
${HOME_CONF:-}
${SESSION_CONF:+[session]
$SESSION_CONF}
[server]
image_dir = $T/srv
default_size = ${IMAGE_SIZE:-32M}
${SERVER_CONF:-}
C
}

# roam_conf [SYNC-LINES…]: the configuration ($CONF) of a test of roaming
# homes (home_mode = sync): write_conf, lease $LEASE (default 60s), local
# homes in $T/home/utilisateurs, the flag file in $T/var/tmp, SYNC-LINES
# added to [sync] (mount, sshfs_*…).
roam_conf() {
    write_conf
    cat >> "$CONF" << C
[home]
home_mode = sync
[session]
kill_grace = 1s
pam_timeout = 60s
lease = ${LEASE:-60s}
[sync]
local_dir = $T/home/utilisateurs/%u
flag_file = $T/var/tmp/horizon-pam_session_%u.flag
C
    printf '%s\n' "$@" >> "$CONF"
}

# stop_roaming: a roaming test's cleanup: the agent, its background
# passes, whatever is still mounted in the staging dir.
stop_roaming() {
    [ -n "${AGENT:-}" ] && kill -9 "$AGENT" 2> /dev/null
    pkill -9 -f "$CONF" 2> /dev/null
    grep -o " $T/home/profiletemp/[^ ]*" /proc/self/mountinfo | while read -r m; do umount -l "$m"; done
}

# hp ARGS…: run homeport with the test config; stdout in $T/out, stderr in
# $T/err, exit code in $rc.  Bounded by a timeout.
hp() {
    rc=0
    timeout 60 "$HOMEPORT" -c "$CONF" "$@" > "$T/out" 2> "$T/err" || rc=$?
}

# wait_for CMD…: poll up to 10 s.
wait_for() {
    local i
    for i in $(seq 100); do "$@" && return 0; sleep 0.1; done
    return 1
}

# wait_for_secs N CMD…: poll up to N seconds.
wait_for_secs() {
    local i n=$(($1 * 5))
    shift
    for i in $(seq "$n"); do "$@" && return 0; sleep 0.2; done
    return 1
}

# start_nbdkit SOCKET ARGS…: a captive nbdkit on a unix socket; sets NBDKIT_PID.
start_nbdkit() {
    local sock=$1; shift
    rm -f "$sock"
    nbdkit -f -U "$sock" "$@" 2>> "$T/nbdkit.log" &
    NBDKIT_PID=$!
    track "$NBDKIT_PID"
    wait_for test -S "$sock"
}

# start_nbdkit_tcp PORT ARGS…: on 127.0.0.1 only.
start_nbdkit_tcp() {
    local port=$1; shift
    nbdkit -f -i 127.0.0.1 -p "$port" "$@" 2>> "$T/nbdkit.log" &
    NBDKIT_PID=$!
    track "$NBDKIT_PID"
    wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
}

# A loopback TCP port nobody listens on right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# stale_fuse DIR: a FUSE mount at DIR whose daemon is then SIGKILLed.
stale_fuse() {
    local dir=$1 pid
    mkdir -p "$dir"
    nbdfuse "$dir" --command nbdkit -s memory 1M 2>> "$T/nbdfuse.log" &
    pid=$!
    track "$pid"
    wait_for mountpoint -q "$dir" || return 1
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    # the mount stays; every access now fails with ENOTCONN
    ! stat "$dir" >/dev/null 2>&1
}

# json_get FILE PYTHON-EXPR: evaluate an expression on the parsed JSON (j).
json_get() {
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

is_mounted() { grep -qF " $1 " /proc/self/mountinfo; }

# private_etc: this namespace's /etc becomes an overlay of the real one
# (upper layer in $T), before any file below it is bind-mounted.  A bind
# mount on the real /etc/passwd does not last: when a package install or
# useradd outside replaces that file (a rename), the kernel detaches every
# mount on it in every namespace, and the test's users vanish mid-test
# ("user 'bob' is unknown on this machine").  On the overlay's own files
# nothing outside can do that.
private_etc() {
    [ -d "$T/etc-upper" ] && return 0
    mkdir -p "$T/etc-upper" "$T/etc-work" &&
        mount -t overlay homeport-etc -o "lowerdir=/etc,upperdir=$T/etc-upper,workdir=$T/etc-work" /etc
}

# fuse_home USER: USER (uid 2001), a 64 MiB home image of theirs in
# $T/srv, and the config for attach = fuse from an nbdkit on $T/nbd.sock
# (which the test starts itself, with the filters it needs).
fuse_home() {
    add_users "$1:2001"
    mkdir -p "$T/srv"
    ATTACH=fuse IMAGE_SIZE=64M home_conf "servers = unix:$T/nbd.sock"
    hp mkhome "$1"
    given "$1's home image" test "$rc" = 0
}

# add_users NAME:UID… — users visible to this namespace only: a private
# copy of /etc/passwd and /etc/group is bind-mounted over the real ones.
add_users() {
    local spec name uid
    [ -f "$T/passwd" ] || { private_etc && cp /etc/passwd "$T/passwd" && cp /etc/group "$T/group" &&
        mount --bind "$T/passwd" /etc/passwd && mount --bind "$T/group" /etc/group; } || return 1
    for spec in "$@"; do
        name=${spec%%:*} uid=${spec#*:}
        echo "$name:x:$uid:$uid::/home/$name:/bin/sh" >> "$T/passwd"
        echo "$name:x:$uid:" >> "$T/group"
    done
}

# pam_snippet FILE [CONF]: a shipped configs/pam.d snippet, calling the
# binary under test with CONF (default $CONF).
pam_snippet() { grep -v '^#' "$TOP/configs/pam.d/$1" | sed "s|/usr/local/sbin/homeport pam|$HOMEPORT -c ${2:-$CONF} pam|"; }

# pam_service: the PAM service "hp" in this namespace's /etc/pam.d:
# pam_permit for auth, then the shipped account and session lines.
pam_service() {
    mkdir -p "$T/pam.d"
    { echo "auth required pam_permit.so"; pam_snippet debian-common-account; pam_snippet debian-common-session; } > "$T/pam.d/hp"
    mount --bind "$T/pam.d" /etc/pam.d
}

# pt USER OPS…: pamtester on the service hp; output in $T/out, exit in $rc.
pt() {
    rc=0
    timeout 90 pamtester -v hp "$@" > "$T/out" 2>&1 || rc=$?
}

# start_agent_fg: the agent under test in the foreground, as a child (its
# log in $T/agent.log); sets AGENT once its pid file names it.
start_agent_fg() {
    "$HOMEPORT" -c "$CONF" -v agent -f 2>> "$T/agent.log" &
    AGENT=$!
    track "$AGENT"
    wait_for bash -c "test \"\$(cat '$T/run/homeport/agent.pid' 2>/dev/null)\" = $AGENT"
}

# skip_all REASON: skip the whole test, saying why (TAP "1..0 # SKIP").
skip_all() {
    echo "1..0 # SKIP $*"
    exit 0
}

# requires CMD…: skip the whole test (with the reason) when one is missing.
requires() {
    local c
    for c in "$@"; do
        command -v "$c" > /dev/null || skip_all "$c is not installed (tests/install-deps.sh)"
    done
}

# requires_fuse: skip the whole test when this machine has no FUSE.
requires_fuse() { [ -e /dev/fuse ] || skip_all "no /dev/fuse"; }

# bail DESC: a step the test cannot go on without failed: a failed check
# named DESC, the plan, and exit 1.
bail() {
    not_ok "$*"
    done_testing
    exit 1
}

# given DESC COMMAND…: a step the test needs but whose behaviour another
# test checks: silent when it works, bail when not.
given() {
    local d=$1
    shift
    "$@" || bail "$d"
}

# own_libnbd: 0 when $HOMEPORT carries the libnbd that deps/ builds, with
# homeport's patches (deps/patches: the TLS line of the boot report, quick
# ACKs, GnuTLS's PERFORMANCE order).  The dev and asan flavours link
# Debian's libnbd instead; checks of what the patches do are skipped there.
OWN_LIBNBD_WHY="this flavour links Debian's libnbd, without deps/patches: the static run checks it"
own_libnbd() { file -L "$HOMEPORT" | grep -q 'statically linked'; }

# start_nbd_server CONFIG PORT: Debian's nbd-server (-C CONFIG) on
# 127.0.0.1:PORT, its pid in $T/nbd-server.pid, its log in
# $T/nbd-server.log; returns once the port answers.  stop_nbd_server kills
# it and every child it forked for a client, also those whose parent was
# killed before (they keep the port).
start_nbd_server() {
    rm -f "$T/nbd-server.pid"
    timeout 10 nbd-server -C "$1" -p "$T/nbd-server.pid" "127.0.0.1@$2" >> "$T/nbd-server.log" 2>&1 &&
        wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$2" 2> /dev/null
}
stop_nbd_server() { pkill -9 -f "nbd-server -C $T/" 2> /dev/null; }
