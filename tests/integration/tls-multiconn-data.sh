#!/usr/bin/env bash
# A home on 4 NBD connections under TLS ([nbd] connections = 4, nbdkit
# --tls=require advertising multi-conn): data written with O_DIRECT and
# through the page cache, spread over the connections, reads back intact
# after umount and a new mount, and is in the image.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/lib-tls.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
CLEANUP_HOOK=stop_homes

requires_tls
multiconn_home alice:2001 4
check "nbdkit --tls=require on 127.0.0.1:$PORT" start_nbdkit_x509 "$PORT" file dir="$T/srv"

hp mount alice
expect_rc 0 "mount alice over TLS"
check "the worker opens 4 connections after the mount" \
    wait_for_secs 30 grep -qx "connections=4" "$R/homes/alice:stats"
head -c 24M /dev/urandom > "$T/direct"
head -c 5M /dev/urandom > "$T/cached"
check "24 MiB written with O_DIRECT" dd if="$T/direct" of="$T/home/alice/direct" bs=1M oflag=direct status=none
cp "$T/cached" "$T/home/alice/cached"
sha_before=$(cd "$T" && sha256sum direct cached)
hp umount alice
expect_rc 0 "umount alice"
check "the image is clean" e2fsck -fn "$T/srv/alice"

hp mount alice
expect_rc 0 "mount alice again"
check "  on 4 connections" wait_for_secs 30 grep -qx "connections=4" "$R/homes/alice:stats"
mkdir -p "$T/back"
check "read back with O_DIRECT" dd if="$T/home/alice/direct" of="$T/back/direct" bs=1M iflag=direct status=none
cp "$T/home/alice/cached" "$T/back/cached"
check "the checksums match" test "$(cd "$T/back" && sha256sum direct cached)" = "$sha_before"
hp status
contains "$T/out" "^alice .* via fuse .*, connected, sessions 0, reconnects 0" "connected, no reconnect"
hp umount alice
expect_rc 0 "umount alice"
debugfs -R "dump /direct $T/image.direct" "$T/srv/alice" > /dev/null 2>&1
check "the data is in the image" cmp -s "$T/direct" "$T/image.direct"
lacks "$T/nbdkit.log" "[Gg][Nn][Uu][Tt][Ll][Ss]" "nbdkit logged no TLS error"
done_testing
