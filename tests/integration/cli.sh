#!/usr/bin/env bash
# The command line: help, version, config-check, and the errors a site
# administrator meets (missing file, bad lines, unknown verb).
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root

hp --help
expect_rc 0 "--help"
contains "$T/out" "^usage: homeport \[-c FILE\] \[-v\] VERB" "usage line"
contains "$T/out" "boot \[--json\]" "help lists boot"
hp boot --help
expect_rc 0 "boot --help"

hp version
expect_rc 0 "version"
for lib in "^homeport " "^libmount 2\." "^libnbd 1\." "^libcurl [78]\." "^mbed TLS 2\."; do
    contains "$T/out" "$lib" "version names ${lib#^}"
done

hp config-check
expect_rc 0 "config-check of the test config"
contains "$T/out" "^$CONF: ok$" "config-check says ok"

hp config-check "$TOP/configs/homeport.conf"
expect_rc 0 "the shipped example configuration is valid"

cat > "$T/bad.conf" <<'BAD'
[boot]
staging_dir = relative
unmount_stale = perhaps
[nbd]
servers = good:10809 bad:host:1
colour = blue
BAD
hp config-check "$T/bad.conf"
expect_rc 2 "config-check of a bad file"
contains "$T/err" "$T/bad.conf:2: bad value for 'staging_dir': 'relative'" "line 2 named"
contains "$T/err" "$T/bad.conf:3: bad value for 'unmount_stale': 'perhaps' \(expected yes or no\)" "line 3 named"
contains "$T/err" "$T/bad.conf:5: bad value for 'servers': 'bad:host:1'" "line 5 named"
contains "$T/err" "$T/bad.conf:6: unknown key 'colour' in section \[nbd\]" "line 6 named"

printf '[remote]\npresence = on\npresence_url = http://p\nsecret_file = %s\n' "$T/secret" > "$T/remote.conf"
hp config-check "$T/remote.conf"
expect_rc 1 "config-check: the services' secret is missing"
contains "$T/err" "^$T/remote.conf: cannot read the secret $T/secret: No such file or directory$" "naming the secret"
echo s3cret > "$T/secret"
chmod 640 "$T/secret"
hp config-check "$T/remote.conf"
expect_rc 1 "config-check: the secret is group-readable"
contains "$T/err" "has mode 0640: group and others must not have access" "saying so"
chmod 600 "$T/secret"
hp config-check "$T/remote.conf"
expect_rc 0 "config-check: a good secret"

rc=0
timeout 10 "$HOMEPORT" -c "$T/bad.conf" boot > "$T/out" 2> "$T/err" || rc=$?
expect_rc 2 "boot with a bad config: exit 2"
check "boot with a bad config touches nothing" test -d "$T/home/profiletemp"

rc=0
timeout 10 "$HOMEPORT" -c "$T/missing.conf" boot > "$T/out" 2> "$T/err" || rc=$?
expect_rc 2 "a missing -c file is an error"
contains "$T/err" "cannot read configuration $T/missing.conf: No such file or directory" "missing file named"

hp frobnicate
expect_rc 2 "unknown verb"
contains "$T/err" "unknown verb 'frobnicate'" "unknown verb named"
hp boot --bogus
expect_rc 2 "unknown option"
hp boot extra
expect_rc 2 "unexpected argument"
rc=0
timeout 10 "$HOMEPORT" > "$T/out" 2> "$T/err" || rc=$?
expect_rc 2 "no verb: usage on stderr"

# --- log = kmsg (what an initramfs has): records reach the kernel log ---
if [ -w /dev/kmsg ] && dmesg > /dev/null 2>&1; then
    sed 's/^log = stderr$/log = kmsg/' "$CONF" > "$T/kmsg.conf"
    touch "$T/home/profiletemp/marker-$$"
    rc=0
    timeout 10 "$HOMEPORT" -c "$T/kmsg.conf" boot > "$T/out" 2> "$T/err" || rc=$?
    expect_rc 0 "boot with log = kmsg"
    check "the kernel log has the record" bash -c "dmesg | grep -qF 'homeport[' && dmesg | grep -F 'emptied $T/home/profiletemp (1 entry removed)' | grep -q homeport"
    check "nothing logged on stderr" test ! -s "$T/err"
    # A PAM stage with nothing to log does not open the kernel log (40 us
    # of every login's client): it is opened at the first message.  (The
    # sanitizers' leak check cannot run under ptrace.)
    rc=0
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
        PAM_TYPE=account PAM_USER=root PAM_SERVICE=login timeout 10 strace -f -e trace=open,openat \
        -o "$T/strace" "$HOMEPORT" -c "$T/kmsg.conf" pam > "$T/out" 2> "$T/err" || rc=$?
    expect_rc 0 "pam account for root with log = kmsg"
    check "the PAM client ran (strace saw its config read)" grep -qF "$T/kmsg.conf" "$T/strace"
    check "a silent PAM client leaves /dev/kmsg closed" bash -c "! grep -F /dev/kmsg '$T/strace'"
else
    skip "log = kmsg" "/dev/kmsg not writable or dmesg not readable here"
fi

# --- make install into a staging root ---
rc=0
make -s -C "$TOP" install DESTDIR="$T/dest" PREFIX=/usr BIN="$HOMEPORT" > "$T/out" 2>&1 || rc=$?
expect_rc 0 "make install DESTDIR=… PREFIX=/usr"
for f in usr/sbin/homeport usr/share/man/man8/homeport.8 usr/share/man/man5/homeport.conf.5 \
    usr/share/doc/homeport/examples/homeport.conf etc/homeport.conf usr/share/doc/homeport/examples/pam.d/debian-common-session \
    etc/init.d/homeport lib/systemd/system/homeport.service usr/bin/homeport-sync-popup \
    etc/X11/Xsession.d/95homeport-sync-popup usr/share/doc/homeport/examples/sync-exclude \
    etc/initramfs-tools/hooks/homeport etc/initramfs-tools/scripts/init-premount/homeport \
    usr/lib/dracut/modules.d/95homeport/module-setup.sh usr/share/man/man1/homeport-sync-popup.1 \
    usr/share/pam-configs/homeport usr/share/pam-configs/homeport-roaming \
    usr/share/doc/homeport/examples/ceph/homeport-exporter \
    usr/share/doc/homeport/examples/ceph/homeport-exporter.service; do
    check "installed $f" test -s "$T/dest/$f"
done
check "the init script runs the installed binary" grep -q "^DAEMON=/usr/sbin/homeport$" "$T/dest/etc/init.d/homeport"
check "so does the unit" grep -q "^ExecStart=/usr/sbin/homeport agent --replace$" "$T/dest/lib/systemd/system/homeport.service"
check "so do the pam-auth-update profiles" bash -c "grep -q 'pam_exec.so stdout quiet /usr/sbin/homeport pam' '$T/dest/usr/share/pam-configs/homeport' && grep -q 'expose_authtok quiet /usr/sbin/homeport pam' '$T/dest/usr/share/pam-configs/homeport-roaming'"
check "and the X session script its popup" grep -q "/usr/bin/homeport-sync-popup" "$T/dest/etc/X11/Xsession.d/95homeport-sync-popup"
check "installed binary runs" "$T/dest/usr/sbin/homeport" version
echo "# local change" >> "$T/dest/etc/homeport.conf"
make -s -C "$TOP" install DESTDIR="$T/dest" PREFIX=/usr BIN="$HOMEPORT" > "$T/out" 2>&1
check "a second install keeps the admin's /etc/homeport.conf" grep -q "local change" "$T/dest/etc/homeport.conf"
check "installed config is valid" "$T/dest/usr/sbin/homeport" config-check "$T/dest/etc/homeport.conf"

done_testing
