#!/usr/bin/env bash
# The remote walk done on the server (homeport sync-list over the sshfs
# mount's own ssh connection, agent/roamlist.h): a captive sshd on
# 127.0.0.1, real sshfs, the agent driven by pamtester (key login).  Two
# users with the same trees and the same changes: alice's passes get the
# listing from the server, bob's read the sshfs mount (server_homeport
# empty); both must end the same (new files both ways, deletions both ways,
# a conflict kept twice).  Then a server without homeport: the pass walks
# the mount, says so once, and the next pass does not ask again.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-ssh.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
LOCAL=$T/home/utilisateurs
STAGE=$T/home/profiletemp

stop_all() {
    [ -n "${AGENT:-}" ] && kill -9 "$AGENT" 2> /dev/null
    stop_sshfs
}
CLEANUP_HOOK=stop_all

have_ssh || skip_all "sshd, ssh-keygen or sshfs missing (tests/install-deps.sh)"
requires pamtester
requires_fuse

add_users alice:2001 bob:2002
server_home alice
server_home bob
check "sshd starts on 127.0.0.1" start_sshd alice bob
chmod 600 "$SSH_KEY"
# the server runs the binary under test as the user: one it may execute
cp "$HOMEPORT" "$T/homeport-server"
chmod 755 "$T/homeport-server"

# the same home on the server for both
for u in alice bob; do
    S=$T/server/$u
    mkdir -p "$S/Documents" "$S/Maildir/cur" "$S/.cache/x" "$S/old dir/sub" "$S/sp ace"
    echo "report v1" > "$S/Documents/report.txt"
    echo "shared v1" > "$S/Documents/shared.txt"
    echo "mail" > "$S/Maildir/cur/1.M1"
    echo "mail 2" > "$S/Maildir/cur/2.M2"
    echo junk > "$S/.cache/x/junk"
    echo "in old" > "$S/old dir/sub/f"
    printf 'odd\n' > "$S/sp ace/new"$'\n'"line"
    ln -s /usr/share/doc "$S/docs-link"
    touch -d '2024-01-02 03:04:05' "$S/Documents/report.txt"
    chown -R "$u:$u" "$S"
done

printf '%s\n' '.cache/' > "$T/sync-exclude"
conf() { # conf FILE server_homeport
    CONF=$1 roam_conf "sshfs_host = 127.0.0.1" "sshfs_port = $SSHD_PORT" \
        "known_hosts = $SSH_KNOWN_HOSTS" "auth = key" "key_file = $SSH_KEY" \
        "exclude_file = $T/sync-exclude" "sync_interval = 0" "mount_timeout = 15s" \
        "server_homeport = $2"
}
conf "$CONF" "$T/homeport-server"
PLAIN=$T/plain.conf
conf "$PLAIN" ""
NONE=$T/none.conf
conf "$NONE" "/nonexistent/homeport"
check "config-check accepts server_homeport" "$HOMEPORT" config-check "$CONF"
check "  and an empty one" "$HOMEPORT" config-check "$PLAIN"
printf '[sync]\nserver_homeport = homeport; rm -rf ~\n' > "$T/bad.conf"
rc=0
"$HOMEPORT" config-check "$T/bad.conf" > "$T/out" 2>&1 || rc=$?
expect_rc 2 "config-check refuses a server_homeport that is not a plain word"

pam_service
check "agent starts" start_agent_fg

# sync USER CONF: one pass by hand (-v: how the remote tree was read)
sync_by_hand() {
    rc=0
    timeout 60 "$HOMEPORT" -c "$2" -v sync "$1" > "$T/out" 2> "$T/err" || rc=$?
}
# tree DIR: what a side holds (conflict names without their time, not the
# excluded .cache), sorted
tree() {
    (cd "$1" && find . -path ./.homeport-trash -prune -o -path ./.cache -prune -o -type f \
        -printf '%p f %m %s\n' -o ! -name . -printf '%p %y %m %l\n' | \
        sed 's/(conflict [^)]*)/(conflict)/' | sort)
}

for u in alice bob; do
    pt "$u" acct_mgmt open_session
    expect_rc 0 "$u logs in: server home mounted, first pass"
done
check "the shared connection's socket is there" wait_for test -S "$R/roam/alice.ssh"
check "the listing's record is there" test -f "$R/roam/alice.list"

# --- the same changes for both, on both sides ------------------------------------
for u in alice bob; do
    S=$T/server/$u L=$LOCAL/$u
    echo "report v2 (server)" > "$S/Documents/report.txt"
    rm "$S/Maildir/cur/1.M1"
    rm -r "$S/old dir"
    echo "from the server" > "$S/server-new.txt"
    chown -R "$u:$u" "$S"
    echo "local new" > "$L/local-new.txt"
    rm "$L/Maildir/cur/2.M2"
    chmod 600 "$L/Documents/shared.txt"
    echo "shared: local" > "$L/Documents/shared.txt"
    echo "shared: server!" > "$S/Documents/shared.txt"
    touch -d '2030-01-01' "$S/Documents/shared.txt"
    chown -R "$u:$u" "$L" "$S"
done
# sshfs keeps attributes for a second: both passes must see the server's changes
for u in alice bob; do
    check "sshfs shows $u's server changes" wait_for bash -c "test \"\$(stat -c %s '$STAGE/$u/Documents/report.txt')\" = 19"
done
sync_by_hand alice "$CONF"
expect_rc 0 "alice's pass with the listing"
contains "$T/err" "remote listed by the server \([0-9]+ entries\)" "  the remote tree came from the server"
cp "$T/out" "$T/alice.out"
sync_by_hand bob "$PLAIN"
expect_rc 0 "bob's plain pass"
contains "$T/err" "remote [1-9][0-9]* read, 0 unchanged" "  the remote tree was walked through sshfs"
cp "$T/out" "$T/bob.out"
check "both passes did the same" diff <(sed 's/(conflict [^)]*)/(conflict)/' "$T/alice.out") \
    <(sed 's/(conflict [^)]*)/(conflict)/' "$T/bob.out")
contains "$T/alice.out" "^delete-local Maildir/cur/1.M1$" "a deletion on the server propagates"
contains "$T/alice.out" "^delete-remote Maildir/cur/2.M2$" "a local deletion propagates"
contains "$T/alice.out" "^delete-local old dir$" "a directory deleted on the server too"
contains "$T/alice.out" "^conflict Documents/shared.txt: " "the file changed on both sides is a conflict"
check "  kept twice on the server" bash -c "ls '$T/server/alice/Documents/' | grep -c 'shared' | grep -qx 2"
check "  and twice here" bash -c "ls '$LOCAL/alice/Documents/' | grep -c 'shared' | grep -qx 2"
check "alice's two sides are the same" diff <(tree "$LOCAL/alice") <(tree "$T/server/alice")
check "alice's and bob's local homes are the same" diff <(tree "$LOCAL/alice") <(tree "$LOCAL/bob")
check "alice's and bob's server homes are the same" diff <(tree "$T/server/alice") <(tree "$T/server/bob")
check "the excluded .cache stayed on the server only" test ! -e "$LOCAL/alice/.cache"
check "the odd name came down" test -f "$LOCAL/alice/sp ace/new"$'\n'"line"
sync_by_hand alice "$CONF"
contains "$T/out" "^sync: 0 to remote, 0 to local, 0 deleted locally, 0 deleted remotely, 0 conflicts, 0 special, 0 errors" "the next pass with the listing has nothing to do"
lacks "$T/err" "could not|cannot list" "  and no fallback"
chmod 000 "$T/server/alice/.cache/x"
sync_by_hand alice "$CONF"
expect_rc 0 "an unreadable directory in the excluded .cache on the server: no error"
lacks "$T/out" "^error" "  none reported"
chmod 755 "$T/server/alice/.cache/x"
mkfifo "$T/server/alice/a-fifo"
chown alice:alice "$T/server/alice/a-fifo"
chmod 000 "$T/server/alice/Maildir"
sync_by_hand alice "$CONF"
chmod 700 "$T/server/alice/Maildir"
contains "$T/out" "^special a-fifo \(remote\): not synced$" "a fifo on the server is listed as special"
contains "$T/out" "^error Maildir: cannot (open|read) the remote directory: Permission denied \(on the server\)$" "an unreadable directory on the server is an error"
check "  and nothing below it is deleted here" test -d "$LOCAL/alice/Maildir/cur"
expect_rc 1 "  the pass says some paths failed"

# --- a server without homeport: the plain pass, said once ------------------------
sync_by_hand alice "$NONE"
expect_rc 0 "a pass when the server has no homeport"
contains "$T/err" "the server cannot list the home itself \(.*/nonexistent/homeport.*\): this pass and the next ones read every directory through sshfs" "  says so"
contains "$T/err" "remote [1-9][0-9]* read" "  and walked the mount"
check "  the record says not to ask again" test "$(cat "$R/roam/alice.list")" = none
echo "after" > "$LOCAL/alice/after.txt"
chown alice:alice "$LOCAL/alice/after.txt"
sync_by_hand alice "$NONE"
expect_rc 0 "the next pass"
contains "$T/out" "^to-remote after.txt$" "  syncs"
lacks "$T/err" "cannot list" "  without saying it again"
check "  the file is on the server" test "$(cat "$T/server/alice/after.txt")" = after

# --- logout: the record and the socket go --------------------------------------------
pt alice close_session
expect_rc 0 "alice logs out"
check "no record left" test ! -e "$R/roam/alice.list"
check "no socket left" test ! -e "$R/roam/alice.ssh"
pt bob close_session
expect_rc 0 "bob logs out"
check "agent alive all along" kill -0 "$AGENT"
done_testing
