#!/usr/bin/env bash
# tests/remote/test-fake-remote.sh: self-test of the fake-remote.py double.
#
#   bash tests/remote/test-fake-remote.sh
#
# Starts the double on 127.0.0.1 (a free port), signs requests with the
# openssl command line, checks the replies with curl and prints TAP.  Needs
# python3, curl, openssl and coreutils' timeout; takes about 30 seconds.
# Exit status is non-zero when any check fails.

set -u
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FAKE=${FAKE:-$HERE/fake-remote.py}    # FAKE=... to test another copy
T=$(mktemp -d "${TMPDIR:-/tmp}/fake-remote-test.XXXXXX") || exit 1

SECRET=s3cret-for-tests
echo "$SECRET" > "$T/secret"       # with a trailing newline, which must not count
EXPIRY=2
NBD_PORT=10999

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
diag() { printf '# %s\n' "$@"; }

# ---------------------------------------------------------------------------
# Server lifetime

server_pid=
server_rc=

# start_server NAME ARGS...: start the double, wait (10 s at most) for its
# port file, and set PORT.  Output goes to $T/NAME.{out,log}.
start_server() {
    local name=$1 i
    shift
    rm -f "$T/$name.port"
    python3 "$FAKE" --port 0 --port-file "$T/$name.port" --secret-file "$T/secret" \
        --log "$T/$name.log" "$@" > "$T/$name.out" 2>&1 &
    server_pid=$!
    for i in $(seq 100); do
        [ -s "$T/$name.port" ] && break
        kill -0 "$server_pid" 2> /dev/null || break
        sleep 0.1
    done
    PORT=$(cat "$T/$name.port" 2> /dev/null)
    if [ -z "$PORT" ]; then
        diag "server $name did not start:"; sed 's/^/#   /' "$T/$name.out"
        return 1
    fi
}

# stop_server: SIGTERM, wait up to 5 s, then SIGKILL; exit status in server_rc.
stop_server() {
    local i
    server_rc=
    [ -n "$server_pid" ] || return 0
    kill -TERM "$server_pid" 2> /dev/null
    for i in $(seq 50); do
        kill -0 "$server_pid" 2> /dev/null || break
        sleep 0.1
    done
    if kill -0 "$server_pid" 2> /dev/null; then
        kill -KILL "$server_pid" 2> /dev/null
        server_rc=killed
    fi
    wait "$server_pid" 2> /dev/null
    local rc=$?
    [ -n "$server_rc" ] || server_rc=$rc
    server_pid=
}

cleanup() {
    stop_server
    [ -n "${bg_pid:-}" ] && kill "$bg_pid" 2> /dev/null && wait "$bg_pid" 2> /dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# ---------------------------------------------------------------------------
# Requests

# sign DATA [TS]: print the hmac field "ts:hex" for DATA.
sign() {
    local data=$1 ts=${2:-$(date +%s)} hex
    hex=$(printf '%s%s' "$data" "$ts" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
    printf '%s:%s' "$ts" "$hex"
}

now_ms() { date +%s%3N; }

# curl_code OUTFILE CURL-ARGS...: print the HTTP status (000 on failure).
curl_code() {
    local out=$1
    shift
    timeout 20 curl -s --max-time 15 -o "$out" -w '%{http_code}' "$@" || true
}

# post PATH DATA [HMAC]: signed POST to the current server; sets CODE, BODY
# and MS (duration).  HMAC "-" sends no hmac field at all.
post() {
    local path=$1 data=$2 mac=${3-}
    [ -n "$mac" ] || mac=$(sign "$data")
    local args=(--data-urlencode "data=$data")
    [ "$mac" = - ] || args+=(--data-urlencode "hmac=$mac")
    local t0; t0=$(now_ms)
    CODE=$(curl_code "$T/body" "${args[@]}" "$BASE$path")
    MS=$(($(now_ms) - t0))
    BODY=$(cat "$T/body" 2> /dev/null)
}

# expect DESCRIPTION CODE [BODY-REGEX]: check the last post.
expect() {
    local desc=$1 want=$2 re=${3-}
    if [ "$CODE" = "$want" ] && { [ -z "$re" ] || [[ $BODY =~ $re ]]; }; then
        ok "$desc"
    else
        not_ok "$desc"
        diag "got HTTP $CODE, body '$BODY'; want $want${re:+ and body /$re/}"
    fi
}

pres() { printf '{"login": "%s", "hostname": "%s"}' "$1" "$2"; }
hfs() { printf '{"user": "%s", "hfs": 1, "utype": "student"}' "$1"; }

# state_check DESCRIPTION PYTHON-EXPRESSION: evaluate the expression with
# s = the JSON of GET /_state.
state_check() {
    local desc=$1 expr=$2
    curl_code "$T/state" "$BASE/_state" > /dev/null
    if python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); sys.exit(0 if ('"$expr"') else 1)' \
            "$T/state" 2> "$T/state.err"; then
        ok "$desc"
    else
        not_ok "$desc"; diag "false: $expr"; sed 's/^/#   /' "$T/state" "$T/state.err"; echo
    fi
}

# wait_gone LOGIN: poll /_state (at most 10 s) until LOGIN has no presence.
wait_gone() {
    local i
    for i in $(seq 100); do
        curl_code "$T/state" "$BASE/_state" > /dev/null
        python3 -c 'import json, sys; sys.exit(sys.argv[2] in json.load(open(sys.argv[1]))["presence"])' \
            "$T/state" "$1" 2> /dev/null && return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------
# Options

python3 "$FAKE" --listen 0.0.0.0 --secret-file "$T/secret" --port-file "$T/bad.port" \
    > "$T/bad.out" 2>&1 &
bad_pid=$!
( sleep 10; kill "$bad_pid" 2> /dev/null ) 2> /dev/null &
watchdog=$!
wait "$bad_pid"; rc=$?
kill "$watchdog" 2> /dev/null; wait "$watchdog" 2> /dev/null
if [ "$rc" = 2 ] && [ ! -e "$T/bad.port" ] && grep -q 127.0.0.0/8 "$T/bad.out"; then
    ok "--listen 0.0.0.0 is refused"
else
    not_ok "--listen 0.0.0.0 is refused"; diag "exit $rc"; sed 's/^/#   /' "$T/bad.out"
fi

rc=0; timeout 10 python3 "$FAKE" --port 0 > "$T/bad.out" 2>&1 || rc=$?
if [ "$rc" = 2 ]; then ok "--secret-file is required"; else not_ok "--secret-file is required (exit $rc)"; fi

# ---------------------------------------------------------------------------
# Plain HTTP: presence, signatures, HFS

if ! start_server http --expiry "$EXPIRY" --nbd-port "$NBD_PORT" --migrate-seconds 2 \
        --fail-user 'bob:500:image of bob is corrupt' --fail-user 'carol:404:no home for carol' \
        --fail-user 'dan:503:busy: try later'; then
    not_ok "server starts and writes its port file"
    echo "1..$n"; exit 1
fi
ok "server starts and writes its port file (port $PORT)"
BASE=http://127.0.0.1:$PORT

CODE=$(curl_code "$T/body" "$BASE/_health"); BODY=$(cat "$T/body")
expect "GET /_health" 200 '^ok$'

if ! ss -Hltn "sport = :$PORT" 2> /dev/null | grep -q .; then
    n=$((n + 1)); echo "ok $n - listens only on 127.0.0.1 # SKIP no usable ss"
elif ss -Hltn "sport = :$PORT" | awk '{print $4}' | grep -qv '^127\.0\.0\.1:'; then
    not_ok "listens only on 127.0.0.1"; ss -Hltn "sport = :$PORT" | sed 's/^/#   /'
else
    ok "listens only on 127.0.0.1"
fi

# Presence --------------------------------------------------------------------
post /login "$(pres alice hostA)"
expect "signed /login (secret file's trailing newline ignored)" 200 '^OK$'
post /login "$(pres alice hostA)"
expect "/login again from the same host" 200
post /login "$(pres alice hostB)"
expect "/login from another host is 423 naming the first" 423 '^alice is already logged in on hostA$'
post /heartbeat "$(pres alice hostB)"
expect "/heartbeat from another host is 423" 423 'hostA'

hb_codes=
for i in 1 2 3 4 5 6; do
    sleep 0.5
    post /heartbeat "$(pres alice hostA)"
    hb_codes+=" $CODE"
done
if [ "$hb_codes" = " 200 200 200 200 200 200" ]; then
    ok "six heartbeats over 3 s (expiry $EXPIRY s) all 200"
else
    not_ok "six heartbeats over 3 s all 200: got$hb_codes"
fi
post /login "$(pres alice hostB)"
expect "heartbeats keep the presence alive past --expiry" 423 'hostA'
state_check "/_state lists alice on hostA with expires_in <= expiry" \
    "s['presence']['alice']['hostname'] == 'hostA' and 0 < s['presence']['alice']['expires_in'] <= $EXPIRY"

t0=$(now_ms)
if wait_gone alice; then
    gone_ms=$(($(now_ms) - t0))
    ok "without heartbeats the presence expires (after $gone_ms ms)"
else
    not_ok "without heartbeats the presence expires"
fi
post /login "$(pres alice hostB)"
expect "after expiry /login from another host is 200" 200

post /logout "$(pres alice hostA)"
expect "/logout from the wrong host is 423" 423 '^alice is already logged in on hostB$'
post /logout "$(pres alice hostB)"
expect "/logout from the owning host" 200
post /login "$(pres alice hostA)"
expect "/logout frees the login for another host" 200
post /logout "$(pres alice hostA)"
post /logout "$(pres alice hostA)"
expect "/logout with no presence is 200 (idempotent)" 200
post /heartbeat "$(pres erin hostC)"
expect "/heartbeat with no presence (re)creates it" 200
long=$(printf 'h%.0s' $(seq 3000))
post /login "$(pres ivan "$long")"
if [ "$CODE" = 200 ] && [ "$MS" -lt 900 ]; then
    ok "a 3 kB body (curl 7 sends Expect: 100-continue) is answered at once: $MS ms"
else
    not_ok "a 3 kB body is answered at once: HTTP $CODE in $MS ms"
fi
state_check "/_state shows erin on hostC and no alice" \
    "s['presence'].get('erin', {}).get('hostname') == 'hostC' and 'alice' not in s['presence']"

# Signatures ------------------------------------------------------------------
data=$(pres mallory hostM)
ts=$(date +%s)
post /login "$data" "$ts:$(printf '%s%s' "$data" "$ts" | openssl dgst -sha256 -hmac wrong -r | cut -d' ' -f1)"
expect "signature with the wrong secret is 403" 403 '^bad signature$'
post /login "$data" "$(sign "$(pres mallory hostX)")"
expect "signature of other data is 403" 403 '^bad signature$'
post /login "$data" -
expect "missing hmac field is 403" 403 '^missing signature$'
CODE=$(curl_code "$T/body" --data-urlencode "hmac=$(sign "$data")" "$BASE/login"); BODY=$(cat "$T/body")
expect "missing data field is 403" 403 '^missing signature$'
post /login "$data" "$(sign "$data" $(($(date +%s) - 300)))"
expect "timestamp 300 s old is 403" 403 '^expired signature$'
post /login "$data" "$(sign "$data" $(($(date +%s) + 300)))"
expect "timestamp 300 s ahead is 403" 403 '^expired signature$'
post /login "$data" "$(sign "$data" $(($(date +%s) - 100)))"
expect "timestamp 100 s old is accepted" 200
post /login "$data" "garbage"
expect "unparsable hmac field is 403" 403 '^bad signature$'
mac=$(sign "$data")
post /login "$data" "${mac^^}"
expect "uppercase hex is 403" 403 '^bad signature$'
post /login "$data" "${mac%?}"
expect "truncated hex is 403" 403 '^bad signature$'

post /login '{"login": "x", "hostname": ' 
expect "invalid JSON in data is 400" 400 'JSON'
post /login '{"login": "x"}'
expect "missing key in data is 400" 400 'hostname'
post /nowhere "$data"
expect "unknown path is 404" 404

# HFS -------------------------------------------------------------------------
post /get_hfs "$(hfs alice)"
if [ "$CODE" = 200 ] && [ "$MS" -ge 2000 ]; then
    ok "first /get_hfs takes >= 2 s (--migrate-seconds 2): $MS ms"
else
    not_ok "first /get_hfs takes >= 2 s: HTTP $CODE in $MS ms"
fi
expect "/get_hfs returns the configured NBD port" 200 "^\\{\"port\": $NBD_PORT\\}\$"
post /get_hfs "$(hfs alice)"
if [ "$CODE" = 200 ] && [ "$MS" -lt 1000 ]; then
    ok "second /get_hfs is fast: $MS ms"
else
    not_ok "second /get_hfs is fast: HTTP $CODE in $MS ms"
fi
CODE=$(curl_code /dev/null -D "$T/headers" --data-urlencode "data=$(hfs alice)" \
    --data-urlencode "hmac=$(sign "$(hfs alice)")" "$BASE/get_hfs")
if grep -qi '^content-type: application/json' "$T/headers"; then
    ok "/get_hfs answers application/json"
else
    not_ok "/get_hfs answers application/json"; sed 's/^/#   /' "$T/headers"
fi

# A migration in progress must not hold up other requests.
timeout 20 curl -s --max-time 15 -o /dev/null --data-urlencode "data=$(hfs frank)" \
    --data-urlencode "hmac=$(sign "$(hfs frank)")" "$BASE/get_hfs" &
bg_pid=$!
sleep 0.3
post /login "$(pres grace hostG)"
if [ "$CODE" = 200 ] && [ "$MS" -lt 1000 ]; then
    ok "/login is served while another user's /get_hfs migrates: $MS ms"
else
    not_ok "/login is served while another user's /get_hfs migrates: HTTP $CODE in $MS ms"
fi
wait "$bg_pid"; bg_pid=

post /get_hfs "$(hfs bob)"
expect "--fail-user bob:500 gives 500 and its body" 500 '^image of bob is corrupt$'
post /get_hfs "$(hfs carol)"
expect "--fail-user carol:404 gives 404 and its body" 404 '^no home for carol$'
post /get_hfs "$(hfs dan)"
expect "--fail-user body may contain colons" 503 '^busy: try later$'
post /get_hfs '{"user": "alice"}'
expect "/get_hfs without hfs/utype is 400" 400 'hfs'

# Inspection ------------------------------------------------------------------
state_check "/_state records /get_hfs calls with their data and status" \
    "any(c['path'] == '/get_hfs' and c['status'] == 500 and c['data'] == {'user': 'bob', 'hfs': 1, 'utype': 'student'} for c in s['calls'])"
state_check "/_state records rejected calls" \
    "any(c['path'] == '/login' and c['status'] == 403 for c in s['calls']) and any(c['status'] == 423 for c in s['calls'])"
state_check "/_state calls have a unix time" \
    "all(abs(c['time'] - __import__('time').time()) < 600 for c in s['calls'])"

if timeout 20 curl -sv --max-time 15 -o /dev/null "$BASE/_health" -o /dev/null "$BASE/_health" 2>&1 \
        | grep -qi 're-using existing connection'; then
    ok "keep-alive: curl reuses the connection"
else
    not_ok "keep-alive: curl reuses the connection"
fi

if grep -qx 'POST /login 423' "$T/http.log" && grep -qx 'GET /_state 200' "$T/http.log"; then
    ok "--log has 'METHOD PATH STATUS' lines"
else
    not_ok "--log has 'METHOD PATH STATUS' lines"; sed 's/^/#   /' "$T/http.log"
fi

# SIGTERM while a migration sleeps: the server must not wait for it.
timeout 20 curl -s --max-time 15 -o /dev/null --data-urlencode "data=$(hfs henry)" \
    --data-urlencode "hmac=$(sign "$(hfs henry)")" "$BASE/get_hfs" &
bg_pid=$!
sleep 0.3
t0=$(now_ms)
stop_server
stop_ms=$(($(now_ms) - t0))
wait "$bg_pid"; bg_pid=
if [ "$server_rc" = 0 ] && [ "$stop_ms" -lt 1500 ]; then
    ok "SIGTERM exits 0 at once, even during a migration ($stop_ms ms)"
else
    not_ok "SIGTERM exits 0 at once, even during a migration (got $server_rc after $stop_ms ms)"
fi
if [ -s "$T/http.out" ]; then
    not_ok "nothing on stdout/stderr without errors"; sed 's/^/#   /' "$T/http.out"
else
    ok "nothing on stdout/stderr without errors"
fi

# ---------------------------------------------------------------------------
# HTTPS with a throwaway CA

mkdir "$T/pki"
(
    cd "$T/pki" || exit 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout ca.key -out ca.pem -days 2 -subj "/CN=fake-remote test CA" &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout server.key -out server.csr -subj "/CN=localhost" &&
    printf '%s\n' "subjectAltName = DNS:localhost" "basicConstraints = CA:FALSE" \
        "extendedKeyUsage = serverAuth" > server.ext &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out server.pem -days 2 -extfile server.ext
) > "$T/pki.out" 2>&1
if [ -s "$T/pki/server.pem" ]; then
    ok "openssl makes a CA and a server certificate for localhost"
else
    not_ok "openssl makes a CA and a server certificate for localhost"; sed 's/^/#   /' "$T/pki.out"
fi

if start_server https --tls-cert "$T/pki/server.pem" --tls-key "$T/pki/server.key"; then
    ok "HTTPS server starts"
    tls=(--resolve "localhost:$PORT:127.0.0.1")
    BASE=https://localhost:$PORT
    CODE=$(curl_code "$T/body" "${tls[@]}" --cacert "$T/pki/ca.pem" "$BASE/_health"); BODY=$(cat "$T/body")
    expect "curl --cacert CA https://localhost:PORT/_health" 200 '^ok$'
    rc=0; timeout 20 curl -s --max-time 15 -o /dev/null "${tls[@]}" "$BASE/_health" || rc=$?
    if [ "$rc" = 60 ]; then
        ok "without --cacert curl rejects the certificate (exit 60)"
    else
        not_ok "without --cacert curl rejects the certificate (exit $rc, want 60)"
    fi
    CODE=$(curl_code "$T/body" "${tls[@]}" --cacert "$T/pki/ca.pem" \
        --data-urlencode "data=$(pres alice hostA)" --data-urlencode "hmac=$(sign "$(pres alice hostA)")" \
        "$BASE/login"); BODY=$(cat "$T/body")
    expect "signed /login over HTTPS" 200 '^OK$'
    CODE=$(curl_code "$T/body" "${tls[@]}" --cacert "$T/pki/ca.pem" "$BASE/_health"); BODY=$(cat "$T/body")
    expect "server still answers after a failed handshake" 200 '^ok$'
    stop_server
    if [ "$server_rc" = 0 ]; then ok "HTTPS server: SIGTERM exits 0"; else not_ok "HTTPS server: SIGTERM exits 0 (got $server_rc)"; fi
else
    not_ok "HTTPS server starts"
fi

echo "1..$n"
[ "$failed" = 0 ]
