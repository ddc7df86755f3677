# tests/lib-tls.sh: sourced after lib.sh by the TLS tests.  A throw-away
# PKI made with certtool (gnutls-bin) in $T/pki, ECDSA keys (fast):
#
#   $T/pki/ca-cert.pem                     the site's CA
#   $T/pki/server/                         nbdkit --tls-certificates=: the
#       ca-cert.pem server-cert.pem        CA, and a server certificate for
#       server-key.pem                     localhost and 127.0.0.1
#   $T/pki/machine-cert.pem, -key.pem      a thin client's certificate (CA-signed)
#   $T/pki/rogue/                          another CA and a server certificate
#                                          for localhost signed by it
#   $T/pki/stranger-cert.pem, -key.pem     a client certificate of the rogue CA
#   $T/pki/psk                             nbdkit --tls-psk=: thin01:<hex key>
#   $T/pki/psk-wrong                       thin01 with another key
#
# Keys the client uses are root's with mode 0600, as homeport requires.

_cert() { # NAME TEMPLATE-LINES… — key NAME-key.pem, certificate request info
    local name=$1; shift
    certtool --generate-privkey --key-type=ecdsa --outfile "$name-key.pem" > /dev/null 2>&1 || return 1
    printf '%s\n' "$@" "expiration_days = 2" > "$name.info"
}

# make_pki: the files above.  Returns non-zero when certtool fails.
make_pki() {
    local P=$T/pki
    mkdir -p "$P/server" "$P/rogue/server"
    (
        set -e
        cd "$P"
        for ca in . rogue; do
            _cert "$ca/ca" 'cn = "homeport test CA '"$ca"'"' ca cert_signing_key
            certtool --generate-self-signed --load-privkey "$ca/ca-key.pem" \
                --template "$ca/ca.info" --outfile "$ca/ca-cert.pem" > /dev/null 2>&1
            _cert "$ca/server/server" 'cn = localhost' 'dns_name = localhost' \
                'ip_address = 127.0.0.1' tls_www_server encryption_key signing_key
            certtool --generate-certificate --load-privkey "$ca/server/server-key.pem" \
                --load-ca-certificate "$ca/ca-cert.pem" --load-ca-privkey "$ca/ca-key.pem" \
                --template "$ca/server/server.info" --outfile "$ca/server/server-cert.pem" > /dev/null 2>&1
            cp "$ca/ca-cert.pem" "$ca/server/ca-cert.pem"
        done
        for c in machine:. stranger:rogue; do
            _cert "${c%%:*}" 'cn = thin01' tls_www_client encryption_key signing_key
            certtool --generate-certificate --load-privkey "${c%%:*}-key.pem" \
                --load-ca-certificate "${c#*:}/ca-cert.pem" --load-ca-privkey "${c#*:}/ca-key.pem" \
                --template "${c%%:*}.info" --outfile "${c%%:*}-cert.pem" > /dev/null 2>&1
        done
        chmod 600 ./*-key.pem
        echo "thin01:$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" > psk
        echo "thin01:$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" > psk-wrong
        chmod 600 psk psk-wrong
    )
}

# tls_x509_conf / tls_psk_conf: [nbd] lines for write_conf's NBD_CONF.
tls_x509_conf() {
    printf 'tls_ca_file = %s\ntls_cert_file = %s\ntls_key_file = %s\n' \
        "$T/pki/ca-cert.pem" "$T/pki/machine-cert.pem" "$T/pki/machine-key.pem"
}
tls_psk_conf() {
    printf 'tls_psk_file = %s\ntls_psk_identity = thin01\n' "${1:-$T/pki/psk}"
}

# requires_tls: skip the whole test when the binary under test has no TLS
# for NBD; certtool makes the PKI.
requires_tls() {
    "$HOMEPORT" version | grep -qF "(TLS for NBD)" || skip_all "this binary's libnbd has no TLS"
    requires certtool "$@"
}

# start_nbdkit_x509 PORT ARGS…: a captive nbdkit on 127.0.0.1:PORT with
# --tls=require --tls-verify-peer and the test PKI's server certificate;
# ARGS are nbdkit's (filters, plugin and its parameters).
start_nbdkit_x509() {
    local port=$1; shift
    start_nbdkit_tcp "$port" --tls=require --tls-certificates="$T/pki/server" --tls-verify-peer "$@"
}

# established PORT: how many TCP connections to PORT the server side has.
established() { ss -Htn state established "( sport = :$1 )" | wc -l; }

# multiconn_home USER:UID N: a TLS (X.509) home for USER over FUSE with
# [nbd] connections = N, of 64 MiB: the test PKI, PORT (free, for nbdkit),
# the configuration and the image.
multiconn_home() {
    add_users "$1"
    mkdir -p "$T/srv"
    check "a test PKI (certtool)" make_pki
    PORT=$(free_port)
    IMAGE_SIZE=64M home_conf "servers = localhost:$PORT
connections = $2
$(tls_x509_conf)"
    hp mkhome "${1%%:*}"
}

# restart_data_intact USER: $T/before and $T/after, written to USER's home
# before and across a server restart, are in its image ($T/srv/USER) byte
# for byte, and the image is clean.
restart_data_intact() {
    local f
    for f in before after; do
        debugfs -R "dump /$f $T/$f.back" "$T/srv/$1" > /dev/null 2>&1
        check "the data written $f the restart is intact" cmp -s "$T/$f" "$T/$f.back"
    done
    check "the image is clean" e2fsck -fn "$T/srv/$1"
}
