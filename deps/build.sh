#!/usr/bin/env bash
# deps/build.sh WORKDIR PREFIX
#
# Builds the static musl libraries homeport links against, from Debian
# bookworm *source* packages (so Debian's security patches are included):
#
#   mbedtls (2.28.x)      -> libmbedtls.a libmbedx509.a libmbedcrypto.a
#   util-linux (2.38.x)   -> libmount.a libblkid.a            (libraries only)
#   nettle (3.8.x)        -> libnettle.a libhogweed.a         (mini-gmp inside, no GMP)
#   libtasn1-6 (4.19.x)   -> libtasn1.a                       (library only)
#   gnutls28 (3.7.x)      -> libgnutls.a   (minimal: no p11-kit, idn, tpm,
#                            compression, dane, tools; no built-in trust store)
#   libnbd (1.14.x)       -> libnbd.a      (C library only, TLS via gnutls)
#                            notls/lib/libnbd.a (the same without TLS, make notls)
#   curl (7.88.x)         -> libcurl.a     (HTTP/HTTPS only, TLS via mbedtls)
#   fuse3 (3.14.x)        -> libfuse3.a
#
# Output: PREFIX/include, PREFIX/lib/*.a, PREFIX/lib/pkgconfig/*.pc,
#         PREFIX/link.mk (STATIC_LIBS / STATIC_CFLAGS for the main Makefile),
#         PREFIX/versions.txt (exact Debian source versions built).
#
# Then deps/linkcheck.sh links and runs a static program against all of them,
# and deps/tlscheck.sh has libnbd talk TLS (PSK and X.509) to a captive
# nbdkit on a Unix socket.
#
# Host packages needed: deps/apt-packages.txt.
#
# Idempotent: every step leaves a stamp in WORKDIR/stamps.  A library's stamp
# holds a hash of its build function, the flags and the Debian version, so it
# is rebuilt when any of those change (or its output in PREFIX disappears).
# A failed step is simply redone on the next run.
#
# apt is used with a PRIVATE configuration under WORKDIR (own sources.list,
# lists and cache); the system's /etc/apt is only read for defaults, never
# written, and the system's package lists are not touched.

set -euo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
umask 022

if [ $# -ne 2 ]; then
    echo "usage: $0 WORKDIR PREFIX" >&2
    exit 2
fi
mkdir -p "$1" "$2"
# Physical paths (pwd -P): they are written into link.mk and the .pc
# files, and a sysroot reached through a symbolic link (a git worktree's
# build/sysroot) must not record the link's path, which may go away.
WORKDIR=$(cd "$1" && pwd -P)
PREFIX=$(cd "$2" && pwd -P)
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

APTDIR=$WORKDIR/apt          # private apt configuration, lists and cache
SRCDIR=$WORKDIR/src          # downloaded .dsc/.orig/.debian files
BUILDDIR=$WORKDIR/build      # one freshly unpacked tree per library
STAMPS=$WORKDIR/stamps
KHEADERS=$WORKDIR/kheaders   # kernel headers for musl-gcc
LOGDIR=$WORKDIR/logs
JOBS=$(nproc)

# Debian source package -> upstream version series we expect (a guard against
# the mirror silently handing us a different major version).
declare -A EXPECT=(
    [mbedtls]=2.28.
    [util-linux]=2.38.
    [nettle]=3.8.
    [libtasn1-6]=4.19.
    [gnutls28]=3.7.
    [libnbd]=1.14.
    [curl]=7.88.
    [fuse3]=3.14.
)
PACKAGES=(mbedtls util-linux nettle libtasn1-6 gnutls28 libnbd curl fuse3)

# --------------------------------------------------------------------------
# helpers

T0=$(date +%s)
msg() { printf '[deps %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { printf '[deps] ERROR: %s\n' "$*" >&2; exit 1; }

CURRENT_STEP="start-up"
on_exit() {
    local rc=$?
    [ "$rc" -eq 0 ] || printf '[deps] FAILED during: %s (exit %s)\n' "$CURRENT_STEP" "$rc" >&2
}
trap on_exit EXIT

# run_logged NAME CMD...: run CMD with output in $LOGDIR/NAME.log; on failure
# show the tail of the log and stop.
run_logged() {
    local name=$1; shift
    local log=$LOGDIR/$name.log
    local t=$EPOCHREALTIME
    CURRENT_STEP="$name (log: $log)"
    echo "+ $*" >>"$log"
    if ! "$@" >>"$log" 2>&1 </dev/null; then
        echo "----- last 40 lines of $log -----" >&2
        tail -n 40 "$log" >&2
        echo "-----" >&2
        die "step '$name' failed: $*"
    fi
    # Per-step timing, in the log (for finding what is slow).
    awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN { printf "+ took %.1fs\n", b - a }' >>"$log"
}

# Stamps: stamp_ok NAME KEY is true when the stamp exists with content KEY.
stamp_ok()  { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { printf '%s\n' "$2" >"$STAMPS/$1"; }

need_tools() {
    local t missing=()
    for t in "$@"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
    [ ${#missing[@]} -eq 0 ] ||
        die "missing host tools: ${missing[*]} (apt-get install --no-upgrade \$(grep -v '^#' $SCRIPT_DIR/apt-packages.txt))"
}

mkdir -p "$APTDIR" "$SRCDIR" "$BUILDDIR" "$STAMPS" "$LOGDIR" "$PREFIX/include" "$PREFIX/lib/pkgconfig"

need_tools dash apt-get dpkg-source musl-gcc gcc make pkg-config meson ninja python3 \
           perl patch ar ranlib file xz m4

# --------------------------------------------------------------------------
# Build environment.  Static only, musl, no host (glibc) libraries may leak in:
# pkg-config only looks in PREFIX.

# No unwind tables: this is C for a static binary that never unwinds its
# stack (no C++, no backtraces; musl's thread cancellation does not
# unwind); .eh_frame was 262 KB of the binary.
# -Os: the binary's size is a target (make size; at most 2.5 MB) and none
# of these libraries' C code is where a home's bytes spend their time, but
# nettle's: it is built with -O2 (build_nettle), and the ciphers' inner
# loops are assembly either way.  The stripped homeport went from
# 2,844,184 bytes (all -O2) to 2,508,504.
CFLAGS_BASE="-Os -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables"
export CC=musl-gcc
export AR=ar RANLIB=ranlib
export CFLAGS="$CFLAGS_BASE -isystem $KHEADERS"
export CPPFLAGS="-isystem $KHEADERS"
# No -I/-L for PREFIX here: the libraries that use another one from PREFIX
# are told so explicitly (curl --with-mbedtls, gnutls and libnbd through
# pkg-config), and the other configure scripts must not see whatever the
# parallel chain is installing there.
export LDFLAGS=""
export PKG_CONFIG=pkg-config
export PKG_CONFIG_LIBDIR=$PREFIX/lib/pkgconfig
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
unset PKG_CONFIG_SYSROOT_DIR CXX CXXFLAGS LIBS || true
# Run configure, make recipes and libtool under dash instead of bash: process
# start-up is expensive on the build machines, and libtool (a shell script
# run once per object file) is about 40% faster under dash.
export CONFIG_SHELL=/bin/dash
# Everything that influences every library's output; part of every build stamp.
ENV_KEY="CC=$CC CFLAGS=$CFLAGS CPPFLAGS=$CPPFLAGS LDFLAGS=$LDFLAGS PREFIX=$PREFIX"

# --------------------------------------------------------------------------
# apt: private configuration

APT_OPTS=(
    -o "Dir::Etc::SourceList=$APTDIR/sources.list"
    -o "Dir::Etc::SourceParts=$APTDIR/sources.list.d"
    -o "Dir::State::Lists=$APTDIR/lists"
    -o "Dir::Cache=$APTDIR/cache"
    -o "APT::Sandbox::User=root"
    -q
)

apt_setup() {
    CURRENT_STEP="apt update (private lists in $APTDIR)"
    mkdir -p "$APTDIR/sources.list.d" "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
    local kr=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -f "$kr" ] || die "$kr missing (apt-get install debian-archive-keyring)"
    cat >"$APTDIR/sources.list.new" <<EOF
deb-src [signed-by=$kr] http://deb.debian.org/debian bookworm main
deb-src [signed-by=$kr] http://deb.debian.org/debian bookworm-updates main
deb-src [signed-by=$kr] http://deb.debian.org/debian-security bookworm-security main
EOF
    mv "$APTDIR/sources.list.new" "$APTDIR/sources.list"
    # Updating once is enough: later runs reuse the lists (delete
    # WORKDIR/stamps/apt-update to pick up newer Debian security releases).
    local key; key=$(sha256sum <"$APTDIR/sources.list" | cut -d' ' -f1)
    if stamp_ok apt-update "$key" && ls "$APTDIR"/lists/*Sources* >/dev/null 2>&1; then
        return
    fi
    msg "apt-get update (private lists)"
    run_logged apt-update apt-get "${APT_OPTS[@]}" update
    stamp_set apt-update "$key"
}

# fetch PKG: download the source package (once); sets DSC[PKG] and VERSION[PKG].
declare -A DSC VERSION
fetch() {
    local pkg=$1 uris dsc_name version
    CURRENT_STEP="fetch $pkg"
    if [ -f "$STAMPS/fetch-$pkg" ] && [ -f "$SRCDIR/$(cat "$STAMPS/fetch-$pkg")" ]; then
        dsc_name=$(cat "$STAMPS/fetch-$pkg")
    else
        msg "fetching source package $pkg"
        uris=$(cd "$SRCDIR" && apt-get "${APT_OPTS[@]}" source --print-uris "$pkg" 2>>"$LOGDIR/fetch-$pkg.log") ||
            die "apt-get source --print-uris $pkg failed (see $LOGDIR/fetch-$pkg.log)"
        dsc_name=$(printf '%s\n' "$uris" | awk '{print $2}' | grep '\.dsc$' | head -n1)
        [ -n "$dsc_name" ] || die "no .dsc found for $pkg in: $uris"
        (cd "$SRCDIR" && run_logged "fetch-$pkg" apt-get "${APT_OPTS[@]}" source --download-only "$pkg")
        [ -f "$SRCDIR/$dsc_name" ] || die "download of $pkg did not produce $dsc_name"
        stamp_set "fetch-$pkg" "$dsc_name"
    fi
    version=$(sed -n 's/^Version: //p' "$SRCDIR/$dsc_name")
    case "$version" in
        "${EXPECT[$pkg]}"*) ;;
        *) die "$pkg: got Debian version $version, expected ${EXPECT[$pkg]}*" ;;
    esac
    DSC[$pkg]=$SRCDIR/$dsc_name
    VERSION[$pkg]=$version
}

# unpack PKG: fresh source tree in $BUILDDIR/PKG with Debian's patches
# applied (dpkg-source -x); sets SRC.  Every (re)build starts from a fresh
# tree, so an interrupted build never leaves a half-configured tree behind.
# dpkg-source warns that it cannot verify the .dsc's signature (the Debian
# developers' keyring is not installed); that is expected: apt already
# checked every file's hash against the signed Sources index.
# A second build of PKG names its tree and log NAME (unpack PKG NAME).
unpack() {
    local pkg=$1 name=${2:-$1}
    SRC=$BUILDDIR/$name
    rm -rf "$SRC"
    run_logged "$name" dpkg-source --no-copy -x "${DSC[$pkg]}" "$SRC"
    CURRENT_STEP="build $name (log: $LOGDIR/$name.log)"
}

# apply_patches PKG [NAME]: homeport's own patches, deps/patches/PKG-N-*.patch
# in order, on the tree in $SRC (they are part of PKG's build key).
apply_patches() {
    local p
    for p in "$SCRIPT_DIR/patches/$1"-*.patch; do
        [ -e "$p" ] || continue
        run_logged "${2:-$1}" patch -p1 --no-backup-if-mismatch -i "$p"
    done
}

# Debian patches edit some autotools inputs (configure.ac, Makefile.am) after
# the tarball's generated files were made, so `make` would try to re-run
# aclocal/autoconf/automake.  None of those edits matter for what we build, so
# mark the generated files as newer, in dependency order.
touch_autotools_outputs() {
    local dir=$1
    find "$dir" -name aclocal.m4 -exec touch {} +
    sleep 0.01
    find "$dir" -name configure -exec touch {} +
    sleep 0.01
    find "$dir" \( -name Makefile.in -o -name config.h.in \) -exec touch {} +
}

# Kernel UAPI headers: musl-gcc uses -nostdinc, so <linux/...> and <asm/...>
# (needed by util-linux and fuse3) must be provided separately.
kernel_headers() {
    CURRENT_STEP="kernel headers"
    local key; key=$(dpkg-query -W -f '${Version}' linux-libc-dev 2>/dev/null || echo unknown)
    if stamp_ok kheaders "$key" && [ -d "$KHEADERS/linux" ]; then return; fi
    msg "copying kernel headers to $KHEADERS"
    [ -d /usr/include/linux ] || die "/usr/include/linux missing (apt-get install linux-libc-dev)"
    rm -rf "$KHEADERS"; mkdir -p "$KHEADERS"
    cp -a /usr/include/linux /usr/include/asm-generic "$KHEADERS/"
    local arch; arch=$(gcc -dumpmachine)
    cp -a "/usr/include/$arch/asm" "$KHEADERS/asm"
    stamp_set kheaders "$key"
}

# build_if_needed PKG[:VARIANT] FUNC OUTPUTS...: run FUNC unless its stamp
# matches and all OUTPUTS (relative to PREFIX) exist.  DEPKEY adds
# dependency stamps.  A VARIANT is a second build of PKG (its own stamp and
# log, PKG-VARIANT).
build_if_needed() {
    local pkg=${1%%:*} name=${1/:/-} fn=$2; shift 2
    local key o ok=1
    key=$( { declare -f "$fn"; cat "$SCRIPT_DIR/patches/$pkg"-*.patch 2> /dev/null; echo "$ENV_KEY ${VERSION[$pkg]} ${DEPKEY:-}"; } | sha256sum | cut -d' ' -f1)
    for o in "$@"; do [ -e "$PREFIX/$o" ] || ok=0; done
    if [ $ok = 1 ] && stamp_ok "build-$name" "$key"; then
        msg "$name ${VERSION[$pkg]}: up to date"
        return
    fi
    rm -f "$STAMPS/build-$name"
    : >"$LOGDIR/$name.log"
    msg "$name ${VERSION[$pkg]}: building (log: $LOGDIR/$name.log)"
    local t; t=$(date +%s)
    "$fn"
    for o in "$@"; do [ -e "$PREFIX/$o" ] || die "$name: build finished but $PREFIX/$o is missing"; done
    stamp_set "build-$name" "$key"
    msg "$name ${VERSION[$pkg]}: done in $(( $(date +%s) - t ))s"
}

# --------------------------------------------------------------------------
# libraries

build_mbedtls() {
    unpack mbedtls
    cd "$SRC"
    # Same threading settings as Debian's package (curl and homeport are
    # multi-threaded); Debian's other additions (HAVEGE, MD2, MD4) are legacy.
    run_logged mbedtls python3 scripts/config.py set MBEDTLS_THREADING_C
    run_logged mbedtls python3 scripts/config.py set MBEDTLS_THREADING_PTHREAD
    # What homeport uses: HMAC-SHA256 (sign.c), and libcurl's HTTPS
    # client: TLS 1.2, the server's certificate checked against a CA file,
    # no client certificate.  Left out: the server side, DTLS, TLS 1.0 and
    # 1.1, renegotiation, the PSK, DHE and static ECDH key exchanges, the
    # ciphers and hashes no TLS 1.2 suite of a current server needs (ARC4,
    # Blowfish, Camellia, CCM, DES, XTEA, RIPEMD-160, MD5), the curves
    # other than P-256, P-384, P-521 and X25519, encrypted private keys
    # (PKCS#5, #12), writing certificates, CSRs, the debug
    # messages (libcurl asks for them only in its debug builds), self
    # tests and PSA.  Kept: ECDHE-ECDSA, ECDHE-RSA and RSA key exchanges
    # with AES-GCM, AES-CBC and ChaCha20-Poly1305; the error texts (in
    # libcurl's messages).
    local opt
    for opt in MBEDTLS_SSL_SRV_C MBEDTLS_SSL_CACHE_C MBEDTLS_SSL_COOKIE_C MBEDTLS_SSL_TICKET_C \
        MBEDTLS_SSL_PROTO_DTLS MBEDTLS_SSL_DTLS_ANTI_REPLAY MBEDTLS_SSL_DTLS_HELLO_VERIFY \
        MBEDTLS_SSL_DTLS_CLIENT_PORT_REUSE MBEDTLS_SSL_DTLS_BADMAC_LIMIT \
        MBEDTLS_SSL_PROTO_TLS1 MBEDTLS_SSL_PROTO_TLS1_1 MBEDTLS_SSL_CBC_RECORD_SPLITTING \
        MBEDTLS_SSL_RENEGOTIATION MBEDTLS_SSL_CONTEXT_SERIALIZATION MBEDTLS_SSL_TRUNCATED_HMAC \
        MBEDTLS_SSL_EXPORT_KEYS MBEDTLS_SSL_ALL_ALERT_MESSAGES \
        MBEDTLS_KEY_EXCHANGE_PSK_ENABLED MBEDTLS_KEY_EXCHANGE_DHE_PSK_ENABLED \
        MBEDTLS_KEY_EXCHANGE_ECDHE_PSK_ENABLED MBEDTLS_KEY_EXCHANGE_RSA_PSK_ENABLED \
        MBEDTLS_KEY_EXCHANGE_DHE_RSA_ENABLED MBEDTLS_KEY_EXCHANGE_ECDH_ECDSA_ENABLED \
        MBEDTLS_KEY_EXCHANGE_ECDH_RSA_ENABLED MBEDTLS_DHM_C \
        MBEDTLS_ARC4_C MBEDTLS_BLOWFISH_C MBEDTLS_CAMELLIA_C MBEDTLS_CCM_C MBEDTLS_DES_C \
        MBEDTLS_XTEA_C MBEDTLS_RIPEMD160_C MBEDTLS_MD5_C MBEDTLS_PADLOCK_C \
        MBEDTLS_CIPHER_MODE_CFB MBEDTLS_CIPHER_MODE_OFB MBEDTLS_CIPHER_MODE_XTS \
        MBEDTLS_CIPHER_PADDING_ONE_AND_ZEROS MBEDTLS_CIPHER_PADDING_ZEROS_AND_LEN \
        MBEDTLS_CIPHER_PADDING_ZEROS \
        MBEDTLS_ECP_DP_SECP192R1_ENABLED MBEDTLS_ECP_DP_SECP224R1_ENABLED \
        MBEDTLS_ECP_DP_SECP192K1_ENABLED MBEDTLS_ECP_DP_SECP224K1_ENABLED \
        MBEDTLS_ECP_DP_SECP256K1_ENABLED MBEDTLS_ECP_DP_BP256R1_ENABLED \
        MBEDTLS_ECP_DP_BP384R1_ENABLED MBEDTLS_ECP_DP_BP512R1_ENABLED \
        MBEDTLS_ECP_DP_CURVE448_ENABLED MBEDTLS_ECDSA_DETERMINISTIC \
        MBEDTLS_PKCS5_C MBEDTLS_PKCS12_C MBEDTLS_PEM_WRITE_C \
        MBEDTLS_X509_CREATE_C MBEDTLS_X509_CRT_WRITE_C MBEDTLS_X509_CSR_WRITE_C \
        MBEDTLS_X509_CSR_PARSE_C MBEDTLS_CERTS_C MBEDTLS_DEBUG_C MBEDTLS_SELF_TEST \
        MBEDTLS_VERSION_FEATURES MBEDTLS_GENPRIME MBEDTLS_PK_RSA_ALT_SUPPORT \
        MBEDTLS_PSA_CRYPTO_C MBEDTLS_PSA_CRYPTO_STORAGE_C MBEDTLS_PSA_ITS_FILE_C \
        MBEDTLS_HKDF_C MBEDTLS_TIMING_C; do
        run_logged mbedtls python3 scripts/config.py unset "$opt"
    done
    # Upstream's plain Makefile (no cmake needed); only the library.
    run_logged mbedtls make -C library -j"$JOBS" static \
        CC="$CC" AR="$AR" CFLAGS="$CFLAGS" LDFLAGS=
    rm -rf "$PREFIX/include/mbedtls" "$PREFIX/include/psa"
    cp -r include/mbedtls include/psa "$PREFIX/include/"
    cp library/libmbedtls.a library/libmbedx509.a library/libmbedcrypto.a "$PREFIX/lib/"
    # mbedtls 2.28 ships no .pc files; write them so pkg-config users work.
    local v=${VERSION[mbedtls]%%-*} l
    for l in mbedcrypto mbedx509 mbedtls; do
        local req=""
        [ $l = mbedx509 ] && req="Requires.private: mbedcrypto"
        [ $l = mbedtls ]  && req="Requires.private: mbedx509"
        cat >"$PREFIX/lib/pkgconfig/$l.pc" <<EOF
prefix=$PREFIX
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: $l
Description: Mbed TLS ($l), static, musl
Version: $v
$req
Cflags: -I\${includedir}
Libs: -L\${libdir} -l$l
Libs.private: -lpthread
EOF
    done
}

build_util_linux() {
    unpack util-linux
    cd "$SRC"
    # homeport's patch 1: libblkid probes for the ext family only, and no
    # partition tables.  libmount is its one user in homeport, and only
    # when it has to guess a filesystem's type: homeport mounts its homes
    # with the type given (ext4) and never probes a device.
    apply_patches util-linux
    touch_autotools_outputs "$SRC"
    run_logged util-linux ./configure \
        --prefix="$PREFIX" --libdir="$PREFIX/lib" \
        --disable-shared --enable-static \
        --disable-all-programs --enable-libmount --enable-libblkid \
        --disable-libuuid --disable-libsmartcols --disable-libfdisk \
        --disable-nls --disable-rpath --disable-asciidoc --disable-poman \
        --disable-bash-completion --disable-pylibmount --disable-gtk-doc \
        --disable-makeinstall-chown --disable-makeinstall-setuid \
        --without-udev --without-systemd --without-selinux --without-audit \
        --without-smack --without-cryptsetup --without-python --without-btrfs \
        --without-econf --without-libz --without-libmagic --without-user \
        --without-cap-ng --without-readline --without-ncursesw --without-tinfo \
        --disable-dependency-tracking
    run_logged util-linux make -j"$JOBS" libblkid.la libmount.la
    # Install just the two libraries (+ headers and .pc files).
    run_logged util-linux make install-usrlib_execLTLIBRARIES \
        install-nodist_blkidincHEADERS install-nodist_mountincHEADERS install-pkgconfigDATA
    rm -f "$PREFIX"/lib/libblkid.la "$PREFIX"/lib/libmount.la
}

# mini-gmp instead of GNU GMP: the stripped homeport is 196 kB smaller
# (GMP's share of it was 220 kB, mini-gmp's is 26 kB), and there is one
# source package (and 100 s of build) less.  The price, in nettle's manual's
# words "more likely to leak side-channel information": RSA private-key
# operations (signing with an RSA client key) use mini-gmp's mpz_powm
# instead of mpn_sec_powm, with blinding; nettle's ECC code (ECDHE, ECDSA,
# Ed25519) is its own constant-time code either way.
build_nettle() {
    unpack nettle
    cd "$SRC"
    # Fat build (the default): the AES-NI/SHA-NI/PCLMUL code paths are picked
    # at run time, so the binary still runs on processors without them.
    # homeport's patch: they are picked at the first call of a cipher, not
    # by a constructor at every start (its cpuid instructions cost the PAM
    # client 30 us an exec in a virtual machine).
    apply_patches nettle
    # -O2, not the others' -Os: nettle's C is the elliptic-curve and
    # bignum code of every TLS handshake.
    run_logged nettle env CFLAGS="${CFLAGS/-Os/-O2}" ./configure \
        --prefix="$PREFIX" --libdir="$PREFIX/lib" \
        --disable-shared --enable-static \
        --enable-mini-gmp \
        --disable-documentation --disable-openssl \
        --disable-dependency-tracking
    grep -q '^#define WITH_HOGWEED 1' config.h || die "nettle: no hogweed (public-key half)"
    grep -q '^#define NETTLE_USE_MINI_GMP 1' version.h || die "nettle: not built with mini-gmp"
    # configure appends -ggdb3 to CFLAGS (none of the other libraries has
    # debug information; it only makes the unstripped binary larger).
    sed -i 's/ -ggdb3//' config.make
    # Libraries only (no tools, testsuite, examples).
    run_logged nettle make -j"$JOBS" all-here
    run_logged nettle make install-headers install-static install-pkgconfig
}

build_libtasn1() {
    unpack libtasn1-6
    cd "$SRC"
    touch_autotools_outputs "$SRC"
    run_logged libtasn1-6 ./configure \
        --prefix="$PREFIX" --libdir="$PREFIX/lib" \
        --disable-shared --enable-static \
        --disable-doc --disable-valgrind-tests \
        --disable-dependency-tracking
    # Library only (no asn1Parser & co, no tests).
    run_logged libtasn1-6 make -C lib -j"$JOBS"
    run_logged libtasn1-6 make -C lib install
    rm -f "$PREFIX/lib/libtasn1.la"
}

# The configure flags of GnuTLS (part of its build stamp through
# build_gnutls's text).  What libnbd needs: TLS 1.2/1.3 client with X.509
# and PSK; everything else is left out.
build_gnutls() {
    unpack gnutls28
    cd "$SRC"
    # homeport's patch: a record's body is read into the buffer that holds
    # its header, instead of a buffer of its own that was then copied with
    # the header into a third (16 KiB copied a record read).
    apply_patches gnutls28
    # Debian's patch 51 adds gnulib's linkedhash-list module (used by its
    # patch 50 in lib/x509/verify-high.c) to gl/Makefile.am; Debian then runs
    # autoreconf.  Add its two objects to the generated gl/Makefile.in.
    touch_autotools_outputs "$SRC"
    if [ ! -f gl/gl_linkedhash_list.c ] || [ ! -f gl/gl_list.c ]; then
        die "gnutls: gnulib list files missing"
    fi
    if ! grep -q 'gl_list\.lo' gl/Makefile.in; then
        sed -i 's|^am_libgnu_la_OBJECTS = |&gl_linkedhash_list.lo gl_list.lo |' gl/Makefile.in
        grep -q '^am_libgnu_la_OBJECTS = gl_linkedhash_list.lo gl_list.lo ' gl/Makefile.in ||
            die "gnutls: could not add the gnulib list objects to gl/Makefile.in"
    fi
    # gl_cv_have_weak=no: gnulib's locks otherwise call pthread through weak
    # references and take "is pthread_mutexattr_gettype linked?" to mean
    # "is the program multi-threaded?"; in a static link nothing pulls that
    # function in, so every GnuTLS lock would silently be a no-op.
    # Left out as unused by libnbd (a TLS 1.2/1.3 client with X.509 or PSK):
    # GOST, SRP, anonymous auth, OCSP, DTLS-SRTP, ALPN, heartbeat, SSLv2
    # client hello, the non-Suite-B curves (secp192r1, secp224r1), VIA's
    # PadLock engine (software AES on those processors).  Not DHE: libnbd's
    # PSK priority string names DHE-PSK, and is refused without it.
    run_logged gnutls28 ./configure \
        --prefix="$PREFIX" --libdir="$PREFIX/lib" \
        --disable-shared --enable-static \
        --with-nettle-mini gl_cv_have_weak=no \
        --without-p11-kit --without-idn --with-included-unistring \
        --without-tpm --without-tpm2 --disable-libdane \
        --without-zlib --without-brotli --without-zstd \
        --disable-doc --disable-manpages --disable-tools --disable-tests \
        --disable-cxx --disable-guile --disable-nls --disable-rpath \
        --disable-openssl-compatibility --disable-ssl3-support \
        --disable-gost --disable-srp-authentication --disable-anon-authentication \
        --disable-ocsp --disable-dtls-srtp-support --disable-alpn-support \
        --disable-heartbeat-support --disable-ssl2-support --disable-non-suiteb-curves \
        --disable-padlock \
        --with-default-trust-store-file= --with-default-trust-store-dir= \
        --disable-dependency-tracking
    ! grep -q '^#define USE_POSIX_THREADS_WEAK' config.h ||
        die "gnutls: gnulib would use weak pthread references (no-op locks when static)"
    grep -q '^#define USE_POSIX_THREADS 1' config.h || die "gnutls: built without thread support"
    run_logged gnutls28 make -C gl -j"$JOBS"
    run_logged gnutls28 make -C lib -j"$JOBS"
    run_logged gnutls28 make -C lib install
    rm -f "$PREFIX/lib/libgnutls.la"
}

build_libnbd() {
    unpack libnbd
    cd "$SRC"
    # homeport's patches: 1, the boot report's TLS line (libnbd's debug
    # message on a TLS connection gains the protocol version and the server
    # certificate's subject); 2, TCP_QUICKACK after each read from a TCP
    # socket (a server that writes without TCP_NODELAY, as nbd-server does,
    # otherwise stalls each reply 40 ms on this side's delayed ACK); 3, a
    # TLS read goes on while records are in (it polled between records).
    apply_patches libnbd
    touch_autotools_outputs "$SRC"
    # PERFORMANCE, not NORMAL: the same ciphers, AES-128-GCM first, and
    # ChaCha20-Poly1305 first on a processor without AES instructions
    # (GnuTLS decides at start-up).  NORMAL puts ChaCha20 second, after
    # AES-256-GCM, which a TLS 1.3 PSK (SHA-256) cannot use: PSK homes
    # got ChaCha20: 0.39 GB/s here against AES-128-GCM's 3.08 GB/s
    # (gnutls-cli --benchmark-ciphers).
    # pkg-config --static: configure's link tests (gnutls_session_set_verify_cert,
    # without which nbd_set_tls_verify_peer is ignored) need gnutls's private
    # libraries (hogweed, nettle, tasn1) too.
    run_logged libnbd ./configure \
        --prefix="$PREFIX" --libdir="$PREFIX/lib" \
        --disable-shared --enable-static \
        PKG_CONFIG="pkg-config --static" \
        --with-gnutls --without-libxml2 \
        --with-tls-priority=PERFORMANCE \
        --disable-ocaml --disable-python --disable-golang --disable-fuse \
        --disable-dependency-tracking
    grep -q '^#define HAVE_GNUTLS 1' config.h || die "libnbd: configure did not find gnutls"
    grep -q '^#define HAVE_GNUTLS_SESSION_SET_VERIFY_CERT 1' config.h ||
        die "libnbd: gnutls_session_set_verify_cert not found (static link test failed?)"
    # The generated C sources are in the tarball; build only what the library
    # needs (no generator/OCaml, no docs, no tools).
    local d
    for d in common/include common/utils lib; do
        run_logged libnbd make -C "$d" -j"$JOBS"
    done
    run_logged libnbd make -C lib install
    run_logged libnbd make -C include install
    rm -f "$PREFIX/lib/libnbd.la"
    # Upstream's libnbd.pc has no -I/-L (it assumes /usr); add them.
    # shellcheck disable=SC2016 # ${includedir} is pkg-config syntax
    sed -i -e 's|^Cflags:.*|Cflags: -I${includedir}|' \
           -e 's|^Libs:.*|Libs: -L${libdir} -lnbd|' \
           "$PREFIX/lib/pkgconfig/libnbd.pc"
    grep -q '^includedir=' "$PREFIX/lib/pkgconfig/libnbd.pc" ||
        sed -i "1i includedir=$PREFIX/include" "$PREFIX/lib/pkgconfig/libnbd.pc"
    grep -q '^libdir=' "$PREFIX/lib/pkgconfig/libnbd.pc" ||
        sed -i "1i libdir=$PREFIX/lib" "$PREFIX/lib/pkgconfig/libnbd.pc"
    # ... and no Requires.private, which a static link needs.
    sed -i 's|^Requires:.*|&\nRequires.private: gnutls|' "$PREFIX/lib/pkgconfig/libnbd.pc"
    pkg-config --static --libs libnbd | grep -q -- '-lgnutls' ||
        die "libnbd: libnbd.pc does not pull in gnutls"
}

# The same libnbd without GnuTLS, for the homeport without TLS (make notls:
# GnuTLS, nettle, hogweed and libtasn1 are about half of the binary):
# PREFIX/notls/lib/libnbd.a, whose nbd_supports_tls() is 0 (the headers
# are the same).  Its own tree, so that it builds beside the other.
build_libnbd_notls() {
    unpack libnbd libnbd-notls
    cd "$SRC"
    apply_patches libnbd libnbd-notls
    touch_autotools_outputs "$SRC"
    run_logged libnbd-notls ./configure \
        --prefix="$PREFIX/notls" --disable-shared --enable-static \
        --without-gnutls --without-libxml2 \
        --disable-ocaml --disable-python --disable-golang --disable-fuse \
        --disable-dependency-tracking
    ! grep -q '^#define HAVE_GNUTLS 1' config.h || die "libnbd-notls: configure found gnutls"
    local d
    for d in common/include common/utils lib; do
        run_logged libnbd-notls make -C "$d" -j"$JOBS"
    done
    mkdir -p "$PREFIX/notls/lib"
    cp lib/.libs/libnbd.a "$PREFIX/notls/lib/libnbd.a"
}

build_curl() {
    unpack curl
    cd "$SRC"
    # Debian's last two patches rename the library to libcurl-gnutls /
    # libcurl-nss (for its alternative builds).  Undo them, newest first.
    local p
    for p in $(grep -E '^(90_gnutls|99_nss)\.patch' debian/patches/series | tac); do
        run_logged curl patch -R -p1 --no-backup-if-mismatch -i "debian/patches/$p"
    done
    grep -q 'libcurl\.la' lib/Makefile.am || die "curl: reversing the gnutls/nss patches did not restore libcurl.la"
    # curl uses AM_MAINTAINER_MODE (off by default), so the Makefile.am and
    # configure.ac edits made by Debian's patches never trigger autotools.
    # homeport only POSTs to its own services over HTTP(S) (http.c): no
    # proxy (it sets none, homeport.conf(5)), cookies, MIME, netrc, HSTS,
    # alt-svc, DoH, HTTP authentication schemes, unix sockets, websockets,
    # verbose texts (CURLOPT_ERRORBUFFER's messages stay).
    run_logged curl ./configure \
        --prefix="$PREFIX" --libdir="$PREFIX/lib" \
        --disable-shared --enable-static \
        --with-mbedtls="$PREFIX" \
        --enable-http --disable-ftp --disable-file --disable-ldap --disable-ldaps \
        --disable-rtsp --disable-dict --disable-telnet --disable-tftp \
        --disable-pop3 --disable-imap --disable-smb --disable-smtp \
        --disable-gopher --disable-mqtt --disable-ntlm-wb --disable-manual \
        --disable-proxy --disable-cookies --disable-mime --disable-netrc \
        --disable-alt-svc --disable-hsts --disable-doh --disable-http-auth \
        --disable-crypto-auth --disable-ntlm --disable-tls-srp \
        --disable-get-easy-options --disable-headers-api --disable-dateparse \
        --disable-progress-meter --disable-dnsshuffle --disable-websockets \
        --disable-verbose --disable-unix-sockets --disable-libcurl-option \
        --without-libpsl --without-brotli --without-zstd --without-zlib \
        --without-nghttp2 --without-ngtcp2 --without-nghttp3 --without-quiche \
        --without-msh3 --without-hyper --without-libidn2 --without-libssh2 \
        --without-libssh --without-wolfssh --without-librtmp --without-libgsasl \
        --disable-ares --enable-threaded-resolver \
        --with-ca-bundle=/etc/ssl/certs/ca-certificates.crt --without-ca-path \
        --without-zsh-functions-dir --without-fish-functions-dir \
        --disable-dependency-tracking
    # Library only (the curl tool and docs are not needed).
    run_logged curl make -C lib -j"$JOBS"
    run_logged curl make -C lib install
    run_logged curl make -C include install
    run_logged curl make install-pkgconfigDATA install-binSCRIPTS
    rm -f "$PREFIX/lib/libcurl.la"
}

build_fuse3() {
    unpack fuse3
    cd "$SRC"
    # libfuse execs FUSERMOUNT_DIR/fusermount3 (then falls back to $PATH).
    # Meson derives FUSERMOUNT_DIR from the prefix, which would bake the build
    # machine's PREFIX/bin into the binary; point it at Debian's location.
    sed -i "s|^fusermount_path = .*|fusermount_path = '/usr/bin'|" lib/meson.build
    grep -q "^fusermount_path = '/usr/bin'" lib/meson.build || die "fuse3: could not set fusermount path"
    # --libdir=lib: Debian's meson would otherwise use lib/x86_64-linux-gnu.
    # -Dudevrulesdir/-Dinitscriptdir: nothing system-wide gets installed.
    run_logged fuse3 env CC="$CC" CFLAGS="$CFLAGS" LDFLAGS="$LDFLAGS" \
        meson setup build --prefix="$PREFIX" --libdir=lib --buildtype=plain \
        -Ddefault_library=static -Dutils=false -Dexamples=false -Dtests=false \
        -Dudevrulesdir="$PREFIX/lib/udev/rules.d" -Dinitscriptdir= \
        -Duseroot=false
    run_logged fuse3 ninja -C build -j"$JOBS"
    run_logged fuse3 meson install -C build --no-rebuild
}

# --------------------------------------------------------------------------
# link.mk, versions, link check

write_outputs() {
    CURRENT_STEP="write link.mk / versions.txt"
    local p
    {
        echo "# Debian bookworm source packages built into $PREFIX"
        for p in "${PACKAGES[@]}"; do printf '%-12s %s\n' "$p" "${VERSION[$p]}"; done
    } >"$PREFIX/versions.txt.new"
    mv "$PREFIX/versions.txt.new" "$PREFIX/versions.txt"
    # Order matters for a static link: a library before the ones it uses.
    # libmount needs libblkid; libcurl needs mbedtls (tls -> x509 -> crypto);
    # libnbd needs gnutls, which needs hogweed -> nettle and libtasn1.
    # musl keeps pthread/dl/rt in libc; -lpthread is kept for portability.
    # Include dirs from the .pc files (libmount/blkid/fuse3 headers live in
    # subdirectories: code includes <libmount.h>, <blkid.h>, <fuse_lowlevel.h>).
    local pc_cflags
    pc_cflags=$(pkg-config --cflags mount blkid libnbd gnutls libcurl fuse3 mbedtls) ||
        die "pkg-config cannot read the .pc files in $PREFIX/lib/pkgconfig"
    pc_cflags=${pc_cflags%"${pc_cflags##*[! ]}"}   # drop trailing blanks
    cat >"$PREFIX/link.mk.new" <<EOF
# Generated by deps/build.sh -- static musl dependencies for homeport.
# Use with CC = musl-gcc and LDFLAGS += -static.
DEPS_PREFIX   = $PREFIX
DEPS_KHEADERS = $KHEADERS
STATIC_CFLAGS = -isystem $KHEADERS $pc_cflags
# --gc-sections drops the unused parts (libraries use -ffunction-sections).
STATIC_LDFLAGS = -static -Wl,--gc-sections
STATIC_LIBS   = -L$PREFIX/lib -lmount -lblkid -lnbd -lgnutls -lhogweed -lnettle -ltasn1 -lcurl -lmbedtls -lmbedx509 -lmbedcrypto -lfuse3 -lpthread
# The homeport without TLS for NBD (make notls): libnbd without GnuTLS.
STATIC_LIBS_NOTLS = -L$PREFIX/notls/lib -L$PREFIX/lib -lmount -lblkid -lnbd -lcurl -lmbedtls -lmbedx509 -lmbedcrypto -lfuse3 -lpthread
EOF
    mv "$PREFIX/link.mk.new" "$PREFIX/link.mk"
}

# The two chains that run side by side.  Neither builds anything the other
# one's configure scripts look for.
chain_curl_fuse() {
    build_if_needed mbedtls build_mbedtls lib/libmbedtls.a lib/libmbedx509.a lib/libmbedcrypto.a
    # curl is rebuilt whenever mbedtls is.
    DEPKEY=$(cat "$STAMPS/build-mbedtls") \
    build_if_needed curl build_curl lib/libcurl.a include/curl/curl.h
    build_if_needed util-linux build_util_linux lib/libmount.a lib/libblkid.a lib/pkgconfig/mount.pc
    build_if_needed fuse3 build_fuse3 lib/libfuse3.a include/fuse3/fuse_lowlevel.h
    # (no GnuTLS: it belongs to neither chain)
    build_if_needed libnbd:notls build_libnbd_notls notls/lib/libnbd.a
}

chain_nbd() {
    # Each library is rebuilt whenever one it is built against is; the stamps
    # chain, so libnbd's key covers gnutls, nettle and libtasn1.
    build_if_needed nettle build_nettle lib/libnettle.a lib/libhogweed.a lib/pkgconfig/hogweed.pc
    build_if_needed libtasn1-6 build_libtasn1 lib/libtasn1.a lib/pkgconfig/libtasn1.pc
    DEPKEY=$(cat "$STAMPS/build-nettle" "$STAMPS/build-libtasn1-6") \
    build_if_needed gnutls28 build_gnutls lib/libgnutls.a lib/pkgconfig/gnutls.pc
    DEPKEY=$(cat "$STAMPS/build-gnutls28") \
    build_if_needed libnbd build_libnbd lib/libnbd.a include/libnbd.h
}

# --------------------------------------------------------------------------
main() {
    msg "WORKDIR=$WORKDIR PREFIX=$PREFIX jobs=$JOBS"
    apt_setup
    local p
    for p in "${PACKAGES[@]}"; do fetch "$p"; done
    msg "source versions: $(for p in "${PACKAGES[@]}"; do printf '%s=%s ' "$p" "${VERSION[$p]}"; done)"
    kernel_headers

    CURRENT_STEP="building the libraries"
    # Two independent chains run side by side: most of the time goes into
    # single-threaded ./configure runs, so one chain configures while the
    # other compiles.  (DEPS_SERIAL=1 runs them one after the other.)
    if [ "${DEPS_SERIAL:-0}" = 1 ]; then
        chain_nbd
        chain_curl_fuse
    else
        local pid_nbd pid_cf rc_nbd=0 rc_cf=0
        chain_nbd & pid_nbd=$!
        chain_curl_fuse & pid_cf=$!
        wait "$pid_nbd" || rc_nbd=$?
        wait "$pid_cf" || rc_cf=$?
        [ $rc_nbd = 0 ] || die "nettle/libtasn1/gnutls/libnbd chain failed (see messages above)"
        [ $rc_cf = 0 ] || die "mbedtls/curl/util-linux/fuse3 chain failed (see messages above)"
    fi

    write_outputs
    CURRENT_STEP="link check"
    "$SCRIPT_DIR/linkcheck.sh" "$PREFIX"
    CURRENT_STEP="TLS check"
    "$SCRIPT_DIR/tlscheck.sh" "$PREFIX"
    CURRENT_STEP="done"
    msg "all done"
}

main
