#!/usr/bin/env bash
# The resident agent and the PAM client, driven by pamtester through a real
# PAM service file (pam_permit for auth, pam_exec stdout -> homeport pam for
# account and session), NBD homes from a captive nbdkit over FUSE + loop.
# Greeter lines in text and JSON; exempt users; shared sessions; processes
# left behind killed (TERM, then KILL after the grace); 50 users at once and
# nothing left after; bad clients; agent killed and restarted (re-adoption);
# leases; reload; shutdown; daemon mode.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
SOCK=$R/agent.sock
NWAVE=${NWAVE:-50}

stop_all() { # the agent under test (foreground or daemon) first, then the homes
    [ -n "${AGENT:-}" ] && kill -9 "$AGENT" 2> /dev/null
    [ -f "$R/agent.pid" ] && kill -9 "$(cat "$R/agent.pid")" 2> /dev/null
    stop_homes
}
CLEANUP_HOOK=stop_all

for cmd in pamtester setpriv; do
    command -v $cmd > /dev/null || { echo "1..0 # SKIP $cmd is not installed (tests/install-deps.sh)"; exit 0; }
done
[ -e /dev/fuse ] || { echo "1..0 # SKIP no /dev/fuse"; exit 0; }

add_users alice:2001 bob:2002 carol:2003 dave:2004 sysuser:999 listed:2005 grouped:2006
echo "nohome:x:2100:grouped" >> "$T/group"
for i in $(seq -w 1 "$NWAVE"); do add_users "w$i:$((3000 + 10#$i))"; done
mkdir -p "$T/srv" "$T/skel" "$T/pam.d"
echo hi > "$T/skel/README"
conf() { # conf [extra [session] lines]
    NBD_CONF="servers = unix:$T/nbd.sock" write_conf
    cat >> "$CONF" <<C
[home]
mount_dir = $T/home/%u
attach = fuse
[session]
lease = ${LEASE:-60s}
kill_grace = ${GRACE:-1s}
exempt_users = listed
exempt_groups = nohome
pam_messages = ${MESSAGES:-text}
pam_timeout = 60s
$*
[server]
image_dir = $T/srv
skel = $T/skel
default_size = 32M
C
}
conf
for u in alice bob carol listed grouped; do hp mkhome "$u"; done
hp mkhome dave --uid 4242 --gid 4242 # owned by someone else
for i in $(seq -w 1 "$NWAVE"); do hp mkhome "w$i" --size 16M; done
check "nbdkit serves the image dir" start_nbdkit "$T/nbd.sock" file dir="$T/srv"

# The PAM service: the lines configs/pam.d/ tells admins to add, with this
# test's binary and configuration.
snippet() { grep -v '^#' "$TOP/configs/pam.d/$1" | sed "s|/usr/local/sbin/homeport pam|$HOMEPORT -c $CONF pam|"; }
{
    echo "auth required pam_permit.so"
    snippet debian-common-account
    snippet debian-common-session
} > "$T/pam.d/hp"
check "the service uses the shipped snippets" grep -q "^session requisite pam_exec.so stdout quiet $HOMEPORT -c $CONF pam" "$T/pam.d/hp"
cp "$T/pam.d/hp" "$T/pam.d/systemd-user"
{ echo "auth required pam_permit.so"; snippet arch-system-login; } > "$T/pam.d/hp-arch"
mount --bind "$T/pam.d" /etc/pam.d

# pt USER OPS… : pamtester, output in $T/out, exit in $rc
pt() {
    rc=0
    timeout 90 pamtester -v hp "$@" > "$T/out" 2>&1 || rc=$?
}
mounted() { grep -q " $T/home/$1 " /proc/self/mountinfo; }
nmounts() { grep -c " $T/" /proc/self/mountinfo; }
nloops() { losetup -a | grep -c "$R/fuse/" || true; }
# home workers: live homeport processes of this test (forked from its agent,
# so its config is in their command line) that lead their own session
nworkers() { ps -eo pid=,sid=,stat=,comm=,args= | awk -v c="$CONF" '$4 == "homeport" && $1 == $2 && $3 !~ /^Z/ && index($0, c)' | wc -l; }
nbd_conns() { ls -l /proc/"$NBDKIT_PID"/fd | grep -c socket; }
agent_fds() { ls /proc/"$AGENT"/fd | wc -l; }
wait_for_long() { local i; for i in $(seq 200); do "$@" && return 0; sleep 0.1; done; return 1; }
start_agent() {
    "$HOMEPORT" -c "$CONF" -v agent -f 2>> "$T/agent.log" &
    AGENT=$!
    track "$AGENT"
    wait_for bash -c "test \"\$(cat '$R/agent.pid' 2>/dev/null)\" = $AGENT"
}
# raw REQUEST-BYTES [UID]: talk to the socket directly; replies in $T/out
raw() {
    rc=0
    timeout 20 python3 - "$SOCK" "$1" "${2:-0}" > "$T/out" 2>&1 <<'PY' || rc=$?
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
PY
}

BASE_MOUNTS=$(nmounts)
check "agent starts" start_agent
check "pid file names it" test "$(cat "$R/agent.pid")" = "$AGENT"
check "socket is mode 0600" test "$(stat -c %a "$SOCK")" = 600
BASE_FDS=$(agent_fds)
export -f nbd_conns; export NBDKIT_PID
check "2 warm connections wait on the server before any login" wait_for bash -c '[ "$(nbd_conns)" = 3 ]'
BASE_CONNS=$(nbd_conns)

# --- a login: account, open_session; greeter lines --------------------------
pt alice acct_mgmt
expect_rc 0 "account alice"
contains "$T/out" "^Checking user\.\.\.$" "greeter: checking user"
contains "$T/out" "^Requesting home of alice from unix:$T/nbd.sock\.\.\.$" "greeter: requesting home"
contains "$T/out" "^Checking the home of alice\.\.\.$" "greeter: checking the home"
contains "$T/out" "^Home of alice is ready$" "greeter: ready"
check "prepared, not yet on the home dir" bash -c "! grep -q ' $T/home/alice ' /proc/self/mountinfo"
check "prepared on the stage dir" grep -q " $R/stage/alice " /proc/self/mountinfo
contains "$T/agent.log" "account alice: on a warm connection to unix:$T/nbd.sock" "it used a warm connection"
check "which is replaced in the background (2 idle + 1 in use)" wait_for bash -c '[ "$(nbd_conns)" = 4 ]'
hp status
contains "$T/out" "^alice /dev/loop[0-9]+ on $R/stage/alice \(prepared\): .*sessions 0" "status: prepared"
s=$(date +%s%N)
pt alice open_session
e=$(date +%s%N)
expect_rc 0 "open_session alice"
diag "open_session through pamtester: $(((e - s) / 1000000)) ms"
contains "$T/out" "^Home of alice mounted on $T/home/alice$" "greeter: mounted"
check "home mounted on the home dir" mounted alice
check "the stage mount is gone" bash -c "! grep -q ' $R/stage/alice ' /proc/self/mountinfo"
check "the home belongs to alice" test "$(stat -c %U "$T/home/alice")" = alice
check "skeleton there" test "$(cat "$T/home/alice/README")" = hi
hp status --json
check "status: mounted, 1 session" test "$(json_get "$T/out" '[(h["user"], h["phase"], h["sessions"]) for h in j["homes"]] == [("alice", "mounted", 1)]')" = True
echo "alice was here" > "$T/home/alice/note"

# --- a second session shares the mount ----------------------------------------
pt alice acct_mgmt open_session
expect_rc 0 "second login of alice"
contains "$T/out" "2 sessions" "greeter: second session"
check "still one mount" test "$(grep -c " $T/home/alice " /proc/self/mountinfo)" = 1
pt alice close_session
expect_rc 0 "first logout"
contains "$T/out" "1 session of alice still open" "greeter: still open"
check "home stays for the other session" mounted alice
check "data still there" test "$(cat "$T/home/alice/note")" = "alice was here"

# --- the last logout kills what the user left running -------------------------
setpriv --reuid=2001 --regid=2001 --clear-groups bash -c "cd '$T/home/alice' && exec sleep 1000" &
SLEEPER=$!
setpriv --reuid=2001 --regid=2001 --clear-groups bash -c "trap '' TERM; cd '$T/home/alice' && sleep 1000" &
IGNORER=$!
wait_for bash -c "pgrep -u 2001 -x sleep | wc -l | grep -qx 2"
s=$(date +%s%N)
pt alice close_session
e=$(date +%s%N)
expect_rc 0 "last logout of alice"
contains "$T/out" "^Home of alice unmounted$" "greeter: unmounted"
check "the sleeper is gone" bash -c "! kill -0 $SLEEPER 2>/dev/null || [ \"\$(ps -o stat= -p $SLEEPER)\" = Z ]"
check "the TERM-ignoring process is gone too" bash -c "! ps -u 2001 -o stat= | grep -qv '^Z'"
check "...after the grace (>= 1000 ms: $(((e - s) / 1000000)) ms)" test $(((e - s) / 1000000)) -ge 1000
contains "$T/agent.log" "alice: stopped 3 processes of uid 2001, [0-9]+ of them with SIGKILL" "agent log: what it stopped"
wait "$SLEEPER" "$IGNORER" 2> /dev/null
check "home unmounted" bash -c "! grep -q ' $T/home/alice ' /proc/self/mountinfo"
check "no loop device left" test "$(nloops)" = 0
check "record gone" test ! -e "$R/homes/alice"
check "written data is in the image" bash -c "debugfs -R 'cat /note' '$T/srv/alice' 2>/dev/null | grep -qx 'alice was here'"

# --- exempt users pass untouched ----------------------------------------------
pt root acct_mgmt open_session close_session
expect_rc 0 "root passes"
lacks "$T/out" "Checking|Home of" "root: no homeport lines"
pt sysuser acct_mgmt open_session
expect_rc 0 "uid below min_uid passes"
pt listed acct_mgmt open_session
expect_rc 0 "user in exempt_users passes"
pt grouped acct_mgmt open_session
expect_rc 0 "member of an exempt group passes"
rc=0; timeout 30 pamtester -v systemd-user bob acct_mgmt open_session > "$T/out" 2>&1 || rc=$?
expect_rc 0 "PAM service systemd-user passes"
check "none of them got a home" test "$(ls "$R/homes" | grep -vc ':')" = 0
rc=0; env PAM_TYPE=account PAM_USER=root "$HOMEPORT" -c /nonexistent pam > "$T/out" 2>&1 || rc=$?
expect_rc 0 "root passes even with a missing config"

# --- JSON greeter lines; errors -------------------------------------------------
MESSAGES=json conf
pt bob acct_mgmt
expect_rc 0 "account bob (json)"
check "every line is a JSON message" bash -c "grep -v '^pamtester:' '$T/out' | python3 -c '
import json,sys
ls=[json.loads(l) for l in sys.stdin]
assert ls and all(set(m)=={\"message\",\"isError\"} and m[\"isError\"] is False for m in ls), ls
print(ls[-1][\"message\"])' | grep -qx 'Home of bob is ready'"
pt nosuchuser acct_mgmt
expect_rc 1 "unknown user refused"
contains "$T/out" '"isError": true' "json: isError on failure"
contains "$T/out" "user 'nosuchuser' is unknown" "json: the reason"
MESSAGES=text conf
rc=0; env PAM_TYPE=open_session PAM_USER=dave "$HOMEPORT" -c "$CONF" pam > "$T/out" 2>&1 || rc=$?
expect_rc 1 "home owned by someone else refused"
check "the reason is the last line" bash -c "tail -1 '$T/out' | grep -q 'the home of dave belongs to uid 4242, not 2004'"
check "nothing of dave's is left" test ! -e "$R/homes/dave"
rc=0; env PAM_TYPE=open_session "$HOMEPORT" -c "$CONF" pam > "$T/out" 2>&1 || rc=$?
expect_rc 1 "no PAM_USER"
rc=0; env PAM_TYPE=fly PAM_USER=carol "$HOMEPORT" -c "$CONF" pam > "$T/out" 2>&1 || rc=$?
expect_rc 2 "unknown stage"
contains "$T/out" "unknown PAM stage 'fly'" "says so"
rc=0; env -u PAM_TYPE "$HOMEPORT" -c "$CONF" pam > "$T/out" 2> "$T/err" || rc=$?
expect_rc 2 "not under pam_exec"
contains "$T/err" "PAM_TYPE is not set" "says so"
rc=0; env PAM_TYPE=auth PAM_USER=carol "$HOMEPORT" -c "$CONF" pam > "$T/out" 2>&1 || rc=$?
expect_rc 0 "auth has nothing to do"

# --- bad clients: the agent keeps serving ---------------------------------------
raw 'homeport 1 account\nuser=carol\n' 2003
expect_rc 3 "non-root cannot connect (mode 0600)"
chmod 666 "$SOCK"
raw 'homeport 1 account\nuser=carol\n' 2003
contains "$T/out" "^error 1 permission denied: only root" "non-root request refused (SO_PEERCRED)"
contains "$T/out" "^EOF$" "and the connection closed"
raw 'homeport 1 ping\n' 2003
contains "$T/out" "^ok homeport .* agent pid $AGENT, [0-9]+ warm connections ready$" "ping is allowed to anyone who can connect"
chmod 600 "$SOCK"
raw 'GET / HTTP/1.0\r\n\r\n'
contains "$T/out" "^error 71 malformed request" "garbage refused (EPROTO)"
contains "$T/out" "^EOF$" "connection closed"
raw "homeport 1 account\nuser=$(head -c 5000 /dev/zero | tr '\0' a)\n"
contains "$T/out" "^error 71 request too large" "oversized request refused"
raw 'homeport 9 account\nuser=carol\n'
contains "$T/out" "unsupported protocol version 9" "unknown version refused"
raw 'homeport 1 account\nuser=../../etc\n'
contains "$T/out" "invalid user name" "bad user name refused before any path"
check "agent still alive" kill -0 "$AGENT"
rc=0; timeout 60 pamtester -v hp-arch carol acct_mgmt open_session close_session > "$T/out" 2>&1 || rc=$?
expect_rc 0 "and still serving: carol logs in and out (the Arch system-login snippet)"
contains "$T/out" "^Home of carol unmounted$" "through all three stages"

# --- slow work for one user blocks nobody else; one user's requests queue ------
GRACE=3s conf
kill -HUP "$AGENT"
wait_for bash -c "[ \$(grep -c 'configuration reloaded' '$T/agent.log') -ge 1 ]"
pt carol acct_mgmt open_session
setpriv --reuid=2003 --regid=2003 --clear-groups bash -c "trap '' TERM; exec sleep 1000" &
IGNORER=$!
wait_for pgrep -u 2003 -x sleep
s=$(date +%s%N)
timeout 30 pamtester hp carol close_session > "$T/close.out" 2>&1 &
CLOSER=$!
sleep 0.3
rc=0; env PAM_TYPE=account PAM_USER=carol "$HOMEPORT" -c "$CONF" pam > "$T/carol.out" 2>&1 &
QUEUED=$!
sleep 0.2
b=$(date +%s%N)
pt bob acct_mgmt open_session
e=$(date +%s%N)
expect_rc 0 "bob logs in while carol's logout waits out its grace"
check "bob was not held up ($(((e - b) / 1000000)) ms < 2000)" test $(((e - b) / 1000000)) -lt 2000
wait "$CLOSER"; rc=$?
c=$(date +%s%N)
expect_rc 0 "carol's slow logout finishes"
check "after the 3 s grace ($(((c - s) / 1000000)) ms)" test $(((c - s) / 1000000)) -ge 3000
wait "$QUEUED"; rc=$?
expect_rc 0 "carol's account, sent during her logout, ran after it"
contains "$T/carol.out" "^Requesting home of carol" "on a home prepared afresh"
check "in that order in the log" bash -c "grep -E 'close_session carol: Home of carol unmounted|account carol: Home of carol is ready' '$T/agent.log' | tail -2 | head -1 | grep -q close_session"
wait "$IGNORER" 2> /dev/null
pt bob close_session
pt carol open_session close_session
GRACE=1s conf
kill -HUP "$AGENT"

# --- the lease: a prepared home nobody opens is released ------------------------
LEASE=1s conf
kill -HUP "$AGENT"
wait_for grep -q "configuration reloaded" "$T/agent.log"
check "SIGHUP reloads" grep -q "configuration reloaded from $CONF" "$T/agent.log"
pt bob acct_mgmt # prepared earlier under the old lease: renewed with the new one
expect_rc 0 "account bob again (already prepared)"
check "lease over: bob's prepared home released" wait_for test ! -e "$R/homes/bob"
check "no stage mount left" bash -c "! grep -q ' $R/stage/' /proc/self/mountinfo"
cp "$CONF" "$T/good.conf"
echo "bogus = 1" >> "$CONF"
kill -HUP "$AGENT"
check "a bad file on reload is reported" wait_for grep -q "keeping the running configuration" "$T/agent.log"
contains "$T/agent.log" "$CONF:[0-9]+: unknown key 'bogus'" "naming file, line and key"
cp "$T/good.conf" "$CONF"
pt carol acct_mgmt open_session
expect_rc 0 "still serving with the old configuration"
pt carol close_session
LEASE=60s conf
kill -HUP "$AGENT"

# --- the agent is killed and restarted while a home is mounted -------------------
pt alice acct_mgmt open_session
expect_rc 0 "alice logs in"
echo "before the restart" > "$T/home/alice/restart"
kill -9 "$AGENT"; wait "$AGENT" 2> /dev/null
check "home still mounted without the agent" mounted alice
check "and still served (the worker lives)" test "$(cat "$T/home/alice/restart")" = "before the restart"
rc=0; env PAM_TYPE=account PAM_USER=bob "$HOMEPORT" -c "$CONF" pam > "$T/out" 2>&1 || rc=$?
expect_rc 1 "agent down: a clear failure"
contains "$T/out" "the homeport agent is not running" "says so"
check "agent restarts" start_agent
contains "$T/agent.log" "re-adopted the home of alice: mounted on $T/home/alice, 1 session$" "re-adopted"
hp status
contains "$T/out" "^alice .*\(mounted\).*sessions 1" "status after restart"
# a hand-over (how the system's agent takes over from the initramfs's)
pt carol acct_mgmt
expect_rc 0 "carol's home prepared before the hand-over"
OLD=$AGENT
hp agent
expect_rc 1 "a second agent refuses to start"
contains "$T/err" "another homeport agent is running \(pid $OLD\)" "naming the running one"
hp -v agent --replace
expect_rc 0 "agent --replace takes over (in the background)"
contains "$T/err" "replacing the running agent \(pid $OLD\)" "it says whom it replaces"
check "the old agent is gone" wait_for bash -c "! kill -0 $OLD 2>/dev/null"
contains "$T/agent.log" "handing over to a new agent: exiting now" "the old one said why it left"
AGENT=$(cat "$R/agent.pid")
track "$AGENT"
check "the new agent wrote its pid" test "$AGENT" != "$OLD"
check "alice's home stayed mounted" mounted alice
check "carol's stayed prepared" grep -q " $R/stage/carol " /proc/self/mountinfo
pt carol open_session close_session
expect_rc 0 "carol's session on the new agent (the prepared home re-adopted)"
pt alice close_session
expect_rc 0 "alice logs out after the restart"
check "and her home is unmounted" bash -c "! grep -q ' $T/home/alice ' /proc/self/mountinfo"
check "data written before the restart is in the image" bash -c "debugfs -R 'cat /restart' '$T/srv/alice' 2>/dev/null | grep -qx 'before the restart'"

# --- a home kept busy by someone else: reported, retried, also after a restart ---
pt bob acct_mgmt open_session
(cd "$T/home/bob" && exec sleep 1000) &
HOLDER=$!
pt bob close_session
expect_rc 1 "logout of a home held by a root process fails"
contains "$T/out" "the home of bob on $T/home/bob is busy: $HOLDER \(sleep, cwd\); it stays mounted" "naming the holder"
check "bob's home stays mounted" mounted bob
kill -9 "$AGENT"; wait "$AGENT" 2> /dev/null
check "agent restarts" start_agent
contains "$T/agent.log" "re-adopted the home of bob: mounted on $T/home/bob, 0 sessions, unmount pending" "re-adopted with its unmount pending"
kill "$HOLDER"; wait "$HOLDER" 2> /dev/null
check "the retry unmounts it once the holder is gone" wait_for_long bash -c "! grep -q ' $T/home/bob ' /proc/self/mountinfo"
check "and releases it" wait_for test ! -e "$R/homes/bob"

# --- 50 users at once ------------------------------------------------------------
check "the test's users are still known (the namespace's /etc holds)" bash -c "getent passwd w01 bob > /dev/null"
warm_full() { raw 'homeport 1 ping\n'; grep -q ", 2 warm connections ready" "$T/out"; }
check "the restarted agent's warm pool is full (it fills within 4 s)" wait_for warm_full
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
export -f nworkers nbd_conns; export NBDKIT_PID CONF
check "no worker left" wait_for bash -c '[ "$(nworkers)" = 0 ]'
check "no NBD connection left" wait_for bash -c "[ \"\$(nbd_conns)\" = $BASE_CONNS ]"
check "no agent fd left ($(agent_fds) vs $BASE_FDS)" test "$(agent_fds)" = "$BASE_FDS"
check "no zombie left under the agent" wait_for bash -c "! ps -o stat= --ppid $AGENT | grep -q Z"
check "no record left" test -z "$(ls "$R/homes")"

# --- shutdown: prepared homes released, homes in use kept ----------------------
SHUT="shutdown_timeout = 2s"
pt carol acct_mgmt open_session
pt bob acct_mgmt
sed -i "s/^\[agent\]/[agent]\nshutdown_timeout = 2s/" "$CONF"
kill -HUP "$AGENT"
wait_for grep -c "configuration reloaded" "$T/agent.log" > /dev/null
sleep 0.2
kill -TERM "$AGENT"
sleep 0.3
rc=0; env PAM_TYPE=account PAM_USER=dave "$HOMEPORT" -c "$CONF" pam > "$T/out" 2>&1 || rc=$?
expect_rc 1 "no new logins while shutting down"
contains "$T/out" "shutting down" "says so"
check "the agent exits after shutdown_timeout" wait_for bash -c "! kill -0 $AGENT 2>/dev/null"
wait "$AGENT" 2> /dev/null
check "bob's prepared home was released" test ! -e "$R/homes/bob"
check "carol's home in use stays mounted" mounted carol
contains "$T/agent.log" "the home of carol stays mounted \(1 session\)" "and the log says so"
check "socket and pid file removed" test ! -e "$SOCK" -a ! -e "$R/agent.pid"

# --- warm connections: the server goes away and comes back ---------------------
start_agent
wait_for bash -c '[ "$(nbd_conns)" = 3 ]'
kill -9 "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null
check "the agent notices the closed connections" wait_for grep -q "warm connection to unix:$T/nbd.sock closed by the server" "$T/agent.log"
check "nbdkit back" start_nbdkit "$T/nbd.sock" file dir="$T/srv"
export NBDKIT_PID
warm_ready() { raw 'homeport 1 ping\n'; grep -q ", $1 warm connections ready" "$T/out"; }
check "and opens 2 warm connections again" wait_for_long warm_ready 2
n=$(grep -c "on a warm connection" "$T/agent.log")
pt bob acct_mgmt open_session
expect_rc 0 "bob logs in on a new warm connection"
check "it was a warm one" test "$(grep -c "on a warm connection" "$T/agent.log")" -gt "$n"
pt bob close_session
sed -i "s/^\[nbd\]/[nbd]\nwarm_connections = 0/" "$CONF"
kill -HUP "$AGENT"
check "warm_connections = 0: none held" wait_for warm_ready 0
n=$(grep -c "on a warm connection" "$T/agent.log")
pt bob acct_mgmt open_session
expect_rc 0 "bob logs in on a fresh connection"
check "not a warm one" test "$(grep -c "on a warm connection" "$T/agent.log")" = "$n"
pt bob close_session
kill -TERM "$AGENT"
wait_for bash -c "! kill -0 $AGENT 2>/dev/null"
wait "$AGENT" 2> /dev/null

# --- the expected user: the server's cache is warmed at start --------------------
check "the last user is remembered" test "$(cat "$T/var/lib/homeport/last_user")" = bob
kill -9 "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null
check "nbdkit with a request log" start_nbdkit "$T/nbd.sock" --filter=log file dir="$T/srv" logfile="$T/nbd-requests.log"
export NBDKIT_PID
start_agent
check "the agent warms the server for bob" wait_for grep -q "cache bob: unix:$T/nbd.sock warmed for bob: first 16777216 bytes of export 'bob' cached" "$T/agent.log"
check "the server saw NBD_CMD_CACHE for 16 MiB of bob's export" bash -c "grep -c 'Cache .*offset=0x[0-9a-f]* count=0x400000' '$T/nbd-requests.log' | grep -qx 4"
pt bob acct_mgmt open_session
expect_rc 0 "bob logs in after the warming"
pt bob close_session
kill -TERM "$AGENT"; wait "$AGENT" 2> /dev/null
sed -i "s/^\[nbd\]/[nbd]\nexpected_user = /" "$CONF"
: > "$T/nbd-requests.log"
start_agent
sleep 1
check "expected_user empty: no warming" bash -c "! grep -q Cache '$T/nbd-requests.log'"
kill -TERM "$AGENT"; wait "$AGENT" 2> /dev/null
sed -i "/^expected_user = $/d; /^warm_connections = 0$/d" "$CONF"

# --- daemon mode; one agent at a time -------------------------------------------
hp agent
expect_rc 0 "agent daemonizes once ready"
AGENT=$(cat "$R/agent.pid")
check "the daemon runs" kill -0 "$AGENT"
raw 'homeport 1 ping\n'
contains "$T/out" "^ok homeport .* agent pid $AGENT," "the daemon answers on the socket"
hp agent
expect_rc 1 "a second agent refuses"
contains "$T/err" "another homeport agent is running \(pid $AGENT\)" "naming the first"
pt carol close_session
expect_rc 0 "carol logs out from the daemon's care"
check "carol's home unmounted" bash -c "! grep -q ' $T/home/carol ' /proc/self/mountinfo"
kill -TERM "$AGENT"
check "daemon stops on SIGTERM" wait_for bash -c "! kill -0 $AGENT 2>/dev/null"
if [ "$_tap_failed" -gt 0 ]; then diag "agent log:"; sed 's/^/#   /' "$T/agent.log"; fi
done_testing
