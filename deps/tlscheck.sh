#!/usr/bin/env bash
# deps/tlscheck.sh PREFIX
#
# Proves that the static libnbd in PREFIX does TLS: links deps/tlscheck.c
# with the flags in PREFIX/link.mk (as deps/linkcheck.sh does) and runs it
# against a captive nbdkit on a Unix socket in a temporary directory, with
# PSK and with X.509 certificates made here by certtool.  Cases that must
# fail (wrong PSK; a client certificate from another CA when nbdkit verifies
# the client) are checked to fail.  Needs nbdkit and certtool (gnutls-bin).
# Listens on nothing but the Unix socket; every step has a timeout; nbdkit
# and the temporary directory are removed on every exit path.
set -euo pipefail
export LC_ALL=C

[ $# -eq 1 ] || { echo "usage: $0 PREFIX" >&2; exit 2; }
PREFIX=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MK=$PREFIX/link.mk
[ -f "$MK" ] || { echo "tlscheck: $MK missing (run deps/build.sh first)" >&2; exit 1; }
for t in nbdkit certtool timeout musl-gcc; do
    command -v "$t" >/dev/null 2>&1 ||
        { echo "tlscheck: $t missing (apt-get install $(grep -v '^#' "$HERE/apt-packages.txt" | tr '\n' ' '))" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tlscheck.XXXXXX")
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
cleanup() { stop_server; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkvar() { sed -n "s/^$1[[:space:]]*=[[:space:]]*//p" "$MK"; }
# shellcheck disable=SC2046,SC2086 # the flags are word lists on purpose
timeout 120 musl-gcc -O2 -Wall -Werror $(mkvar STATIC_CFLAGS) -o "$TMP/tlscheck" "$HERE/tlscheck.c" \
    $(mkvar STATIC_LDFLAGS) $(mkvar STATIC_LIBS)
case "$(file -b "$TMP/tlscheck")" in
    *"statically linked"*) ;;
    *) echo "tlscheck: FAIL: tlscheck is not statically linked" >&2; exit 1 ;;
esac

SOCK=$TMP/nbd.sock
# start_server NBDKIT-TLS-OPTIONS...: a fresh 1 MiB memory export on $SOCK.
# The pid file is written once nbdkit listens.
start_server() {
    stop_server
    rm -f "$SOCK" "$TMP/nbdkit.pid"
    timeout 120 nbdkit -f --exit-with-parent -U "$SOCK" -P "$TMP/nbdkit.pid" --tls=require "$@" \
        memory 1M 2>>"$TMP/nbdkit.log" &
    SERVER_PID=$!
    local _
    for _ in $(seq 100); do
        [ -s "$TMP/nbdkit.pid" ] && [ -S "$SOCK" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "tlscheck: nbdkit did not start:" >&2
    cat "$TMP/nbdkit.log" >&2
    exit 1
}

passes=0 failures=0
# expect WANT NAME ARGS...: run tlscheck ARGS; WANT is ok (exit 0) or
# refused (exit 3: the TLS connection failed).
expect() {
    local want=$1 name=$2 rc=0; shift 2
    timeout 30 "$TMP/tlscheck" "$SOCK" "$@" >"$TMP/out" 2>&1 || rc=$?
    local got=other
    [ $rc = 0 ] && got=ok
    [ $rc = 3 ] && got=refused
    if [ "$got" = "$want" ]; then
        echo "ok     $name ($got)"
        passes=$((passes + 1))
    else
        echo "FAIL   $name: wanted $want, got exit $rc:"
        sed 's/^/         /' "$TMP/out"
        echo "         nbdkit log:"; tail -n 5 "$TMP/nbdkit.log" | sed 's/^/         /'
        failures=$((failures + 1))
    fi
}

# --- PSK ---------------------------------------------------------------------
printf 'homeport:%s\n' 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef >"$TMP/psk"
printf 'homeport:%s\n' fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210 >"$TMP/psk.wrong"
chmod 600 "$TMP/psk" "$TMP/psk.wrong"
start_server --tls-psk="$TMP/psk"
expect ok      "PSK: write and read back" psk homeport "$TMP/psk"
expect refused "PSK: wrong key is refused" psk homeport "$TMP/psk.wrong"

# --- X.509 -------------------------------------------------------------------
# Two CAs: the real one, and another one whose certificates must not pass.
# RSA for the CAs and the server, ECDSA for the client (so both RSA and ECC
# run in the static client).
mkcert() { # mkcert NAME TEMPLATE KEYTYPE [CA]
    local name=$1 tmpl=$2 kt=$3 ca=${4:-}
    local kopt=(--bits=2048)
    [ "$kt" = ecdsa ] && kopt=(--curve=secp256r1)   # not the 224-bit default
    timeout 60 certtool --generate-privkey --key-type="$kt" "${kopt[@]}" \
        --outfile "$TMP/$name-key.pem" 2>/dev/null
    printf '%b' "$tmpl" >"$TMP/$name.info"
    if [ -z "$ca" ]; then
        timeout 60 certtool --generate-self-signed --load-privkey "$TMP/$name-key.pem" \
            --template "$TMP/$name.info" --outfile "$TMP/$name-cert.pem" 2>/dev/null
    else
        timeout 60 certtool --generate-certificate --load-privkey "$TMP/$name-key.pem" \
            --load-ca-certificate "$TMP/$ca-cert.pem" --load-ca-privkey "$TMP/$ca-key.pem" \
            --template "$TMP/$name.info" --outfile "$TMP/$name-cert.pem" 2>/dev/null
    fi
}
CA='cn = "tlscheck CA"\nca\ncert_signing_key\nexpiration_days = 2\n'
SRV='cn = "localhost"\ndns_name = "localhost"\ntls_www_server\nsigning_key\nencryption_key\nexpiration_days = 2\n'
CLI='cn = "tlscheck client"\ntls_www_client\nsigning_key\nexpiration_days = 2\n'
mkcert ca "$CA" rsa
mkcert other-ca "${CA/tlscheck CA/other CA}" rsa
mkcert server "$SRV" rsa ca
mkcert client "$CLI" ecdsa ca
mkcert other-server "$SRV" rsa other-ca
mkcert other-client "$CLI" ecdsa other-ca

# nbdkit's directory: ca-cert.pem server-cert.pem server-key.pem; libnbd's
# (nbd_set_tls_certificates): ca-cert.pem client-cert.pem client-key.pem.
mkdir -m 700 "$TMP/server" "$TMP/client" "$TMP/other-client"
cp "$TMP/ca-cert.pem" "$TMP/server-cert.pem" "$TMP/server-key.pem" "$TMP/server/"
cp "$TMP/ca-cert.pem" "$TMP/client/"
cp "$TMP/client-cert.pem" "$TMP/client-key.pem" "$TMP/client/"
cp "$TMP/ca-cert.pem" "$TMP/other-client/"
cp "$TMP/other-client-cert.pem" "$TMP/other-client/client-cert.pem"
cp "$TMP/other-client-key.pem" "$TMP/other-client/client-key.pem"
mkdir -m 700 "$TMP/other-server"
cp "$TMP/other-ca-cert.pem" "$TMP/other-server/ca-cert.pem"
cp "$TMP/other-server-cert.pem" "$TMP/other-server/server-cert.pem"
cp "$TMP/other-server-key.pem" "$TMP/other-server/server-key.pem"

start_server --tls-certificates="$TMP/server" --tls-verify-peer
expect ok      "X.509: write and read back (nbdkit verifies the client)" x509 "$TMP/client"
expect refused "X.509: client certificate from another CA is refused" x509 "$TMP/other-client"

# Not a pass/fail case, a fact to know: libnbd 1.14 checks the server's
# certificate only against a hostname (gnutls_session_set_verify_cert, set
# by nbd_connect_tcp and nbds:// URIs).  Over a Unix socket or a socket
# handed over with nbd_connect_socket it has none, and accepts any server.
start_server --tls-certificates="$TMP/other-server"
rc=0
timeout 30 "$TMP/tlscheck" "$SOCK" x509 "$TMP/client" >"$TMP/out" 2>&1 || rc=$?
case $rc in
    0) echo "note   X.509: server certificate from another CA ACCEPTED over a Unix socket (no hostname to verify)" ;;
    3) echo "note   X.509: server certificate from another CA refused over a Unix socket" ;;
    *) echo "FAIL   X.509: server certificate from another CA: exit $rc"; cat "$TMP/out"; failures=$((failures + 1)) ;;
esac
stop_server

echo "tlscheck: $passes passed, $failures failed"
[ "$failures" = 0 ]
