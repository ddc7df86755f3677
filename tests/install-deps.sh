#!/bin/sh
# Install the Debian packages the build and the tests need, only those that
# are missing.  Runs unattended (CI=true, no stdin).  Needs root to install;
# without root it only reports what is missing.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
lists="$top/deps/apt-packages.txt $top/tests/apt-packages.txt $top/tests/vm/apt-packages.txt"
missing=""
for pkg in $(cat $lists | sed 's/#.*//'); do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case $status in *" installed") ;; *) missing="$missing $pkg" ;; esac
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing"
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: not root: install these packages first:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet; a stale one may 404.
if ! apt-get install -y --no-install-recommends $missing </dev/null; then
    apt-get update </dev/null
    apt-get install -y --no-install-recommends $missing </dev/null
fi
