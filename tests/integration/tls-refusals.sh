#!/usr/bin/env bash
# With tls = require nothing goes in clear and nothing is attached when TLS
# fails: a server that does not offer TLS, a server whose certificate the
# site's CA did not sign, a machine without a certificate or with one of
# another CA at a server that checks machines, a wrong pre-shared key.
# Each is refused at account with a greeter line naming the server and
# what to check, and the boot report says the same.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lib-tls.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
stop_all() { [ -n "${AGENT:-}" ] && kill -9 "$AGENT" 2> /dev/null; stop_homes; }
CLEANUP_HOOK=stop_all

requires_tls pamtester
add_users alice:2001
mkdir -p "$T/srv"
check "a test PKI" make_pki
PORT=$(free_port)
conf() { # conf TLS-LINES
    home_conf "servers = localhost:$PORT
warm_connections = ${WARM:-0}
$1"
}
conf "$(tls_x509_conf)"
hp mkhome alice
pam_service
server() { # server NBDKIT-TLS-OPTIONS…: (re)start the captive server
    [ -n "${NBDKIT_PID:-}" ] && { kill "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null; }
    start_nbdkit_tcp "$PORT" "$@" file dir="$T/srv"
}
nothing_attached() {
    ! grep " $R/" /proc/self/mountinfo | grep -v " $R/spare[/ ]" | grep -qv " $R/stage " &&
        ! grep -q " $T/home/alice " /proc/self/mountinfo &&
        [ ! -e "$R/homes/alice" ] && [ "$(losetup -a | grep -c "$R/")" = 0 ]
}
# refused WHAT PATTERN: account and the boot probe both refuse, saying PATTERN
refused() {
    kill -HUP "$AGENT"
    wait_for_secs 5 bash -c "[ \$(grep -c 'configuration reloaded' '$T/agent.log') -ge $((++reloads)) ]"
    pt alice acct_mgmt
    expect_rc 1 "$1: account refused"
    contains "$T/out" "localhost:$PORT: export 'alice': $2" "  the greeter says why, naming the server"
    check "  nothing attached or mounted" nothing_attached
    hp boot
    contains "$T/out" "^nbd localhost:$PORT: FAILED during handshake: $2" "  the boot report says it too"
}
reloads=0

check "a server in clear" server
check "the agent starts (tls = require)" start_agent_fg
refused "no TLS on the server" "the server does not offer TLS, and tls = require"
server --tls=require --tls-certificates="$T/pki/rogue/server"
refused "a certificate of another CA" "the server's certificate is not signed by tls_ca_file's CA"
server --tls=require --tls-certificates="$T/pki/server" --tls-verify-peer
conf "tls_ca_file = $T/pki/ca-cert.pem"
refused "no machine certificate" "TLS handshake failed: the server may want a machine certificate"
conf "tls_ca_file = $T/pki/ca-cert.pem
tls_cert_file = $T/pki/stranger-cert.pem
tls_key_file = $T/pki/stranger-key.pem"
refused "a machine certificate of another CA" "TLS handshake failed: the server does not accept this machine's certificate"
server --tls=require --tls-psk="$T/pki/psk"
conf "$(tls_psk_conf "$T/pki/psk-wrong")"
sed -i "s/^servers = localhost:/servers = 127.0.0.1:/" "$CONF"
PORT_LABEL=127.0.0.1
refused_psk() {
    kill -HUP "$AGENT"
    wait_for_secs 5 bash -c "[ \$(grep -c 'configuration reloaded' '$T/agent.log') -ge $((++reloads)) ]"
    pt alice acct_mgmt
    expect_rc 1 "a wrong pre-shared key: account refused"
    contains "$T/out" "127.0.0.1:$PORT: export 'alice': TLS handshake failed: the server does not accept this machine's pre-shared key" "  the greeter says why"
    check "  nothing attached or mounted" nothing_attached
}
refused_psk

# the warm pool says why its connections fail, once a round, and backs off
WARM=2 conf "$(tls_psk_conf "$T/pki/psk-wrong")"
sed -i "s/^servers = localhost:/servers = 127.0.0.1:/" "$CONF"
kill -HUP "$AGENT"
check "warm connections that fail TLS say why" wait_for_secs 5 grep -q "warm connection to 127.0.0.1:$PORT: TLS handshake failed: the server does not accept this machine's pre-shared key" "$T/agent.log"
contains "$T/agent.log" "again in [0-9]+ ms" "  and back off"

# and with the right key the same agent logs alice in
conf "$(tls_psk_conf)"
sed -i "s/^servers = localhost:/servers = 127.0.0.1:/" "$CONF"
kill -HUP "$AGENT"
sleep 0.5
pt alice acct_mgmt open_session
expect_rc 0 "the right key: alice logs in"
pt alice close_session
expect_rc 0 "and out"
done_testing
