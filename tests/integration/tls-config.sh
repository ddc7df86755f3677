#!/usr/bin/env bash
# The TLS settings of [nbd] as a site administrator meets them: every
# mistake named with its file (or file:line and key) at config-check, at
# agent start, and at reload, where the running configuration is kept.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lib-tls.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
stop_all() { [ -n "${AGENT:-}" ] && kill -9 "$AGENT" 2> /dev/null; }
CLEANUP_HOOK=stop_all
requires_tls
check "a test PKI" make_pki
P=$T/pki
tls_conf() { NBD_CONF="servers = ${SERVERS:-localhost:10809}
warm_connections = 0
$1" write_conf; }

tls_conf "$(tls_x509_conf)"
hp config-check
expect_rc 0 "X.509 files: ok"
tls_conf "$(tls_psk_conf)"
hp config-check
expect_rc 0 "a PSK file: ok"
tls_conf "tls = off"
hp config-check
expect_rc 0 "tls = off without files: ok"

# --- what the parser refuses (exit 2, file:line) -------------------------------
bad() { # bad DESCRIPTION PATTERN [NBD LINES]
    tls_conf "$3"
    hp config-check
    expect_rc 2 "$1"
    contains "$T/err" "$2" "  $1: said"
}
bad "tls = require without files" "tls = require needs tls_ca_file \(X\.509 certificates\) or tls_psk_file" "tls = require"
bad "both X.509 and PSK" "tls_ca_file and tls_psk_file: set one of them" "tls_ca_file = $P/ca-cert.pem
tls_psk_file = $P/psk"
bad "a certificate without its key" "tls_cert_file and tls_key_file go together" "tls_ca_file = $P/ca-cert.pem
tls_cert_file = $P/machine-cert.pem"
bad "a relative path" "tls_ca_file = pki/ca-cert.pem: expected an absolute path" "tls_ca_file = pki/ca-cert.pem"
bad "a bad tls value" "$CONF:[0-9]+: bad value for 'tls': 'maybe'" "tls = maybe"
bad "a bad tls_exempt entry" "tls_exempt: 'a:b:c' is not a server address" "$(tls_psk_conf)
tls_exempt = a:b:c"
SERVERS="unix:$T/nbd.sock" bad "X.509 to a unix socket" "server unix:$T/nbd.sock: TLS with certificates needs a TCP server" "$(tls_x509_conf)"
SERVERS="unix:$T/nbd.sock" tls_conf "$(tls_x509_conf)
tls_exempt = unix:$T/nbd.sock"
hp config-check
expect_rc 0 "the unix socket in tls_exempt: ok"

# --- what the files say (exit 1, the file named) -------------------------------
badfile() { # badfile DESCRIPTION PATTERN NBD-LINES
    tls_conf "$3"
    hp config-check
    expect_rc 1 "$1"
    contains "$T/err" "^$CONF: $2" "  $1: said"
}
cp "$P/machine-key.pem" "$T/open-key.pem"; chmod 644 "$T/open-key.pem"
badfile "a key others may read" "TLS key $T/open-key.pem has mode 0644: group and others must not have access \(chmod 600 $T/open-key.pem\)" "tls_ca_file = $P/ca-cert.pem
tls_cert_file = $P/machine-cert.pem
tls_key_file = $T/open-key.pem"
badfile "a missing CA file" "cannot read the TLS CA certificate $T/none.pem: No such file or directory" "tls_ca_file = $T/none.pem"
echo "not a certificate" > "$T/junk.pem"
badfile "a file that is no certificate" "TLS certificate $T/junk.pem: no PEM certificate in it" "tls_ca_file = $P/ca-cert.pem
tls_cert_file = $T/junk.pem
tls_key_file = $P/machine-key.pem"
badfile "a PSK file without this machine's identity" "TLS PSK file $P/psk has no key for identity 'thin02'" "tls_psk_file = $P/psk
tls_psk_identity = thin02"
{ cat "$P/psk"; echo "thin03:nothex"; } > "$T/psk-bad"; chmod 600 "$T/psk-bad"
badfile "a bad PSK line" "TLS PSK file $T/psk-bad: line 2: expected IDENTITY:HEXKEY" "tls_psk_file = $T/psk-bad
tls_psk_identity = thin01"
chmod 640 "$T/psk-bad"
badfile "a PSK file the group may read" "TLS PSK file $T/psk-bad has mode 0640" "tls_psk_file = $T/psk-bad
tls_psk_identity = thin01"

# --- at agent start and at reload ------------------------------------------------
tls_conf "tls_ca_file = $P/ca-cert.pem
tls_cert_file = $P/machine-cert.pem
tls_key_file = $T/open-key.pem"
hp agent
expect_rc 1 "the agent refuses to start with a key others may read"
contains "$T/err" "TLS key $T/open-key.pem has mode 0644" "  naming the key"
tls_conf "$(tls_x509_conf)"
check "the agent starts with good files" start_agent_fg
tls_conf "tls_ca_file = $P/ca-cert.pem
tls_cert_file = $P/machine-cert.pem
tls_key_file = $T/open-key.pem"
kill -HUP "$AGENT"
check "a reload with a key others may read is refused" wait_for grep -q "reload: TLS key $T/open-key.pem has mode 0644.*; keeping the running configuration" "$T/agent.log"
check "  the agent still runs" kill -0 "$AGENT"
check "  and its certificate directory still names the good key" test "$(readlink "$R/tls/client-key.pem")" = "$P/machine-key.pem"
done_testing
