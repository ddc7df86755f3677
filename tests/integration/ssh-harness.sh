#!/usr/bin/env bash
# The captive sshd of tests/lib-ssh.sh and what sshfs does against it, as
# root, the way the roaming-profile agent will mount a remote home under
# /home/profiletemp/USER: key and password logins, ownership, mtimes, modes,
# symlinks (Debian's contain_symlinks), rename over an existing file, the
# two unmounts; then the server going away: killed (-9), silent (SIGSTOP),
# restarted, and without -o reconnect.  Timings are printed as diagnostics.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=../lib-ssh.sh
source "$(dirname "$0")/../lib-ssh.sh"
enter_namespace "$@"
have_ssh || skip_all "needs sshd, ssh, ssh-keygen, sshfs and openssl"
setup_root
# shellcheck disable=SC2034 # read by _cleanup in lib.sh
CLEANUP_HOOK=stop_sshfs

add_users alice:2001 bob:2002
server_home alice
server_home bob
set_password alice 'open sesame'
S=$T/server/alice
M=$T/home/profiletemp/alice
# what the agent passes besides the login options
AGENT_OPTS=reconnect,ServerAliveInterval=5,ServerAliveCountMax=2,allow_other,default_permissions,uid=2001,gid=2001

now_ms() { date +%s%3N; }
mounted() { awk -v m="$1" '$5 == m && / - fuse\.sshfs / { f = 1 } END { exit !f }' /proc/self/mountinfo; }
not_mounted() { ! grep -qF " $1 " /proc/self/mountinfo; }
# timed CMD...: run CMD (its output in $T/out, $T/err); exit code in $rc,
# milliseconds in $ms (like sshfs_mount)
timed() {
    local t0
    t0=$(now_ms)
    rc=0
    "$@" > "$T/out" 2> "$T/err" || rc=$?
    ms=$(($(now_ms) - t0))
}

# --- the server ---
check "sshd is up on 127.0.0.1" start_sshd alice
check "the test's users have their remote home in passwd" test "$(getent passwd alice | cut -d: -f6)" = "$S"
check "known_hosts names [127.0.0.1]:PORT" grep -q "^\[127.0.0.1\]:$SSHD_PORT ssh-ed25519 " "$SSH_KNOWN_HOSTS"
check "sshd runs from the test's config" grep -q "Server listening on 127.0.0.1 port $SSHD_PORT" "$T/ssh/sshd.log"
check "alice's password is in the private shadow" grep -q '^alice:[$]6[$]' /etc/shadow

# --- key login; what shows on the server ---
sshfs_mount alice "$M" "$(sshfs_key_opts),$AGENT_OPTS"
expect_rc 0 "sshfs with the test's key"
diag "mount took ${ms} ms"
check "fuse.sshfs at the staging dir" mounted "$M"
echo hello > "$M/f1"
check "a file written as root lands in the server home" test "$(cat "$S/f1")" = hello
check "... owned by alice there" test "$(stat -c %u:%g "$S/f1")" = 2001:2001
check "... and alice's on the mount (uid=, gid=)" test "$(stat -c %u:%g "$M/f1")" = 2001:2001
touch -d '2020-01-02 03:04:05' "$M/f1"
check "touch -d: the mtime reaches the server" test "$(stat -c %Y "$S/f1")" = "$(date -d '2020-01-02 03:04:05' +%s)"
chmod 0640 "$M/f1"
check "chmod reaches the server" test "$(stat -c %a "$S/f1")" = 640
mkdir "$M/dir"
check "a directory made on the mount is alice's" test "$(stat -c %U "$S/dir")" = alice
ln -s f1 "$M/rel"
check "ln -s makes a symlink on the server" test -L "$S/rel"
check "... with the target as given" test "$(readlink "$S/rel")" = f1
check "a relative symlink reads back through the mount" test "$(readlink "$M/rel")" = f1
check "... and is followed by the kernel" test "$(cat "$M/rel")" = hello
ln -s /etc/hostname "$M/abs" 2> "$T/err"
check "an absolute symlink is made on the server as given" test "$(readlink "$S/abs")" = /etc/hostname
if sshfs -h 2>&1 | grep -q no_contain_symlinks; then
    # Debian's fix for CVE-2026-47187: on by default
    check "contain_symlinks (default): readlink of an absolute symlink is refused" bash -c "readlink -v '$M/abs' 2>&1 | grep -qx '.*: Operation not permitted'"
    CONTAIN=no_contain_symlinks
else
    skip "contain_symlinks (default): readlink of an absolute symlink is refused" "this sshfs has no contain_symlinks"
    CONTAIN=
fi
echo new > "$M/f2"
echo old > "$M/f3"
mv "$M/f2" "$M/f1"
check "rename over an existing file (no workaround: posix-rename@openssh.com)" test "$(cat "$S/f1")" = new
check "... the source is gone" test ! -e "$S/f2"
timed mv -T "$M/dir" "$M/dir2"
check "rename of a directory" test -d "$S/dir2"
ln "$M/f3" "$M/f3.hard"
check "hard link (hardlink@openssh.com)" test "$(stat -c %h "$S/f3")" = 2
check "sshfs_pid finds the daemon" test -n "$(sshfs_pid "$M")"
timed fusermount3 -u "$M"
expect_rc 0 "fusermount3 -u"
check "... unmounts" not_mounted "$M"
check "... and sshfs exits" wait_for test -z "$(sshfs_pid "$M")"

# --- symlinks: what the options change ---
sshfs_mount alice "$M" "$(sshfs_key_opts),$AGENT_OPTS${CONTAIN:+,$CONTAIN}"
expect_rc 0 "sshfs ${CONTAIN:--o} (absolute symlinks)"
check "an absolute symlink reads back as given" test "$(readlink "$M/abs")" = /etc/hostname
timed umount "$M"
expect_rc 0 "umount (not fusermount3) unmounts"
check "... nothing left mounted" not_mounted "$M"
sshfs_mount alice "$M" "$(sshfs_key_opts),$AGENT_OPTS,follow_symlinks"
expect_rc 0 "sshfs -o follow_symlinks"
check "follow_symlinks: a symlink shows as its target" bash -c "test ! -L '$M/rel' && test -f '$M/rel'"
check "follow_symlinks: ln -s fails (so: never set it)" bash -c "! ln -s f1 '$M/rel2' 2> /dev/null"
umount "$M"

# --- password login (sshd without PAM reads the private /etc/shadow) ---
sshfs_mount alice "$M" "$(sshfs_password_opts),$AGENT_OPTS" < <(echo 'open sesame')
expect_rc 0 "sshfs -o password_stdin, right password"
diag "password mount took ${ms} ms"
check "... mounted, alice's files there" test "$(cat "$M/f1" 2> /dev/null)" = new
check "sshd logged the password login" grep -q "Accepted password for alice" "$T/ssh/sshd.log"
umount "$M"
sshfs_mount alice "$M" "$(sshfs_password_opts),$AGENT_OPTS" < <(echo wrong)
check "wrong password: sshfs fails (exit $rc)" test "$rc" -ne 0
check "... within 10 s ($ms ms)" test "$ms" -lt 10000
check "... nothing mounted" not_mounted "$M"
diag "wrong password: exit $rc after $ms ms, stderr: $(tr '\n' ' ' < "$T/err")"
check "... sshd logged one failed password" test "$(grep -c 'Failed password for alice' "$T/ssh/sshd.log")" = 1
sshfs_mount alice "$M" "$(sshfs_password_opts),$AGENT_OPTS" -v < <(echo wrong)
check "wrong password with -v: ssh's reason on stderr" grep -q "Permission denied" "$T/err"
diag "with -v: $(tr '\n' ' ' < "$T/err")"
sshfs_mount bob "$M" "$(sshfs_password_opts),$AGENT_OPTS" < <(echo anything)
check "no password set (no shadow entry): refused" test "$rc" -ne 0

# --- bob: a key only root can read, as the agent holds it ---
ssh-keygen -q -t ed25519 -N '' -C bob -f "$T/bob_key"
chmod 0600 "$T/bob_key"
authorize_key bob "$T/bob_key.pub"
check "bob's key is root's, 0600" test "$(stat -c %U:%a "$T/bob_key")" = root:600
B=$T/home/profiletemp/bob
sshfs_mount bob "$B" "$(sshfs_key_opts "$T/bob_key"),reconnect,allow_other,default_permissions,uid=2002,gid=2002"
expect_rc 0 "sshfs as bob with the root-only key"
echo b > "$B/b"
check "... bob's file on the server is bob's" test "$(stat -c %U "$T/server/bob/b")" = bob
umount "$B"
sshfs_mount bob "$B" "$(sshfs_key_opts),reconnect" -v
check "alice's key is refused for bob" test "$rc" -ne 0
check "... with ssh's reason under -v" grep -q "Permission denied (publickey" "$T/err"

# --- the server goes away ---
sshfs_mount alice "$M" "$(sshfs_key_opts),$AGENT_OPTS"
expect_rc 0 "mount again (reconnect, ServerAliveInterval=5, ServerAliveCountMax=2)"
echo before > "$M/k"
SESSION=$(_descendants "$SSHD_PID") # the connection's processes
kill -9 "$SSHD_PID"
wait "$SSHD_PID" 2> /dev/null
timed cat "$M/k"
check "listener killed: the open connection still serves (${ms} ms)" test "$(cat "$T/out")" = before
# shellcheck disable=SC2086
kill -9 $SESSION
timed cat "$M/k"
check "sshd and sessions killed (-9): a read fails with EIO" grep -q "Input/output error" "$T/err"
check "... at once (${ms} ms; reconnect finds the port closed)" test "$ms" -lt 3000
diag "after kill -9: read exit $rc in ${ms} ms: $(cat "$T/err")"
timed sh -c "echo x > '$M/k2'"
check "... a write too (${ms} ms)" test "$rc" -ne 0
check "... the mount stays (reconnect)" mounted "$M"
SSHD_PID=
check "sshd restarted on the same port" start_sshd
timed cat "$M/k"
check "sshfs reconnects by itself on the next access (${ms} ms)" test "$(cat "$T/out")" = before
timed sh -c "echo after > '$M/k'"
check "... and writes again" test "$(cat "$S/k")" = after
umount "$M"

# a server that stops answering without closing the connection (SIGSTOP):
# ServerAlive* notices; shortened here to 1 s x 2 to keep the test fast
sshfs_mount alice "$M" "$(sshfs_key_opts),reconnect,ServerAliveInterval=1,ServerAliveCountMax=2,ConnectTimeout=2,allow_other,uid=2001,gid=2001"
expect_rc 0 "mount with ServerAliveInterval=1,ServerAliveCountMax=2,ConnectTimeout=2"
echo here > "$M/s"
kill_sshd STOP
timed cat "$M/s"
check "silent server: a read fails with EIO" grep -q "Input/output error" "$T/err"
check "... after the keepalives and a connect timeout (${ms} ms, < 10 s)" test "$ms" -lt 10000
diag "silent server: read exit $rc after ${ms} ms (with 5 s x 2 and ConnectTimeout=5: about 14.5 s, then 5.2 s per access)"
kill_sshd CONT
timed cat "$M/s"
check "server back (SIGCONT): the next read reconnects (${ms} ms)" test "$(cat "$T/out")" = here
umount "$M"

# without -o reconnect: sshfs exits when the connection dies, and unmounts
sshfs_mount alice "$M" "$(sshfs_key_opts),allow_other,uid=2001,gid=2001"
expect_rc 0 "mount without reconnect"
kill_sshd KILL
cat "$M/f1" > /dev/null 2>&1
check "no reconnect, server killed: the mount disappears by itself" wait_for not_mounted "$M"
check "... the staging dir is the bare local dir again (check before syncing!)" test -z "$(ls -A "$M")"

# --- cleanup: a mount whose server is dead, left to the EXIT trap's hook ---
check "sshd restarted" start_sshd
sshfs_mount alice "$M" "$(sshfs_key_opts),$AGENT_OPTS"
expect_rc 0 "a last mount"
kill_sshd KILL
stop_sshfs
check "stop_sshfs (the CLEANUP_HOOK) detaches it" not_mounted "$M"
check "... and its sshfs is gone" wait_for test -z "$(sshfs_pid "$M")"
sshfs_mount alice "$M" "$(sshfs_key_opts),$AGENT_OPTS"
check "with sshd dead, a new mount fails fast (${ms} ms)" test "$rc" -ne 0 -a "$ms" -lt 5000
done_testing
