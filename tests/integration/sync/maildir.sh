#!/usr/bin/env bash
# homeport sync, maildir: the maildir story: mails arrive, are read (moved
# to cur/ with flags) and deleted on either side, and never come back.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair maildir
mkdir -p "$R/Maildir/cur" "$R/Maildir/new" "$R/Maildir/tmp"
put "$R/.profile" "profile"
for i in 1 2 3 4 5; do put "$R/Maildir/cur/old$i:2,S" "old mail $i"; done
pass_ok "maildir: first login (no database)"
same "maildir: the home is local"
m1=1700000001.M1P1.server m2=1700000002.M2P2.server
put "$R/Maildir/new/$m1" "mail 1 arrives on the server"
pass_ok "maildir: login"
has_line "$T/out" "to-local Maildir/new/$m1" "the new mail comes to the client"
both "mail 1 arrives on the server" "Maildir/new/$m1" "mail 1 on both sides"
rm "$L/Maildir/new/$m1"
pass_ok "maildir: logout after deleting the mail"
has_line "$T/out" "delete-remote Maildir/new/$m1" "the deletion goes to the server"
gone "Maildir/new/$m1" "mail 1 gone from both"
check "mail 1 in the server's trash" in_trash "$R" "Maildir/new/$m1" "mail 1 arrives on the server"
pass_ok "maildir: next login"
gone "Maildir/new/$m1" "the deleted mail does not come back"
summary_is "next login does nothing" 0 0 0 0 0 0 0
# the seed's order: the mail arrives on the client, goes up at logout, is
# read (moved to cur/ with flags), then deleted
put "$L/Maildir/new/$m2" "mail 2 fetched by the client"
pass_ok "maildir: logout with a new mail"
has_line "$T/out" "to-remote Maildir/new/$m2" "the mail goes up to the server"
pass_ok "maildir: login"
mv "$L/Maildir/new/$m2" "$L/Maildir/cur/$m2:2,S"
pass_ok "maildir: logout after reading"
gone "Maildir/new/$m2" "read mail left new/ on both sides"
both "mail 2 fetched by the client" "Maildir/cur/$m2:2,S" "read mail in cur/ on both sides"
rm "$L/Maildir/cur/$m2:2,S"
pass_ok "maildir: logout after deleting"
pass_ok "maildir: next login"
gone "Maildir/cur/$m2:2,S" "the deleted mail stays deleted"
check "mail 2 in the server's trash" in_trash "$R" "Maildir/cur/$m2:2,S" "mail 2 fetched by the client"
same "maildir: trees equal"
converged "maildir"

done_testing
