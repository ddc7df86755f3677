#!/usr/bin/env bash
# Logins over TLS with a pre-shared key: nbdkit --tls=require --tls-psk on
# 127.0.0.1, the agent holding warm connections that did their TLS
# handshake before any login, pamtester through the shipped PAM lines:
# account and open_session on a warm TLS connection, a write, the logout,
# the data read back from the image.
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
check "a test PKI with a PSK file" make_pki
PORT=$(free_port)
SESSION_CONF="kill_grace = 1s" home_conf "servers = 127.0.0.1:$PORT
warm_connections = 2
spare_workers = 0
$(tls_psk_conf)"
hp mkhome alice
check "nbdkit --tls=require --tls-psk on 127.0.0.1:$PORT" \
    start_nbdkit_tcp "$PORT" --tls=require --tls-psk="$T/pki/psk" file dir="$T/srv"
hp boot
expect_rc 0 "the boot probe passes over TLS with the PSK"
# PSK in TLS 1.3 is SHA-256, which rules out AES-256-GCM: libnbd is built
# with GnuTLS's PERFORMANCE order, so that it is AES-128-GCM, not ChaCha20
# (eight times slower on a processor with AES instructions).
grep -q aes /proc/cpuinfo && aes=AES-128-GCM || aes=CHACHA20-POLY1305
if own_libnbd; then
    contains "$T/out" "TLS \(PSK as thin01\): TLS1\.3 cipher $aes " "the report says TLS 1.3 and $aes"
    lacks "$T/out" "server certificate" "  and no server certificate (PSK)"
else
    skip "the report says TLS 1.3 and $aes" "$OWN_LIBNBD_WHY"
fi
pam_service
check "the agent starts" start_agent_fg
nbd_conns() { ss -Htn state established "( sport = :$PORT )" | wc -l; }
export -f nbd_conns; export PORT
check "2 warm connections through the TLS handshake before any login" wait_for bash -c '[ "$(nbd_conns)" = 2 ]'
sleep 1
lacks "$T/agent.log" "closed by the server" "idle TLS connections are not taken for closed ones"

pt alice acct_mgmt open_session
expect_rc 0 "alice logs in over TLS"
contains "$T/agent.log" "account alice: on a warm connection to 127.0.0.1:$PORT" "on a warm connection"
contains "$T/out" "Home of alice mounted on $T/home/alice" "greeter: mounted"
echo "written over TLS" > "$T/home/alice/note"
pt alice close_session
expect_rc 0 "alice logs out"
check "her home is unmounted" bash -c "! grep -q ' $T/home/alice ' /proc/self/mountinfo"
check "the note is in the image" bash -c "debugfs -R 'cat /note' '$T/srv/alice' 2> /dev/null | grep -qx 'written over TLS'"
check "the pool is refilled" wait_for bash -c '[ "$(nbd_conns)" = 2 ]'
lacks "$T/nbdkit.log" "gnutls" "nbdkit saw no TLS error"
done_testing
