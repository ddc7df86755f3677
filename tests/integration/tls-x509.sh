#!/usr/bin/env bash
# NBD homes under TLS with X.509 certificates: a captive nbdkit on
# 127.0.0.1 with --tls=require --tls-verify-peer (it only talks to machines
# whose certificate the site's CA signed); the boot report says TLS and
# with what; homeport mount, a write, umount, the data read back from the
# image; the server killed and restarted in the middle of a write (the
# FUSE worker reconnects under TLS, the data is intact).
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lib-tls.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
CLEANUP_HOOK=stop_homes

requires_tls
add_users alice:2001 bob:2002
mkdir -p "$T/srv"
check "a test PKI (certtool)" make_pki
PORT=$(free_port)
conf() {
    ATTACH=auto IMAGE_SIZE=64M home_conf "servers = localhost:$PORT
probe_export = alice
$(tls_x509_conf)"
}
conf
hp mkhome alice
hp mkhome bob
hp config-check
expect_rc 0 "config-check accepts the TLS files"
# nbdkit_tls [FILTER PARAMS…]
nbdkit_tls() {
    start_nbdkit_tcp "$PORT" --tls=require --tls-certificates="$T/pki/server" --tls-verify-peer \
        ${1:+--filter=$1} file dir="$T/srv" "${@:2}"
}
check "nbdkit --tls=require --tls-verify-peer on 127.0.0.1:$PORT" nbdkit_tls

hp boot
expect_rc 0 "the boot probe passes over TLS"
contains "$T/out" "^nbd localhost:$PORT: ok, newstyle-fixed, handshake [0-9.]+ ms, rtt [0-9.]+ ms, TLS \(X\.509 with this machine's certificate\): (TLS1\.3 )?cipher [A-Z0-9-]+" "the report says TLS, with the cipher"
if own_libnbd; then
    contains "$T/out" "TLS \(X\.509 with this machine's certificate\): TLS1\.3 cipher" "  and the version"
    contains "$T/out" "kTLS [a-z ]+, server certificate CN=localhost," "  and the server certificate's subject"
else
    skip "the TLS version and the server certificate in the report" "$OWN_LIBNBD_WHY"
fi
contains "$T/out" "probe export 'alice' 67108864 bytes" "and the probe export's size"
hp boot --json
check "JSON: tls true" test "$(json_get "$T/out" 'j["nbd"][0]["tls"]')" = True
check "the certificate directory is root's" test "$(stat -c %a "$R/tls")" = 700
check "  with the key under libnbd's name" test "$(readlink "$R/tls/client-key.pem")" = "$T/pki/machine-key.pem"

# --- mount, write, unmount, read back ---------------------------------------------
hp mount alice
expect_rc 0 "mount alice over TLS"
contains "$T/out" "^Home of alice mounted on $T/home/alice$" "mounted"
hp status
contains "$T/out" "^alice .* via fuse" "attach = auto: FUSE (no nbd.ko on this kernel)"
head -c 4M /dev/urandom > "$T/data"
cp "$T/data" "$T/home/alice/data"
hp umount alice
expect_rc 0 "umount alice"
debugfs -R "dump /data $T/back" "$T/srv/alice" > /dev/null 2>&1
check "the data is in the image" cmp -s "$T/data" "$T/back"

# --- the server restarted during a write: reconnect under TLS ----------------------
kill "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null
check "nbdkit with slow writes" nbdkit_tls delay delay-write=50ms
hp mount bob
expect_rc 0 "mount bob"
head -c 16M /dev/urandom > "$T/big"
(dd if="$T/big" of="$T/home/bob/big" bs=1M oflag=direct status=none; echo "dd=$?" > "$T/dd.rc") &
writer=$!
sleep 0.3
kill -9 "$NBDKIT_PID"; wait "$NBDKIT_PID" 2> /dev/null
sleep 1
check "nbdkit restarted" nbdkit_tls delay delay-write=50ms
for i in $(seq 300); do [ -e "$T/dd.rc" ] && break; sleep 0.1; done
wait "$writer" 2> /dev/null
check "the write completed after the reconnect" test "$(cat "$T/dd.rc" 2> /dev/null)" = dd=0
hp status
contains "$T/out" "^bob .* connected, sessions 0, reconnects [1-9]" "status counts the reconnect"
hp umount bob
expect_rc 0 "umount bob"
debugfs -R "dump /big $T/big.back" "$T/srv/bob" > /dev/null 2>&1
check "the data written across the restart is intact" cmp -s "$T/big" "$T/big.back"
lacks "$T/nbdkit.log" "[Gg][Nn][Uu][Tt][Ll][Ss]" "nbdkit logged no TLS error"
done_testing
