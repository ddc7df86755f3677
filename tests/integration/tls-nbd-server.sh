#!/usr/bin/env bash
# Debian's nbd-server with TLS, set up as homeport(8) "Securing homes" says:
# force_tls, the server's certificate, the site's CA checking the machines'
# certificates (cacertfile), a per-export authfile.  The boot probe reports
# TLS with its version, cipher and the server's certificate; homeport mount,
# a write, umount, the data read back from the image.  Then what a machine
# outside the site gets: nothing, in clear, without a certificate, with a
# certificate of another CA; and an export whose authfile leaves this
# machine out is refused to it even with a valid certificate.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lib-tls.sh"
enter_namespace "$@"
setup_root
requires_tls nbd-server
stop_server() {
    stop_nbd_server
    stop_homes
}
CLEANUP_HOOK=stop_server
add_users nsuser:2601 nsother:2602
mkdir -p "$T/srv"
check "a test PKI (certtool)" make_pki
PORT=$(free_port)
conf() { # conf TLS-LINES
    home_conf "servers = localhost:$PORT
probe_export = nsuser
warm_connections = 0
$1"
}
conf "$(tls_x509_conf)"
hp mkhome nsuser
hp mkhome nsother
expect_rc 0 "images made by mkhome"
echo 127.0.0.1 > "$T/allow-here"
: > "$T/allow-nobody" # nbd-server: an empty authfile lets nobody in
cat > "$T/nbd-server.conf" <<C
[generic]
allowlist = true
force_tls = true
certfile = $T/pki/server/server-cert.pem
keyfile = $T/pki/server/server-key.pem
cacertfile = $T/pki/ca-cert.pem
[nsuser]
exportname = $T/srv/nsuser
authfile = $T/allow-here
[nsother]
exportname = $T/srv/nsother
authfile = $T/allow-nobody
C
check "nbd-server with force_tls on 127.0.0.1:$PORT" start_nbd_server "$T/nbd-server.conf" "$PORT"

hp boot
expect_rc 0 "the boot probe passes over TLS"
contains "$T/out" "^nbd localhost:$PORT: ok, newstyle-fixed, .*TLS \(X\.509 with this machine's certificate\): (TLS1\.[23] )?cipher [A-Z0-9-]+" "the report says TLS and its cipher"
if own_libnbd; then
    contains "$T/out" "certificate\): TLS1\.[23] cipher" "  its version"
    contains "$T/out" "server certificate CN=localhost" "  and the server's certificate"
else
    skip "the TLS version and the server certificate in the report" "$OWN_LIBNBD_WHY"
fi

hp mount nsuser
expect_rc 0 "homeport mount from nbd-server over TLS"
head -c 1M /dev/urandom > "$T/data"
cp "$T/data" "$T/home/nsuser/data"
hp umount nsuser
expect_rc 0 "homeport umount"
check "the data is in the image" bash -c "debugfs -R 'dump /data $T/back' '$T/srv/nsuser' 2> /dev/null && cmp -s '$T/data' '$T/back'"

hp mount nsother
expect_rc 1 "an export whose authfile leaves this machine out: refused"
contains "$T/err" "export 'nsother': .*server policy prevents NBD_OPT_GO" "  the server's refusal is named"
check "  nothing mounted" bash -c "! grep -q ' $T/home/nsother ' /proc/self/mountinfo"

refused() { # LABEL WHY: homeport mount nsuser fails saying WHY, nothing is mounted
    hp mount nsuser
    expect_rc 1 "$1: refused"
    contains "$T/err" "localhost:$PORT: export 'nsuser': $2" "  it says why"
    check "  nothing mounted" bash -c "! grep -q ' $T/home/nsuser ' /proc/self/mountinfo"
    sed 's/^/#   /' "$T/err"
}
conf "tls = off"
refused "a machine in clear" "the server requires TLS: set the tls_\* keys"
conf "tls_ca_file = $T/pki/ca-cert.pem"
refused "a machine without a certificate" "TLS handshake failed: the server may want a machine certificate"
conf "tls_ca_file = $T/pki/ca-cert.pem
tls_cert_file = $T/pki/stranger-cert.pem
tls_key_file = $T/pki/stranger-key.pem"
refused "a machine with a certificate of another CA" "TLS handshake failed: the server does not accept this machine's certificate"
done_testing
