#!/usr/bin/env bash
# deps/linkcheck.sh PREFIX
#
# Links deps/linkcheck.c statically with musl against every library in
# PREFIX, using exactly the STATIC_CFLAGS / STATIC_LDFLAGS / STATIC_LIBS that
# deps/build.sh wrote to PREFIX/link.mk, runs it, and checks with `file` that
# the result is statically linked.  Prints the link line used.
set -euo pipefail
export LC_ALL=C

[ $# -eq 1 ] || { echo "usage: $0 PREFIX" >&2; exit 2; }
PREFIX=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MK=$PREFIX/link.mk
[ -f "$MK" ] || { echo "linkcheck: $MK missing (run deps/build.sh first)" >&2; exit 1; }

# Read "NAME = value" from link.mk (make syntax, simple assignments only).
mkvar() { sed -n "s/^$1[[:space:]]*=[[:space:]]*//p" "$MK"; }
STATIC_CFLAGS=$(mkvar STATIC_CFLAGS)
STATIC_LDFLAGS=$(mkvar STATIC_LDFLAGS)
STATIC_LIBS=$(mkvar STATIC_LIBS)

STATIC_LIBS_NOTLS=$(mkvar STATIC_LIBS_NOTLS)

OUT=$PREFIX/linkcheck
mkdir -p "$OUT"
# shellcheck disable=SC2206 # the flags are word lists on purpose
cmd=(musl-gcc -O2 -Wall -Werror $STATIC_CFLAGS -o "$OUT/linkcheck" "$HERE/linkcheck.c"
     $STATIC_LDFLAGS $STATIC_LIBS)
echo "linkcheck: link line:"
echo "  ${cmd[*]}"
"${cmd[@]}"

"$OUT/linkcheck"

# The libraries of the homeport without TLS (make notls): no GnuTLS.
# shellcheck disable=SC2206
cmd=(musl-gcc -O2 -Wall -Werror -DNOTLS $STATIC_CFLAGS -o "$OUT/linkcheck-notls"
     "$HERE/linkcheck.c" $STATIC_LDFLAGS $STATIC_LIBS_NOTLS)
echo "linkcheck: link line without TLS:"
echo "  ${cmd[*]}"
"${cmd[@]}"
"$OUT/linkcheck-notls"

info=$(file -b "$OUT/linkcheck")
echo "linkcheck: file: $info"
case "$info" in
    *"statically linked"*) ;;
    *) echo "linkcheck: FAIL: binary is not statically linked" >&2; exit 1 ;;
esac

strip -o "$OUT/linkcheck.stripped" "$OUT/linkcheck"
echo "linkcheck: size $(stat -c %s "$OUT/linkcheck") bytes, stripped $(stat -c %s "$OUT/linkcheck.stripped") bytes"
echo "linkcheck: OK"
