#!/usr/bin/env bash
# home_mode = sync end to end: a captive sshd on 127.0.0.1 (its own host key
# and user key), real sshfs, the resident agent driven by pamtester through
# a PAM service with pam_exec expose_authtok at the auth stage.  Login sync
# (blocking, then background) with the flag file, the greeter's lines, the
# exclusions and the links to the server; edits during the session and the
# periodic pass; the last logout's pass and unmount; another "machine" (a
# second local home with its own database) changing the server between two
# logins; a wrong password; key authentication; status; sync by hand.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-ssh.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
LOCAL=$T/home/utilisateurs
STAGE=$T/home/profiletemp

stop_all() {
    [ -n "${AGENT:-}" ] && kill -9 "$AGENT" 2> /dev/null
    pkill -9 -f "$CONF" 2> /dev/null # background passes
    stop_sshfs
}
CLEANUP_HOOK=stop_all

have_ssh || skip_all "sshd, ssh-keygen or sshfs missing (tests/install-deps.sh)"
requires pamtester
requires_fuse

add_users alice:2001 bob:2002
server_home alice
server_home bob
set_password alice 'pass w0rd!'
check "sshd starts on 127.0.0.1" start_sshd bob
chmod 600 "$SSH_KEY" # root-only, as a site key would be

# alice's home on the server, as she left it on some machine
S=$T/server/alice
mkdir -p "$S/Documents" "$S/Maildir/new" "$S/Maildir/cur" "$S/.cache/thumbnails" "$S/Musique"
echo "report v1" > "$S/Documents/report.txt"
echo "alias ll='ls -l'" > "$S/.bashrc"
echo "From: boss" > "$S/Maildir/new/1700000000.M1.host"
echo junk > "$S/.cache/thumbnails/x.png"
echo song > "$S/Musique/song.ogg"
ln -s /usr/share/doc "$S/docs-link"
chmod 600 "$S/.bashrc"
touch -d '2024-01-02 03:04:05' "$S/Documents/report.txt"
chown -R alice:alice "$S"

printf '%s\n' '# test list' '.cache/' '*.tmp' > "$T/sync-exclude"
conf() { # conf [more [sync] lines]
    roam_conf "sshfs_host = 127.0.0.1" "sshfs_port = $SSHD_PORT" "known_hosts = $SSH_KNOWN_HOSTS" \
        "exclude_file = $T/sync-exclude" "sync_interval = 10s" "server_links = Musique" \
        "file_server_link = Serveur de fichiers" "mount_timeout = 15s" "$@"
}
conf
check "config-check accepts it" "$HOMEPORT" config-check "$CONF"
check "the shipped auth snippet passes the password on" grep -q "^auth optional pam_exec.so expose_authtok quiet /usr/local/sbin/homeport pam$" "$TOP/configs/pam.d/debian-common-auth"

mkdir -p "$T/pam.d"
snippet() { grep -v '^#' "$TOP/configs/pam.d/$1" | sed "s|/usr/local/sbin/homeport pam|$HOMEPORT -c $CONF pam|"; }
{
    echo "auth required pam_permit.so"
    snippet debian-common-auth
    snippet debian-common-account
    snippet debian-common-session
} > "$T/pam.d/hp"
mount --bind "$T/pam.d" /etc/pam.d

# pt USER OPS…: pamtester, the password on stdin ($PW), output in $T/out
pt() {
    rc=0
    printf '%s\n' "${PW:-}" | timeout 90 pamtester -v hp "$@" > "$T/out" 2>&1 || rc=$?
}
staged() { grep -q " $STAGE/$1 .* - fuse.sshfs " /proc/self/mountinfo; }
unstaged() { ! staged "$1"; }
start_agent() {
    "$HOMEPORT" -c "$CONF" -v agent -f 2>> "$T/agent.log" &
    AGENT=$!
    track "$AGENT"
    wait_for bash -c "test \"\$(cat '$R/agent.pid' 2>/dev/null)\" = $AGENT"
}
check "agent starts" start_agent
A=$LOCAL/alice

# --- first login: the password from the auth stage mounts the server home ----
PW='pass w0rd!' pt alice authenticate acct_mgmt open_session
expect_rc 0 "alice logs in (auth, account, open_session)"
contains "$T/out" "^Connecting to your home on the server\.\.\.$" "greeter: connecting"
contains "$T/out" "^Syncing your profile\.\.\.$" "greeter: syncing"
contains "$T/out" "^Profile of alice synced: 0 to the server, [0-9]+ from it" "greeter: synced"
lacks "$T/out" "pass w0rd" "the password is never shown"
check "server home on the staging dir (fuse.sshfs)" staged alice
check "sshd saw a password login" grep -q "Accepted password for alice" "$T/ssh/sshd.log"
check "local home created, alice's, 0700" test "$(stat -c '%U %a' "$A")" = "alice 700"
check "files came down" test "$(cat "$A/Documents/report.txt")" = "report v1"
check "with their mtime" test "$(stat -c %Y "$A/Documents/report.txt")" = "$(date -d '2024-01-02 03:04:05' +%s)"
check "and mode" test "$(stat -c %a "$A/.bashrc")" = 600
check "owned by alice" test "$(stat -c %U "$A/Documents/report.txt")" = alice
check "the mail came down" test -f "$A/Maildir/new/1700000000.M1.host"
check "an absolute symlink as a link" test "$(readlink "$A/docs-link")" = /usr/share/doc
check "excluded .cache not copied" test ! -e "$A/.cache"
check "server_links: Musique is a link to the server" test "$(readlink "$A/Musique")" = "$STAGE/alice/Musique"
check "  which alice can follow" setpriv --reuid=2001 --regid=2001 --clear-groups cat "$A/Musique/song.ogg"
check "file_server_link to the whole server home" test "$(readlink "$A/Serveur de fichiers")" = "$STAGE/alice"
check "the flag file is gone once synced" test ! -e "$T/var/tmp/horizon-pam_session_alice.flag"
check "state database written" test -s "$T/var/lib/homeport/sync/alice.db"
check "bob cannot read alice's server home" bash -c "! setpriv --reuid=2002 --regid=2002 --clear-groups ls '$STAGE/alice' 2>/dev/null"
hp status
contains "$T/out" "^alice roaming home $A, server home on $STAGE/alice \(mounted\), sessions 1, last sync: when=[0-9]+ result=ok" "status: held, last pass ok"
hp status --json
check "status --json" test "$(json_get "$T/out" '[(h["user"], h["state"], h["sessions"]) for h in j["homes"]]')" = "[('alice', 'mounted', 1)]"

# --- the session: edits both ways, the periodic pass ---------------------------
setpriv --reuid=2001 --regid=2001 --clear-groups bash -c "echo 'new notes' > '$A/Documents/notes.txt'; rm '$A/Maildir/new/1700000000.M1.host'; echo scratch > '$A/x.tmp'"
echo "server side" > "$S/from-server.txt"
chown alice:alice "$S/from-server.txt"
check "a periodic pass sends the edits up (sync_interval 10s)" wait_for_secs 25 test -f "$S/Documents/notes.txt"
check "  and brings the server's down" wait_for_secs 10 test -f "$A/from-server.txt"
check "the deleted mail is deleted on the server" test ! -e "$S/Maildir/new/1700000000.M1.host"
check "  into the server's trash" bash -c "ls '$S'/.homeport-trash/*/Maildir/new/1700000000.M1.host"
check "*.tmp excluded: not on the server" test ! -e "$S/x.tmp"
contains "$T/agent.log" "sync alice: 1 to the server, [01] from it, 0 deleted here, 1 deleted there" "agent log: the periodic pass"
contains "$T/agent.log" "directories: local [0-9]+ read, [0-9]+ unchanged since the last pass; remote [1-9][0-9]* read, 0 unchanged$" "  the server's directories read at each pass (sshfs: no listing trusted)"
lacks "$T/agent.log" "remote [0-9]+ read, [1-9][0-9]* unchanged" "  never one taken from the database"
hp sync alice --dry-run
expect_rc 0 "homeport sync alice --dry-run"
contains "$T/out" "^sync \(dry run\): 0 to remote, 0 to local, .* 0 errors, [0-9]+ in step$" "  nothing left to do"

# --- the server goes away during the session: nothing is taken for deleted -------
NLOCAL=$(find "$A" -path "$A/.homeport-trash" -prune -o -print | wc -l)
kill_sshd
hp sync alice
check "a pass with the server gone fails (exit $rc)" test "$rc" = 1 -o "$rc" = 2
lacks "$T/out" "^delete-local " "  and deletes nothing here"
check "  the local home is whole" test "$(find "$A" -path "$A/.homeport-trash" -prune -o -print | wc -l)" = "$NLOCAL"
check "sshd comes back (same port)" start_sshd
hp sync alice
expect_rc 0 "the next pass works again (sshfs reconnects)"
contains "$T/out" "^sync: 0 to remote, 0 to local, 0 deleted locally, 0 deleted remotely, 0 conflicts, 0 special, 0 errors" "  with nothing to do"

# --- the agent restarts: it takes the roaming home back ----------------------------
kill -9 "$AGENT"
wait "$AGENT" 2> /dev/null
check "a new agent starts" start_agent
contains "$T/agent.log" "re-adopted the roaming home of alice: 1 session" "it re-adopts alice's roaming home"

# --- a second session, then the last logout ------------------------------------
PW='pass w0rd!' pt alice authenticate acct_mgmt open_session
expect_rc 0 "a second session"
contains "$T/out" "2 sessions" "greeter: 2 sessions"
pt alice close_session
expect_rc 0 "first logout"
check "still mounted for the other session" staged alice
echo "last words" > "$A/Documents/last.txt"
chown alice:alice "$A/Documents/last.txt"
pt alice close_session
expect_rc 0 "last logout"
contains "$T/out" "^Profile of alice synced: 1 to the server" "greeter: the last pass"
check "the last edit reached the server" test "$(cat "$S/Documents/last.txt")" = "last words"
check "server home unmounted" unstaged alice
check "no sshfs left for it" test -z "$(sshfs_pid "$STAGE/alice")"
check "record gone" test ! -e "$R/roam/alice"
check "the local copy stays" test -f "$A/Documents/notes.txt"

# --- another machine changes the server between two logins ----------------------
B=$T/machine-b
mkdir -p "$B/home" "$B/stage"
chown alice:alice "$B/home"
authorize_key alice
sshfs_mount alice "$B/stage" "$(sshfs_key_opts),uid=2001,gid=2001,no_contain_symlinks" < /dev/null
check "machine B mounts the server home" test "$rc" = 0
timeout 60 "$HOMEPORT" sync --local "$B/home" --remote "$B/stage" --state "$B/db" --exclude "$T/sync-exclude" --host pc-b > "$T/out" 2>&1
check "machine B's first pass" test $? = 0
echo "report v2 from B" > "$B/home/Documents/report.txt"
rm "$B/home/from-server.txt"
timeout 60 "$HOMEPORT" sync --local "$B/home" --remote "$B/stage" --state "$B/db" --exclude "$T/sync-exclude" --host pc-b > "$T/out" 2>&1
contains "$T/out" "^to-remote Documents/report.txt$" "B sends its change"
contains "$T/out" "^delete-remote from-server.txt$" "B sends its deletion"
umount "$B/stage"

PW='pass w0rd!' pt alice authenticate acct_mgmt open_session
expect_rc 0 "alice logs in again on A"
check "B's change arrived" test "$(cat "$A/Documents/report.txt")" = "report v2 from B"
check "B's deletion too" test ! -e "$A/from-server.txt"
check "  into A's trash" bash -c "ls '$A'/.homeport-trash/*/from-server.txt"
check "the mail stays deleted" test ! -e "$A/Maildir/new/1700000000.M1.host"
pt alice close_session
expect_rc 0 "and out"

# --- a wrong password -----------------------------------------------------------
PW='wrong' pt alice authenticate acct_mgmt
expect_rc 1 "a wrong password fails the account stage"
contains "$T/out" "mounting the server home of alice failed" "greeter: why"
check "nothing mounted" unstaged alice
PW='' pt alice acct_mgmt
expect_rc 1 "no auth stage, no password: refused"
contains "$T/out" "no password of alice" "greeter: no password"

# --- background login sync; key authentication ------------------------------------
conf "auth = key" "key_file = $SSH_KEY" "login_sync = background"
kill -HUP "$AGENT"
wait_for grep -q "configuration reloaded" "$T/agent.log"
mkdir -p "$T/server/bob/big"
python3 -c 'import sys; [open(f"{sys.argv[1]}/f{i}", "w").write(str(i)) for i in range(3000)]' "$T/server/bob/big"
chown -R bob:bob "$T/server/bob"
chmod 644 "$SSH_KEY"
pt bob acct_mgmt
expect_rc 1 "a key file others may read is refused"
contains "$T/out" "key_file $SSH_KEY: others may read it \(it must be a regular file of root's, mode 0600\)" "greeter: why"
chmod 600 "$SSH_KEY"
pt bob acct_mgmt open_session
expect_rc 0 "bob logs in with the site key, sync in the background"
contains "$T/out" "its profile is being synced" "greeter: syncing in the background"
check "the session opened while the pass still runs (the flag file is there)" test -e "$T/var/tmp/horizon-pam_session_bob.flag"
check "the flag file goes when the pass is done" wait_for_secs 60 test ! -e "$T/var/tmp/horizon-pam_session_bob.flag"
contains "$T/agent.log" "sync bob: 0 to the server, 3001 from it" "agent log: the background pass"
check "bob's files are all here" test "$(ls "$LOCAL/bob/big" | wc -l)" = 3000
check "sshd saw a key login for bob" grep -q "Accepted publickey for bob" "$T/ssh/sshd.log"
echo "written by bob" > "$LOCAL/bob/late.txt"
hp mount bob
expect_rc 2 "homeport mount: not for roaming homes"
hp umount bob
expect_rc 0 "the admin releases bob's roaming home"
contains "$T/out" "^Profile of bob synced: 1 to the server" "  after a last pass"
check "  which sent bob's last file" test -f "$T/server/bob/late.txt"
check "  and unmounted it" unstaged bob
hp umount bob
expect_rc 1 "a second umount: nothing to release"
pt bob close_session
expect_rc 0 "bob logs out (nothing left to do)"
check "nothing left mounted below the staging dir" bash -c "! grep -q ' $STAGE/' /proc/self/mountinfo"
check "agent alive all along" kill -0 "$AGENT"
lacks "$T/agent.log" "pass w0rd" "the password is in no log"

done_testing
