# tests/integration/pam/lib.sh: sourced by the tests of the resident agent
# and the PAM client, driven by pamtester through a real PAM service file
# (pam_permit for auth, pam_exec stdout -> homeport pam for account and
# session), NBD homes from a captive nbdkit over FUSE + loop.  Each test
# starts its own: `pam_world USER…` makes those users' home images, starts
# nbdkit on them and installs the PAM services; `start_agent` starts the
# agent in the foreground; `finish` ends the test (with the agent's log
# when a check failed).
# shellcheck source=../../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib.sh"
requires pamtester setpriv
enter_namespace "$@"
requires_fuse
setup_root
R=$T/run/homeport
SOCK=$R/agent.sock

stop_all() { # the agent under test (foreground or daemon) first, then the homes
    [ -n "${AGENT:-}" ] && kill -9 "$AGENT" 2> /dev/null
    [ -f "$R/agent.pid" ] && kill -9 "$(cat "$R/agent.pid")" 2> /dev/null
    stop_homes
}
CLEANUP_HOOK=stop_all

# The users, in this namespace only: listed is in exempt_users, grouped in
# the exempt group nohome; sysuser is below min_uid.
add_users alice:2001 bob:2002 carol:2003 dave:2004 sysuser:999 listed:2005 grouped:2006 ||
    bail "the test's users"
echo "nohome:x:2100:grouped" >> "$T/group"
mkdir -p "$T/srv" "$T/skel"
echo hi > "$T/skel/README"

conf() { # conf: LEASE, GRACE, MESSAGES change the defaults
    SESSION_CONF="lease = ${LEASE:-60s}
kill_grace = ${GRACE:-1s}
exempt_users = listed
exempt_groups = nohome
pam_messages = ${MESSAGES:-text}
pam_timeout = 60s" SERVER_CONF="skel = $T/skel" home_conf "servers = unix:$T/nbd.sock
spare_workers = ${SPARES:-1}"
}
conf

# homes USER…: their home images (dave's owned by uid 4242, someone else).
homes() {
    local u
    for u in "$@"; do
        if [ "$u" = dave ]; then hp mkhome dave --uid 4242 --gid 4242; else hp mkhome "$u"; fi
        [ "$rc" = 0 ] || { show_out; return 1; }
    done
}

# pam_services: the PAM service hp with the lines configs/pam.d/ tells
# admins to add (this test's binary and configuration), systemd-user the
# same, and hp-arch with the Arch system-login snippet.
pam_services() {
    pam_service
    cp "$T/pam.d/hp" "$T/pam.d/systemd-user"
    { echo "auth required pam_permit.so"; pam_snippet arch-system-login; } > "$T/pam.d/hp-arch"
}

# pam_world USER…: the homes of USER…, nbdkit serving them, the PAM services.
pam_world() {
    homes "$@" && start_nbdkit "$T/nbd.sock" file dir="$T/srv" && pam_services
}

mounted() { grep -q " $T/home/$1 " /proc/self/mountinfo; }
# the agent's spare workers (homeport(8)): their pids, the names of their
# dirs under RUN_DIR/spare; they and their mounts are not homes'
spare_pids() { local d; for d in "$R"/spare/*; do [ -d "$d" ] && echo "${d##*/}"; done; }
nmounts() { grep " $T/" /proc/self/mountinfo | grep -cv " $R/spare[/ ]"; }
nloops() { losetup -a | grep -c "$R/fuse/" || true; }
# home workers: live homeport processes of this test (forked from its agent,
# so its config is in their command line) that lead their own session, the
# spares left out
nworkers() {
    ps -eo pid=,sid=,stat=,comm=,args= | S=" $(spare_pids | tr '\n' ' ')" awk -v c="$CONF" \
        '$4 == "homeport" && $1 == $2 && $3 !~ /^Z/ && index($0, c) && !index(ENVIRON["S"], " " $1 " ")' | wc -l
}
nbd_conns() { ls -l /proc/"$NBDKIT_PID"/fd | grep -c socket; }
agent_fds() { ls /proc/"$AGENT"/fd | wc -l; }
export -f nworkers nbd_conns spare_pids
export CONF R
wait_for_long() { local i; for i in $(seq 200); do "$@" && return 0; sleep 0.1; done; return 1; }
start_agent() { start_agent_fg && export NBDKIT_PID; }

# warm_ready N: the agent says it holds N warm connections.
warm_ready() { raw 'homeport 1 ping\n' && grep -q ", $1 warm connections ready" "$T/out"; }
# spares_ready N: and N spare workers ready.
spares_ready() { raw 'homeport 1 ping\n' && grep -q ", $1 spare workers" "$T/out"; }

# raw REQUEST-BYTES [UID]: talk to the socket directly; replies in $T/out,
# then "EOF" when the agent closed the connection.  The agent keeps a
# connection open after answering a ping (its clients close it): raw
# stops after that answer instead of waiting out its 10 s timeout.
raw() {
    rc=0
    timeout 20 python3 - "$SOCK" "$1" "${2:-0}" > "$T/out" 2>&1 << 'PY' || rc=$?
import os, socket, sys
path, req, uid = sys.argv[1], sys.argv[2].encode().decode('unicode_escape').encode('latin-1'), int(sys.argv[3])
if uid:
    os.setgid(uid); os.setuid(uid)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
try:
    s.connect(path)
except OSError as e:
    print("connect:", e.strerror); sys.exit(3)
s.settimeout(10)
s.send(req)
while True:
    m = s.recv(8192)
    if not m:
        print("EOF"); break
    print(m.decode())
    if req.startswith(b"homeport 1 ping\n") and m.startswith(b"ok "):
        break
PY
}

# finish: the plan, and the agent's log when a check failed.
finish() {
    if [ "$_tap_failed" -gt 0 ] && [ -f "$T/agent.log" ]; then diag "agent log:"; sed 's/^/#   /' "$T/agent.log"; fi
    done_testing
}

# login USER: account and open_session for USER, exit 0.
login() {
    pt "$1" acct_mgmt open_session
    [ "$rc" = 0 ] || { show_out; return 1; }
}
