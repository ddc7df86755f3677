#!/usr/bin/env bash
# home_mode = sync with mount = command: the server home is mounted by the
# site's own mount_command (here a bind mount of a local "server" dir, as
# a CIFS or NFS mount line would be), split at blanks with %u and %m
# expanded, never through a shell.  A PAM login through pamtester mounts
# it and syncs the profile down; a logout syncs the edits up and unmounts
# it; a command that fails refuses the login with its exit status and the
# command named.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
requires pamtester setpriv
setup_root
R=$T/run/homeport
LOCAL=$T/home/utilisateurs
STAGE=$T/home/profiletemp
CLEANUP_HOOK=stop_roaming

add_users alice:2001 bob:2002
S=$T/server/alice
mkdir -p "$S/Documents" "$T/server/bob"
echo "report v1" > "$S/Documents/report.txt"
chown -R alice:alice "$S"
chown bob:bob "$T/server/bob"

conf() { roam_conf "mount = command" "mount_command = $1" "mount_timeout = 15s"; }
conf "mount --bind $T/server/%u %m"
check "config-check accepts it" "$HOMEPORT" config-check "$CONF"

given "the PAM service" pam_service
staged() { grep -q " $STAGE/$1 " /proc/self/mountinfo; }
check "agent starts" start_agent_fg
A=$LOCAL/alice

pt alice acct_mgmt open_session
expect_rc 0 "alice logs in"
contains "$T/out" "^Profile of alice synced: 0 to the server, [0-9]+ from it" "greeter: synced"
check "the server home is mounted on the staging dir by the command" staged alice
check "  from alice's server dir (%u)" bash -c "grep ' $STAGE/alice ' /proc/self/mountinfo | grep -q '/server/alice '"
check "the profile came down" test "$(cat "$A/Documents/report.txt")" = "report v1"
setpriv --reuid=2001 --regid=2001 --clear-groups bash -c "echo 'new notes' > '$A/Documents/notes.txt'"
pt alice close_session
expect_rc 0 "alice logs out"
check "the edit went up to the server" test "$(cat "$S/Documents/notes.txt" 2> /dev/null)" = "new notes"
check "the server home is unmounted" wait_for bash -c "! grep -q ' $STAGE/alice ' /proc/self/mountinfo"

# A command that fails: the login is refused, saying which command and how;
# its ';' and 'echo' are mount's arguments (mount fails on them), no shell.
kill "$AGENT"
wait "$AGENT" 2> /dev/null
conf "mount --bind $T/nowhere/%u %m ; echo"
check "agent starts with a command that will fail" start_agent_fg
pt bob acct_mgmt open_session
check "bob's login is refused" test "$rc" != 0
contains "$T/out" "mounting the server home of bob failed \(mount exit [1-9][0-9]*\)" "the greeter names the command and its exit status"
check "nothing is left mounted" bash -c "! grep -q ' $STAGE/bob ' /proc/self/mountinfo"
done_testing
