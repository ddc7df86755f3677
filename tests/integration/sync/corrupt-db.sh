#!/usr/bin/env bash
# homeport sync, corrupt-db: a corrupt database is reported, the pass is a
# union, the database replaced; a database of a newer format is left alone
# (exit 2).
# shellcheck disable=SC2016 # bash -c '...' _ ARGS: expanded by that bash
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair corrupt
for f in a b c d e f g; do put "$L/$f" "base $f"; done
pass_ok "corrupt db: first pass"
# flip every bit of the byte in the middle
if [ -s "$DB" ]; then
    mid=$(($(stat -c %s "$DB") / 2))
    byte=$(od -An -tu1 -j "$mid" -N1 "$DB")
    printf -v byte '\\%03o' $((255 - byte))
    printf '%b' "$byte" | dd of="$DB" bs=1 seek="$mid" conv=notrunc status=none
fi
cp "$DB" "$T/corrupt.db"
rm "$L/a"
put "$L/b" "local b, later" $((now - 10))
put "$R/b" "remote b" $((now - 100))
t0=$(date +%s)
pass_ok "corrupt database: a union pass"
t1=$(date +%s)
check "the corrupt database is reported on stderr" test -s "$T/err"
contains "$T/err" "$DB" "the report names the database"
lacks "$T/out" "^delete-" "corrupt database: nothing deleted"
has_line "$T/out" "to-local a" "a deleted locally comes back"
both "base a" a "a on both sides"
conflict_copy b local "$t0" "$t1"
both "local b, later" b "b: the later local version keeps the name"
both "remote b" "$CC" "b: the remote version kept as '$CC'"
check "the corrupt database is replaced" bash -c '! cmp -s "$1" "$2"' _ "$T/corrupt.db" "$DB"
same "corrupt db: trees equal"
converged "corrupt database replaced"
check "the idle pass after the replacement reports nothing" test ! -s "$T/err"
rm "$L/c"
pass_ok "corrupt db: deletions work again"
has_line "$T/out" "delete-remote c" "delete-remote c"
gone c "c gone from both"
converged "corrupt database, after a deletion"
# a sound database of a newer format (version 2, its checksum right): not
# this homeport's to overwrite
head -c 8 "$DB" > "$T/v2.db"
printf '\x02' >> "$T/v2.db"
tail -c +10 "$DB" | head -c -32 >> "$T/v2.db"
sum=$(sha256sum < "$T/v2.db")
sum=${sum%% *}
esc=
for ((i = 0; i < 64; i += 2)); do esc+="\\x${sum:i:2}"; done
printf '%b' "$esc" >> "$T/v2.db"
cp "$T/v2.db" "$DB"
rm "$L/d"
sync_pass
expect_rc 2 "a database of a newer format: exit 2"
check "a newer database: nothing done" has "base d" "$R/d"
check "a newer database is left as it is" cmp -s "$T/v2.db" "$DB"

done_testing
