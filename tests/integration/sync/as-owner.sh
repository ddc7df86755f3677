#!/usr/bin/env bash
# homeport sync, as-owner: a pass as the owner of both trees, not root:
# copies, modes and the trash are the user's.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair owner
put "$L/a" "user's a"
put "$L/d/s" "user's secret"
chmod 700 "$L/d"
chmod 600 "$L/d/s"
put "$R/r" "user's r"
chown -R 1234:1234 "$P"
mkdir -p "$T/bin"
cp "$HOMEPORT" "$T/bin/homeport"
chmod 755 "$T/bin/homeport"
as_user() { local HOMEPORT=$T/bin/homeport; setpriv --reuid 1234 --regid 1234 --clear-groups -- "$@"; }
user_pass() {
    rc=0
    as_user timeout 60 "$HOMEPORT" sync --local "$L" --remote "$R" --state "$DB" --host "$HOST" > "$T/out" 2> "$T/err" || rc=$?
}
user_pass
expect_rc 0 "a pass as the owner of both trees (uid 1234)"
both "user's secret" d/s "the user's files copied"
both "user's r" r "and back"
check "copies are the user's" test "$(stat -c %u:%g "$R/a" "$R/d" "$R/d/s" "$L/r" "$DB" | sort -u)" = 1234:1234
check "modes kept" test "$(stat -c %a "$R/d" "$R/d/s" | tr '\n' ' ')" = "700 600 "
as_user rm "$L/a"
user_pass
expect_rc 0 "the user deletes a file: a pass"
gone a "a gone from both"
check "a in the user's remote trash" in_trash "$R" a "user's a"
same "owner: trees equal"
check "the user's trash is the user's" test "$(stat -c %u "$R/.homeport-trash")" = 1234

done_testing
