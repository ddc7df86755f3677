#!/usr/bin/env bash
# The homeport built without TLS (make notls: libnbd without GnuTLS), as a
# site that installs it meets it: it says so (version), works in clear, and
# refuses a configuration that asks for TLS, naming the file and the key,
# at config-check, boot and agent start: it never runs in clear instead.
# The binary is the same in every flavour's run (static only).
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root
HOMEPORT=$TOP/build/notls/homeport
[ -x "$HOMEPORT" ] || bail "$HOMEPORT is not built (make notls)"
stop_all() { [ -n "${AGENT:-}" ] && kill -9 "$AGENT" 2> /dev/null; }
CLEANUP_HOOK=stop_all

hp version
expect_rc 0 "homeport version"
contains "$T/out" "^libnbd [0-9.]+ \(no TLS for NBD\)$" "  says: no TLS for NBD"

# --- in clear it works: the NBD check at boot ---
mkdir "$T/exports"
truncate -s 10M "$T/exports/alice"
check "nbdkit file dir= on a unix socket" start_nbdkit "$T/nbd.sock" file dir="$T/exports"
NBD_CONF="servers = unix:$T/nbd.sock
probe_export = alice" write_conf
hp boot
expect_rc 0 "boot in clear: ok"
contains "$T/out" "^nbd unix:$T/nbd.sock: ok, .*probe export 'alice' 10485760 bytes$" "  the server checked"

# --- whatever asks for TLS is refused, with the file and the key ---
echo "thin01:$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" > "$T/psk"
chmod 600 "$T/psk"
printf '%s\n' "-----BEGIN CERTIFICATE-----" "MIIB" "-----END CERTIFICATE-----" > "$T/ca.pem"
WHY="asks for TLS, but this homeport was built without TLS \(its libnbd has no GnuTLS\): set tls = off"
refused() { # DESCRIPTION KEY NBD-LINES
    NBD_CONF="servers = localhost:10809
$3" write_conf
    hp config-check
    expect_rc 1 "config-check: $1"
    contains "$T/err" "^$CONF: \[nbd\] $2 in $CONF $WHY" "  names the file and $2"
}
refused "a PSK file (tls = auto)" tls_psk_file "tls_psk_file = $T/psk
tls_psk_identity = thin01"
refused "a CA file (tls = auto)" tls_ca_file "tls_ca_file = $T/ca.pem"
refused "tls = on (TLS when the server offers it)" "tls = on" "tls = on
tls_psk_file = $T/psk
tls_psk_identity = thin01"
refused "tls = require" "tls = require" "tls = require
tls_ca_file = $T/ca.pem"

# the PSK configuration again, at boot and at agent start
NBD_CONF="servers = unix:$T/nbd.sock
tls_psk_file = $T/psk
tls_psk_identity = thin01" write_conf
hp boot
expect_rc 2 "boot refuses it (configuration error)"
contains "$T/err" "^homeport boot: \[nbd\] tls_psk_file in $CONF $WHY" "  naming the file and the key"
lacks "$T/out" "^nbd " "  and connects to no server"
hp agent -f
expect_rc 1 "the agent refuses to start"
contains "$T/err" "\[nbd\] tls_psk_file in $CONF $WHY" "  naming the file and the key"
check "  and leaves no pid file" test ! -e "$T/run/homeport/agent.pid"
check "  nor a socket" test ! -S "$T/run/homeport/agent.sock"

# tls = off: the same binary runs the agent
NBD_CONF="servers = unix:$T/nbd.sock
tls = off
tls_psk_file = $T/psk" write_conf
hp config-check
expect_rc 0 "tls = off with the files still set: ok"
check "the agent starts with tls = off" start_agent_fg
done_testing
