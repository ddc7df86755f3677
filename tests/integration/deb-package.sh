#!/usr/bin/env bash
# The Debian package, piuparts-style: two versions built with `make deb`
# (from a copy of the tree, so the suite's build/homeport stays as it was),
# installed into a fresh Debian 12 chroot made by mmdebstrap from this
# machine's Debian mirror (the tarball cached in build/deb-test/): the
# files, the conffiles, config-check, the agent started by postinst, the
# pam-auth-update profile; an upgrade with a changed conffile and a home
# mounted (nbdkit on the host, `homeport mount` in the chroot): the
# conffile kept, the agent handed over (new pid, new binary) and the home
# never unmounted; then dpkg -r and dpkg -P leave only what policy allows.
# The chroot runs in the test's private mount namespace; invoke-rc.d is let
# through by a policy-rc.d, as on a machine booted with sysvinit.
. "$(dirname "$0")/../lib.sh"

if ! own_libnbd; then
    echo "1..0 # SKIP the package carries the static binary that make deb builds: the static flavour tests it"
    exit 0
fi
requires mmdebstrap dpkg-buildpackage dh nbdkit
if [ ! -e "$TOP/build/sysroot/link.mk" ]; then
    echo "1..0 # SKIP no build/sysroot (make): the package build reuses it"
    exit 0
fi
enter_namespace "$@"
setup_root

R=$T/root                     # the chroot
V1=0.1+pkgtest1 V2=0.1+pkgtest2
CACHE=$TOP/build/deb-test
MIRROR=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2> /dev/null | head -1)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# what apt install ./homeport_*.deb needs (Depends, Recommends) comes with
# the tarball: the installs below reach no network
INCLUDE=e2fsprogs,fuse3,init-system-helpers,libpam-runtime

in_root() { timeout 120 chroot "$R" "$@"; }
# agent_pid: the pid the chroot's pid file names, when it is a live homeport
agent_pid() {
    local p
    p=$(cat "$R/run/homeport/agent.pid" 2> /dev/null) && [ -n "$p" ] &&
        [ "$(cat "/proc/$p/comm" 2> /dev/null)" = homeport ] && echo "$p"
}
# gone PID: the process has exited (a zombie not yet reaped by whatever
# adopted the daemon counts as gone)
gone() {
    local st
    st=$(cat "/proc/$1/stat" 2> /dev/null) || return 0
    st=${st##*) }
    [ "${st%% *}" = Z ]
}
mount_id() { awk -v m="$R/home/alice" '$5 == m { print $1 }' /proc/self/mountinfo; }
# What a package may leave behind is compared on this list of the chroot's
# files: dpkg's and apt's own state, logs, caches and run-time dirs aside.
tree_list() {
    (cd "$R" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./run -o -path ./tmp \
        -o -path ./var/log -o -path ./var/cache -o -path ./var/lib/dpkg -o -path ./var/lib/apt \
        -o -path ./srv \) -prune -o -print | sort)
}
stop_chroot() {
    local f p
    for f in "$R"/run/homeport/homes/*; do
        [ -f "$f" ] || continue
        p=$(sed -n 's/^worker=//p' "$f")
        [ -n "$p" ] && kill -9 "$p" 2> /dev/null
    done
    p=$(agent_pid) && kill -9 "$p"
    return 0 # _cleanup then unmounts everything below $T
}
CLEANUP_HOOK=stop_chroot

# --- two versions of the package, built the way the README says ---------
mkdir -p "$T/src"
tar -C "$TOP" --exclude=./build --exclude=./.git -cf - . | tar -C "$T/src" -xf -
mkdir -p "$T/src/build"
ln -s "$(readlink -f "$TOP/build/sysroot")" "$T/src/build/sysroot"
for v in "$V1" "$V2"; do
    rc=0
    (cd "$T/src" && timeout 600 nice make deb DEB_VERSION="$v") > "$T/build-$v.log" 2>&1 || rc=$?
    if [ "$rc" = 0 ] && [ -f "$T/src/build/deb/homeport_${v}_$(dpkg --print-architecture).deb" ]; then
        ok "make deb DEB_VERSION=$v"
    else
        not_ok "make deb DEB_VERSION=$v (exit $rc)"; tail -30 "$T/build-$v.log" | sed 's/^/#   /'
        done_testing; exit
    fi
    mkdir -p "$T/deb-$v" && mv "$T/src/build/deb/"* "$T/deb-$v/"
done
if command -v lintian > /dev/null; then
    timeout 300 lintian "$T/deb-$V2/homeport.changes" > "$T/lintian" 2>&1
    lacks "$T/lintian" '^[EW]:' "lintian: no error, no warning"
else
    skip "lintian" "lintian is not installed"
fi

# --- a fresh Debian 12 chroot ---------------------------------------------
mkdir -p "$CACHE"
TARBALL=$CACHE/bookworm-minbase-$(echo "$MIRROR $INCLUDE" | md5sum | cut -c1-8).tar
if [ ! -s "$TARBALL" ]; then
    rc=0
    # (the name's .tar says the format)
    timeout 900 nice mmdebstrap --variant=minbase --include="$INCLUDE" bookworm "$CACHE/partial.tar" \
        "deb $MIRROR bookworm main" > "$T/mmdebstrap.log" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        rm -f "$CACHE/partial.tar"
        not_ok "mmdebstrap from $MIRROR (exit $rc)"; tail -20 "$T/mmdebstrap.log" | sed 's/^/#   /'
        done_testing; exit
    fi
    mv "$CACHE/partial.tar" "$TARBALL"
fi
mkdir -p "$R"
if ! tar -C "$R" -xf "$TARBALL" || [ ! -x "$R/usr/bin/apt-get" ]; then
    not_ok "the chroot from $TARBALL"; done_testing; exit
fi
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount --rbind /sys "$R/sys"
mount -t tmpfs -o mode=0755 run "$R/run"
printf '#!/bin/sh\nexit 0\n' > "$R/usr/sbin/policy-rc.d" && chmod 755 "$R/usr/sbin/policy-rc.d"
in_root useradd -u 2001 -M alice
mkdir -p "$R/home/alice" "$R/srv/homes" "$R/tmp/v1" "$R/tmp/v2"
cp "$T/deb-$V1"/homeport_*.deb "$R/tmp/v1/" && cp "$T/deb-$V2"/homeport_*.deb "$R/tmp/v2/"
tree_list > "$T/tree.before"

# --- install N ----------------------------------------------------------------
rc=0
in_root sh -c 'cd /tmp/v1 && apt-get install -y ./homeport_*.deb' > "$T/out" 2>&1 || rc=$?
expect_rc 0 "apt-get install ./homeport_*.deb into a fresh Debian 12"
check "installed, version $V1" test "$(in_root dpkg-query -W -f='${Status} ${Version}' homeport)" = "install ok installed $V1"
for f in /usr/sbin/homeport /usr/share/man/man8/homeport.8.gz /usr/share/man/man5/homeport.conf.5.gz \
    /usr/share/man/man1/homeport-sync-popup.1.gz /usr/share/pam-configs/homeport \
    /usr/share/pam-configs/homeport-roaming /lib/systemd/system/homeport.service /etc/init.d/homeport \
    /usr/share/initramfs-tools/hooks/homeport /usr/share/initramfs-tools/scripts/init-premount/homeport \
    /usr/lib/dracut/modules.d/95homeport/module-setup.sh /usr/bin/homeport-sync-popup \
    /etc/X11/Xsession.d/95homeport-sync-popup /usr/share/doc/homeport/examples/pam.d/debian-common-account \
    /usr/share/doc/homeport/copyright; do
    [ -e "$R$f" ] || missing="${missing:-} $f"
done
check "every file in place${missing:+ (missing:$missing)}" test -z "${missing:-}"
in_root dpkg-query -W -f='${Conffiles}\n' homeport | awk 'NF { print $1 }' | sort > "$T/conffiles"
printf '%s\n' /etc/X11/Xsession.d/95homeport-sync-popup /etc/homeport.conf /etc/homeport/sync-exclude \
    /etc/init.d/homeport > "$T/conffiles.want"
check "conffiles: homeport.conf, sync-exclude, the init script, the Xsession hook" cmp -s "$T/conffiles" "$T/conffiles.want"
check "the DAEMON of the init script is /usr/sbin/homeport" grep -q '^DAEMON=/usr/sbin/homeport$' "$R/etc/init.d/homeport"
check "the unit runs /usr/sbin/homeport" grep -q '^ExecStart=/usr/sbin/homeport agent --replace$' "$R/lib/systemd/system/homeport.service"
rc=0
in_root homeport config-check > "$T/out" 2>&1 || rc=$?
expect_rc 0 "homeport config-check on the shipped /etc/homeport.conf"
check "homeport version says $V1" bash -c "chroot '$R' homeport version | grep -qxF 'homeport $V1'"
check "started at boot: rc2.d link (update-rc.d)" bash -c "ls '$R'/etc/rc2.d/S*homeport > /dev/null"
check "started at boot: the unit enabled" test -L "$R/etc/systemd/system/multi-user.target.wants/homeport.service"
P1=$(agent_pid)
check "postinst started the agent (pid ${P1:-none})" test -n "$P1"
check "the PAM profile is off by default" bash -c "! grep -q homeport '$R/etc/pam.d/common-account'"
rc=0
in_root pam-auth-update --enable homeport > "$T/out" 2>&1 || rc=$?
expect_rc 0 "pam-auth-update --enable homeport"
check "account line after pam_unix's block" bash -c "grep -v '^#' '$R/etc/pam.d/common-account' | grep -E '^account' | tail -1 | grep -qE 'required[[:space:]]+pam_exec.so stdout quiet /usr/sbin/homeport pam'"
check "session line, interactive only, after pam_unix" bash -c "grep -A1 -E '^session[[:space:]]+required[[:space:]]+pam_unix.so' '$R/etc/pam.d/common-session' | grep -qE 'requisite[[:space:]]+pam_exec.so stdout quiet /usr/sbin/homeport pam' && ! grep -q homeport '$R/etc/pam.d/common-session-noninteractive'"

# --- the site changes the conffile; a home is mounted -------------------
sed -i -e '1i # changed by the site: the package test' -e 's|^servers =.*|servers = unix:/srv/nbd.sock|' \
    -e 's|^attach = auto|attach = fuse|' "$R/etc/homeport.conf"
cp "$R/etc/homeport.conf" "$T/site.conf"
rc=0
in_root homeport mkhome alice --size 64M > "$T/out" 2>&1 || rc=$?
expect_rc 0 "homeport mkhome alice in the chroot"
check "nbdkit serves /srv/homes" start_nbdkit "$R/srv/nbd.sock" file dir="$R/srv/homes"
rc=0
in_root homeport mount alice > "$T/out" 2>&1 || rc=$?
expect_rc 0 "homeport mount alice"
M1=$(mount_id)
W1=$(sed -n 's/^worker=//p' "$R/run/homeport/homes/alice" 2> /dev/null)
check "alice's home is mounted (mount ${M1:-none}, worker ${W1:-none})" test -n "$M1" -a -n "$W1"
echo "written before the upgrade" > "$R/home/alice/note"
exec 7< "$R/home/alice/note" # a file held open in the home across the upgrade
rc=0
in_root /etc/init.d/homeport reload > "$T/out" 2>&1 || rc=$?
expect_rc 0 "the agent reloads the site's configuration"

# --- upgrade to N+1 -------------------------------------------------------------
rc=0
in_root sh -c 'cd /tmp/v2 && apt-get install -y ./homeport_*.deb' > "$T/upgrade.out" 2>&1 || rc=$?
cp "$T/upgrade.out" "$T/out"
expect_rc 0 "upgrade with apt-get install ./homeport_*.deb"
contains "$T/upgrade.out" "homeport: handing over to a new agent" "postinst hands over through the init script (restart)"
lacks "$T/upgrade.out" "stopping the" "nothing stops the agent"
check "installed, version $V2" test "$(in_root dpkg-query -W -f='${Version}' homeport)" = "$V2"
check "the changed conffile is kept as it was" cmp -s "$R/etc/homeport.conf" "$T/site.conf"
check "no .dpkg-new, .dpkg-dist or .dpkg-old left" bash -c "! find '$R/etc' -name '*.dpkg-*' | grep -q ."
P2=$(agent_pid)
check "an agent runs after the upgrade (pid ${P2:-none})" test -n "$P2"
check "it is a new agent (was $P1)" test -n "$P2" -a "$P2" != "$P1"
check "the old agent is gone" gone "$P1"
check "the new agent runs the new binary" test "$(readlink "/proc/$P2/exe" 2> /dev/null)" = "$R/usr/sbin/homeport"
check "the home was never unmounted (mount $M1)" test "$(mount_id)" = "$M1"
check "its worker still serves it (pid $W1)" kill -0 "$W1"
check "the file held open reads back" bash -c 'read -r l <&7 && [ "$l" = "written before the upgrade" ]'
check "the home still works" bash -c "echo after > '$R/home/alice/after' && sync -f '$R/home/alice/after' && test \"\$(cat '$R/home/alice/note')\" = 'written before the upgrade'"
rc=0
in_root homeport status > "$T/out" 2>&1 || rc=$?
expect_rc 0 "homeport status after the upgrade"
contains "$T/out" "^alice /dev/loop[0-9]+ on /home/alice \(mounted\): unix:/srv/nbd.sock export 'alice' via fuse" "status: alice's home, mounted"
rc=0
in_root homeport version > "$T/out" 2>&1 || rc=$?
check "homeport version says $V2" grep -qxF "homeport $V2" "$T/out"
exec 7<&-
rc=0
in_root homeport umount alice > "$T/out" 2>&1 || rc=$?
expect_rc 0 "homeport umount alice (the new agent's records)"

# --- remove, then purge --------------------------------------------------------
rc=0
in_root dpkg -r homeport > "$T/out" 2>&1 || rc=$?
expect_rc 0 "dpkg -r homeport"
check "the binary is gone" test ! -e "$R/usr/sbin/homeport"
check "the conffiles stay (config-files state)" bash -c "test \"\$(chroot '$R' dpkg-query -W -f='\${Status}' homeport)\" = 'deinstall ok config-files' && cmp -s '$R/etc/homeport.conf' '$T/site.conf'"
check "the agent was stopped" gone "$P2"
check "the PAM lines are out of the stacks" bash -c "! grep -rq homeport '$R/etc/pam.d/'"
rc=0
in_root dpkg -P homeport > "$T/out" 2>&1 || rc=$?
expect_rc 0 "dpkg -P homeport"
tree_list > "$T/tree.after"
diff "$T/tree.before" "$T/tree.after" > "$T/tree.diff"
check "purge leaves the chroot's files as they were before the install" test ! -s "$T/tree.diff"
sed 's/^/#   /' "$T/tree.diff"
done_testing
