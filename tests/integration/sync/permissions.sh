#!/usr/bin/env bash
# homeport sync, permissions: modes (setgid included) and mtimes kept
# whatever the umask; a mode-only change is a change; a read-only file
# replaced.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair perms
put "$L/f600" "secret" 1000000000
chmod 600 "$L/f600"
put "$L/f755" "#!/bin/sh" 1100000000
chmod 755 "$L/f755"
put "$L/f444" "read only" 1200000000
chmod 444 "$L/f444"
put "$L/f000" "no bits" 1250000000
chmod 000 "$L/f000"
put "$L/d700/in" "in d700" 1300000000
chmod 700 "$L/d700"
mkdir "$L/dsg"
chmod 2775 "$L/dsg"
put "$L/dsg/f" "in setgid" 1400000000
mkdir "$L/dsg/sub"
chmod 00755 "$L/dsg/sub" # (GNU chmod keeps a directory's setgid for 0755)
touch -d @1350000000 "$L/d700"
put "$R/r640" "remote 640" 1450000000
chmod 640 "$R/r640"
umask 077
pass_ok "permissions: first pass (umask 077)"
for e in f600 f755 f444 f000 d700/in dsg/f; do
    check "remote $e: mode and mtime preserved ($(stat -c '%a %Y' "$L/$e"))" \
        test "$(stat -c '%a %Y' "$R/$e")" = "$(stat -c '%a %Y' "$L/$e")"
done
for e in d700 dsg dsg/sub; do
    check "remote directory $e: mode preserved ($(stat -c %a "$L/$e"))" test "$(stat -c %a "$R/$e")" = "$(stat -c %a "$L/$e")"
done
# the spec: "mtimes ... are preserved", directories not set apart
check "remote directory d700: mtime preserved (1350000000)" test "$(stat -c %Y "$R/d700")" = 1350000000
check "local r640: mode and mtime preserved" test "$(stat -c '%a %Y' "$L/r640")" = "640 1450000000"
check "setgid dir stays 2775" test "$(stat -c %a "$R/dsg")" = 2775
check "a 0755 dir inside a setgid dir is 755, not setgid" test "$(stat -c %a "$R/dsg/sub")" = 755
check "f600 mtime is exact" test "$(stat -c %Y "$R/f600")" = 1000000000
same "perms: trees equal"
converged "permissions"
chmod 640 "$R/f600"
chmod 711 "$L/d700"
chmod 644 "$L/f444"
pass_ok "permissions: mode-only changes"
has_line "$T/out" "to-local f600" "a remote chmod is a change"
has_line "$T/out" "to-remote f444" "a local chmod of a file is a change"
has_line "$T/out" "to-remote d700" "a local chmod of a directory is a change"
check "f600 is 640 on both sides" test "$(stat -c %a "$L/f600") $(stat -c %a "$R/f600")" = "640 640"
check "d700 is 711 on both sides" test "$(stat -c %a "$L/d700") $(stat -c %a "$R/d700")" = "711 711"
check "f444 is 644 on both sides" test "$(stat -c %a "$L/f444") $(stat -c %a "$R/f444")" = "644 644"
check "f600's mtime unchanged by the chmod sync" test "$(stat -c %Y "$L/f600")" = 1000000000
put "$R/f444" "rewritten on the remote" 1500000000
chmod 444 "$R/f444"
pass_ok "permissions: a read-only file replaced"
check "read-only f444 replaced locally, mode 444, mtime kept" \
    test "$(stat -c '%a %Y' "$L/f444"):$(cat "$L/f444")" = "444 1500000000:rewritten on the remote"
umask 022
same "perms: trees equal after changes"
converged "permissions, changed"

done_testing
