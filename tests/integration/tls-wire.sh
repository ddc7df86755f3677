#!/usr/bin/env bash
# What crosses the wire: a file with a known content is written to a home
# and read back, with tcpdump capturing the NBD port on loopback.  In clear
# (tls = off) the content is in the capture; with TLS it is nowhere in it.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lib-tls.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
stop_all() { [ -n "${DUMP:-}" ] && kill "$DUMP" 2> /dev/null; stop_homes; }
CLEANUP_HOOK=stop_all

requires_tls tcpdump
add_users alice:2001
mkdir -p "$T/srv"
check "a test PKI" make_pki
PORT=$(free_port)
conf() { # conf TLS-LINES
    home_conf "servers = localhost:$PORT
$1"
}
MARK="homeport-wire-marker-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"
# round NAME: capture a mount, a write of the marker, a read back, the unmount
round() {
    local cap=$T/$1.pcap ok=0
    tcpdump -i lo -U -n -w "$cap" "tcp port $PORT" > /dev/null 2> "$T/$1.tcpdump" &
    DUMP=$!
    wait_for grep -q "listening on" "$T/$1.tcpdump" && capture_round || ok=1
    sleep 0.2
    kill -INT "$DUMP"; wait "$DUMP" 2> /dev/null
    DUMP=
    [ "$ok" = 0 ] && test -s "$cap"
}
capture_round() {
    hp mount alice
    [ "$rc" = 0 ] || { show_out; return 1; }
    yes "$MARK" | head -c 1M > "$T/home/alice/secret.txt"
    sync -f "$T/home/alice/secret.txt"
    echo 3 > /proc/sys/vm/drop_caches
    cmp -s "$T/home/alice/secret.txt" <(yes "$MARK" | head -c 1M) || return 1
    hp umount alice
    [ "$rc" = 0 ] || { show_out; return 1; }
}
seen() { grep -a -c "$MARK" "$T/$1.pcap"; }

conf "tls = off"
hp mkhome alice
check "a server in clear" start_nbdkit_tcp "$PORT" file dir="$T/srv"
check "tls = off: mount, write, read, umount under tcpdump" round clear
check "  the file's content is in the capture ($(seen clear) matches)" test "$(seen clear)" -gt 0
kill "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null

conf "$(tls_x509_conf)"
check "a server with --tls=require" start_nbdkit_tcp "$PORT" --tls=require --tls-certificates="$T/pki/server" --tls-verify-peer file dir="$T/srv"
check "TLS: mount, write, read, umount under tcpdump" round tls
check "  the capture holds the traffic ($(stat -c %s "$T/tls.pcap") bytes)" test "$(stat -c %s "$T/tls.pcap")" -gt 1000000
check "  and not the file's content ($(seen tls) matches)" test "$(seen tls)" = 0
check "  nor the export's name after the handshake" bash -c "! grep -a -q 'alice' '$T/tls.pcap'"
done_testing
