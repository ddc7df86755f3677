#!/usr/bin/env bash
# Home file servers and presence over HTTP, through pamtester: the agent
# asks the HFS where a home is (POST /get_hfs) and the presence service
# whether the user may log in here (/login, /heartbeat, /logout), with
# signed requests, against tests/remote/fake-remote.py (a test double of
# the reference deployment).  Two machines are two agents with their own
# run_dir and hostname.  HTTPS with a test CA made here.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root
FAKE=$TOP/tests/remote/fake-remote.py

stop_all() {
    for p in ${AGENTS:-}; do kill -9 "$p" 2> /dev/null; done
    stop_homes "$T/b/run/homeport" "$T/b.conf" # machine B first: its own run_dir
    stop_homes
}
CLEANUP_HOOK=stop_all

requires pamtester curl openssl python3
requires_fuse

add_users alice:2001 bob:2002 carol:2003 dave:2004
mkdir -p "$T/srv" "$T/skel" "$T/pam.d" "$T/b/home" "$T/b/run" "$T/tls"
# The services' host names, for this namespace only (TLS checks names).
{ grep -v '^127\.0\.0\.1' /etc/hosts; echo "127.0.0.1 localhost hfs1 presence"; } > "$T/hosts"
mount --bind "$T/hosts" /etc/hosts
printf 'the site secret\n' > "$T/secret"
chmod 600 "$T/secret"
printf 'not the site secret\n' > "$T/wrong-secret"
chmod 600 "$T/wrong-secret"

NBD_PORT=$(free_port)
check "nbdkit serves the image dir on 127.0.0.1:$NBD_PORT" start_nbdkit_tcp "$NBD_PORT" file dir="$T/srv"

# start_fake [OPTIONS…]: (re)start the double, on port FPORT.
FPORT=$(free_port)
start_fake() {
    [ -n "${FAKE_PID:-}" ] && { kill "$FAKE_PID" 2> /dev/null; wait "$FAKE_PID" 2> /dev/null; }
    rm -f "$T/fake.port"
    FAKE_SCHEME=http
    case " $* " in *" --tls-cert "*) FAKE_SCHEME=https ;; esac
    python3 "$FAKE" --port "$FPORT" --port-file "$T/fake.port" --secret-file "$T/secret" \
        --nbd-port "$NBD_PORT" --expiry 3 --log "$T/fake.log" "$@" 2>> "$T/fake.err" &
    FAKE_PID=$!
    track "$FAKE_PID"
    wait_for test -s "$T/fake.port"
}
# the double's state (over https, unchecked: this is the test looking)
state() { curl -sk --max-time 5 "$FAKE_SCHEME://127.0.0.1:$FPORT/_state" > "$T/state.json"; }
presence_of() { state; json_get "$T/state.json" "j['presence'].get('$1', {}).get('hostname', '-')"; }
ncalls() { state; json_get "$T/state.json" "len([c for c in j['calls'] if c['path'] == '$1' and $2])"; }
# signed PATH DATA: a request of our own, signed like the agent's
signed() {
    local ts hex
    ts=$(date +%s)
    hex=$(printf '%s%s' "$2" "$ts" | openssl dgst -sha256 -hmac "the site secret" -r | cut -d' ' -f1)
    curl -s --max-time 5 -o "$T/signed.out" -w '%{http_code}' --data-urlencode "data=$2" \
        --data-urlencode "hmac=$ts:$hex" "http://127.0.0.1:$FPORT$1"
}

# conf FILE MACHINE-DIR HOSTNAME ["key = value" for [remote]…]: a
# machine's config; the lines given replace the defaults here.
conf() {
    local file=$1 dir=$2 host=$3 scheme=${SCHEME:-http}
    shift 3
    cat > "$file" <<C
[agent]
run_dir = $dir/run/homeport
state_dir = $dir/var/lib/homeport
log = stderr
[boot]
staging_dir = $dir/home/profiletemp
home_root = $dir/home
flag_files = $T/var/tmp/horizon-pam_session_*.flag
[nbd]
warm_connections = 0
[home]
mount_dir = $dir/home/%u
attach = fuse
[session]
kill_grace = 1s
pam_timeout = 60s
[remote]
locator = hfs
hfs_url = $scheme://hfs%d:$FPORT
hfs_number = 1
hfs_timeout = 20s
progress_interval = 1s
presence = on
presence_url = $scheme://presence:$FPORT/
heartbeat_interval = 1s
hostname = $host
secret_file = $T/secret
http_connect_timeout = 2s
http_timeout = 6s
[server]
image_dir = $T/srv
skel = $T/skel
default_size = 32M
C
    local kv
    for kv in "$@"; do
        sed -i "/^${kv%% =*} = /d; /^\[remote\]/a $kv" "$file"
    done
}
start_fake
conf "$CONF" "$T" pc-a
conf "$T/b.conf" "$T/b" pc-b
for u in alice bob carol dave; do hp mkhome "$u"; done

# PAM services: one a machine, from the shipped snippets.
snippet() { grep -v '^#' "$TOP/configs/pam.d/$1" | sed "s|/usr/local/sbin/homeport pam|$HOMEPORT -c $2 pam|"; }
for m in a b; do
    c=$CONF
    [ $m = b ] && c=$T/b.conf
    { echo "auth required pam_permit.so"; snippet debian-common-account "$c"; snippet debian-common-session "$c"; } > "$T/pam.d/hp-$m"
done
mount --bind "$T/pam.d" /etc/pam.d

# pt MACHINE USER OPS…: pamtester, output in $T/out, exit in $rc
pt() {
    local m=$1
    shift
    rc=0
    timeout 90 pamtester -v "hp-$m" "$@" > "$T/out" 2>&1 || rc=$?
}
AGENTS=""
# start_agent CONF: the agent of a machine, in the foreground; AGENT is its pid
start_agent() {
    local c=$1 dir
    dir=$(sed -n 's/^run_dir = //p' "$c")
    "$HOMEPORT" -c "$c" -v agent -f 2>> "$T/agent-$(basename "$c").log" &
    AGENT=$!
    AGENTS="$AGENTS $AGENT"
    track "$AGENT"
    wait_for bash -c "test \"\$(cat '$dir/agent.pid' 2>/dev/null)\" = $AGENT"
}
# restart_a DESCRIPTION ["key = value"…]: pc-a's agent again, on a new config
restart_a() {
    local desc=$1
    shift
    kill "$A" 2> /dev/null
    wait "$A" 2> /dev/null
    conf "$CONF" "$T" pc-a "$@"
    check "agent of pc-a starts ($desc)" start_agent "$CONF"
    A=$AGENT
}
check "the double answers" curl -sf --max-time 5 "http://127.0.0.1:$FPORT/_health" -o /dev/null
check "agent of pc-a starts" start_agent "$CONF"
A=$AGENT
check "agent of pc-b starts" start_agent "$T/b.conf"
B=$AGENT

# --- an allowed login: presence, then the HFS says where the home is -------
pt a alice acct_mgmt open_session
expect_rc 0 "pc-a: alice logs in"
contains "$T/out" "^Requesting home of alice from hfs1:$NBD_PORT\.\.\.$" "greeter: the home comes from the HFS's host and port"
check "alice's home is mounted on pc-a" is_mounted "$T/home/alice"
check "the presence service has alice on pc-a" test "$(presence_of alice)" = pc-a
check "/get_hfs was asked {user alice, hfs 1, utype user}" test "$(ncalls /get_hfs "c['data'] == {'user': 'alice', 'hfs': 1, 'utype': 'user'} and c['status'] == 200")" = 1
check "/login {login alice, hostname pc-a}: 200" test "$(ncalls /login "c['data'] == {'login': 'alice', 'hostname': 'pc-a'} and c['status'] == 200")" = 1

# --- the second machine is refused while pc-a holds alice -------------------
pt b alice acct_mgmt
expect_rc 1 "pc-b: alice refused"
contains "$T/out" "Login refused: alice is already logged in on pc-a" "greeter: the service's reason"
check "no home attached on pc-b" test ! -e "$T/b/run/homeport/homes/alice"
check "nothing mounted under pc-b (but its agent's stage dir)" bash -c "! grep ' $T/b/' /proc/self/mountinfo | grep -qv ' $T/b/run/homeport/stage '"
check "no /get_hfs from pc-b" test "$(ncalls /get_hfs "True")" = 1

# --- heartbeats keep the presence past its expiry (3 s) ---------------------
sleep 5
check "heartbeats from pc-a every second" test "$(ncalls /heartbeat "c['data'] == {'login': 'alice', 'hostname': 'pc-a'} and c['status'] == 200")" -ge 3
check "still alice on pc-a after 5 s (expiry 3 s)" test "$(presence_of alice)" = pc-a
pt b alice acct_mgmt
expect_rc 1 "pc-b: still refused"

# --- logout frees it --------------------------------------------------------
pt a alice close_session
expect_rc 0 "pc-a: alice logs out"
check "home unmounted on pc-a" bash -c "! grep -q ' $T/home/alice ' /proc/self/mountinfo"
check "/logout sent" test "$(ncalls /logout "c['data'] == {'login': 'alice', 'hostname': 'pc-a'} and c['status'] == 200")" = 1
check "the presence service forgot alice" test "$(presence_of alice)" = -
n=$(ncalls /heartbeat "c['data']['login'] == 'alice'")
sleep 2.5
check "no more heartbeats for alice" test "$(ncalls /heartbeat "c['data']['login'] == 'alice'")" = "$n"
pt b alice acct_mgmt open_session
expect_rc 0 "pc-b: alice logs in now"
check "on pc-b's home dir" is_mounted "$T/b/home/alice"
pt b alice close_session
expect_rc 0 "pc-b: alice logs out"

# --- a denied login: bob is logged in elsewhere ------------------------------
check "bob logged in on pc-x (by hand)" test "$(signed /login '{"login": "bob", "hostname": "pc-x"}')" = 200
pt a bob acct_mgmt
expect_rc 1 "pc-a: bob refused"
contains "$T/out" "^Login refused: bob is already logged in on pc-x$" "greeter: the 423 reason"
check "no /get_hfs for bob" test "$(ncalls /get_hfs "c['data']['user'] == 'bob'")" = 0
check "no home record for bob" test ! -e "$T/run/homeport/homes/bob"
check "pc-x still holds bob" test "$(presence_of bob)" = pc-x

# --- the HFS refuses: its reason, chained; the presence is given back --------
start_fake --fail-user "carol:404:no home for carol on this server"
pt a carol acct_mgmt
expect_rc 1 "pc-a: carol's home cannot be found"
contains "$T/out" "^While retrieving the home of carol: home file server http://hfs1:$FPORT/get_hfs: 404: no home for carol on this server$" "greeter: the HFS's reason, chained"
check "a 4xx is not retried" test "$(ncalls /get_hfs "c['data']['user'] == 'carol'")" = 1
check "carol's presence given back" test "$(presence_of carol)" = -
start_fake --fail-user "carol:503:busy moving images"
pt a carol acct_mgmt
expect_rc 1 "pc-a: carol, HFS busy"
contains "$T/out" "503: busy moving images$" "greeter: the 5xx reason"
check "a 5xx is retried (3 attempts: http_retries 2)" test "$(ncalls /get_hfs "c['data']['user'] == 'carol'")" = 3

# --- a slow migration: progress, then the home ------------------------------
start_fake --migrate-seconds 4
pt a dave acct_mgmt
expect_rc 0 "pc-a: dave's account waits for the migration"
check "greeter: 'being moved' messages while it waits" test "$(grep -c '^The home of dave is being moved to its file server, please wait ([0-9]* s)\.\.\.$' "$T/out")" -ge 2
contains "$T/out" "^Home of dave is ready$" "then the home is ready"
pt a dave open_session close_session
expect_rc 0 "pc-a: dave's session"

# --- the wrong secret: a configuration error --------------------------------
restart_a "another secret" "secret_file = $T/wrong-secret"
pt a alice acct_mgmt
expect_rc 1 "pc-a: alice refused: the service refused the signature"
contains "$T/out" "the presence service http://presence:$FPORT/login refused our signature \(403: bad signature\): configuration error: check that $T/wrong-secret holds the site's secret" "greeter: a configuration error, naming the file"

# --- a secret others can read: no reload, no start ---------------------------
chmod 644 "$T/wrong-secret"
kill -HUP "$A"
check "a reload is refused, the running configuration kept" wait_for grep -q "reload: secret $T/wrong-secret has mode 0644: .*; keeping the running configuration" "$T/agent-homeport.conf.log"
kill "$A"; wait "$A" 2> /dev/null
hp -v agent -f
expect_rc 1 "the agent refuses a secret of mode 644"
contains "$T/err" "secret $T/wrong-secret has mode 0644: group and others must not have access \(chmod 600 $T/wrong-secret\)" "and says why"

# --- the services are down ---------------------------------------------------
kill "$FAKE_PID"; wait "$FAKE_PID" 2> /dev/null; FAKE_PID=
restart_a "services down"
s=$(date +%s)
pt a alice acct_mgmt
e=$(date +%s)
expect_rc 1 "presence down, presence_fail = closed: refused"
contains "$T/out" "^While checking where alice is logged in: cannot reach the presence service http://presence:$FPORT/login: .*; logins are refused while it is down \(presence_fail = closed\)$" "greeter: the service is down"
check "within http_timeout (6 s) and a bit: $((e - s)) s" test $((e - s)) -le 10
restart_a "presence_fail = open" "presence_fail = open" "hfs_timeout = 4s"
s=$(date +%s)
pt a alice acct_mgmt
e=$(date +%s)
expect_rc 1 "presence down but open: the HFS is down too"
contains "$T/out" "^While retrieving the home of alice: cannot reach the home file server http://hfs1:$FPORT/get_hfs: " "greeter: the HFS cannot be reached"
check "within hfs_timeout (4 s) and a bit: $((e - s)) s" test $((e - s)) -le 8
contains "$T/agent-homeport.conf.log" "letting alice in \(presence_fail = open\)" "the agent logs that it let alice in"
kill "$A"; wait "$A" 2> /dev/null

# --- HTTPS with a test CA ----------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=homeport test CA" \
    -keyout "$T/tls/ca.key" -out "$T/tls/ca.pem" > /dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj "/CN=hfs1" -keyout "$T/tls/srv.key" \
    -out "$T/tls/srv.csr" > /dev/null 2>&1
printf 'subjectAltName=DNS:hfs1,DNS:presence\n' > "$T/tls/ext"
openssl x509 -req -in "$T/tls/srv.csr" -CA "$T/tls/ca.pem" -CAkey "$T/tls/ca.key" \
    -CAcreateserial -days 2 -extfile "$T/tls/ext" -out "$T/tls/srv.pem" > /dev/null 2>&1
check "test CA and server certificate made" test -s "$T/tls/srv.pem"
start_fake --tls-cert "$T/tls/srv.pem" --tls-key "$T/tls/srv.key"
SCHEME=https restart_a https "ca_file = $T/tls/ca.pem"
pt a alice acct_mgmt open_session close_session
expect_rc 0 "pc-a: alice logs in and out over HTTPS"
check "over https: /login, /get_hfs, /logout" test "$(ncalls /login "c['status'] == 200")$(ncalls /get_hfs "c['status'] == 200")$(ncalls /logout "c['status'] == 200")" = 111
SCHEME=https restart_a "https, the system's CAs"
pt a alice acct_mgmt
expect_rc 1 "an unknown CA is refused"
contains "$T/out" "cannot reach the presence service https://presence:$FPORT/login: " "greeter: the TLS failure"
check "nothing more reached the service" test "$(ncalls /login "True")" = 1

# --- the admin's mount asks the HFS too --------------------------------------
SCHEME=https conf "$CONF" "$T" pc-a "ca_file = $T/tls/ca.pem"
hp mount bob
expect_rc 0 "homeport mount bob (locator = hfs)"
contains "$T/out" "^Requesting home of bob from hfs1:$NBD_PORT\.\.\.$" "it asked the HFS"
hp umount bob
expect_rc 0 "homeport umount bob"
done_testing
