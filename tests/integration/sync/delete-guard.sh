#!/usr/bin/env bash
# homeport sync, delete-guard: the mass-delete guard: more than 50% of the
# entries deleted on one side are held back (exit 3) until --allow-deletes
# or a higher --max-delete-percent; the rest of the pass is done.
# shellcheck disable=SC2016 # bash -c '...' _ ARGS: expanded by that bash
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair guard
for i in $(seq -w 1 40); do put "$L/f$i" "file $i"; done
pass_ok "guard: first pass, 40 files"
for i in $(seq -w 1 30); do rm "$L/f$i"; done
put "$L/new.txt" "new while guarded"
sync_pass
expect_rc 3 "30 of 40 deleted locally: the guard holds"
cp "$T/out" "$T/guard.out"
sync_pass --dry-run
expect_rc 3 "the dry run holds them back as well"
# (new.txt is in the database now: 41 entries)
has_line "$T/out" "guard remote: 30 of 41 entries would be deleted (more than 50%): not deleted; run with --allow-deletes to confirm" "the dry run prints the guard line"
cp "$T/guard.out" "$T/out"
has_line "$T/out" "guard remote: 30 of 40 entries would be deleted (more than 50%): not deleted; run with --allow-deletes to confirm" "guard line"
lacks "$T/out" "^delete-remote " "no remote deletion"
has_line "$T/out" "to-remote new.txt" "the rest of the pass is done"
both "new while guarded" new.txt "new.txt on both sides"
check "the 40 files still on the remote" test "$(find "$R" -maxdepth 1 -name 'f*' | wc -l)" = 40
check "nothing came back locally" test "$(find "$L" -maxdepth 1 -name 'f*' | wc -l)" = 10
sync_pass
expect_rc 3 "the deletions stay pending: the guard holds again"
contains "$T/out" "^guard remote: 30 of [0-9]+ entries would be deleted" "guard line again"
check "still no file came back locally" test "$(find "$L" -maxdepth 1 -name 'f*' | wc -l)" = 10
sync_pass --dry-run --allow-deletes
expect_rc 0 "--dry-run --allow-deletes"
check "dry run: still 40 on the remote" test "$(find "$R" -maxdepth 1 -name 'f*' | wc -l)" = 40
pass_ok "--allow-deletes" --allow-deletes
check "30 delete-remote lines" test "$(grep -c '^delete-remote f' "$T/out")" = 30
lacks "$T/out" "^guard " "no guard line"
check "10 files left on the remote" test "$(find "$R" -maxdepth 1 -name 'f*' | wc -l)" = 10
check "the 30 files in the remote trash" bash -c 'for i in $(seq -w 1 30); do for f in "$1"/.homeport-trash/*/f$i; do [ "$(cat "$f")" = "file $i" ] || exit 1; done; done' _ "$R"
check "one trash folder per pass" test "$(find "$R/.homeport-trash" -mindepth 1 -maxdepth 1 | wc -l)" = 1
same "guard: trees equal"
converged "guard, deletions allowed"
for i in $(seq -w 1 20); do put "$R/g$i" "g $i"; done
pass_ok "guard: 20 more files"
for i in $(seq -w 1 20); do rm "$R/g$i"; done
sync_pass
expect_rc 3 "20 of 31 deleted remotely: the guard holds on the local side"
has_line "$T/out" "guard local: 20 of 31 entries would be deleted (more than 50%): not deleted; run with --allow-deletes to confirm" "guard local line"
check "the 20 files still local" test "$(find "$L" -maxdepth 1 -name 'g*' | wc -l)" = 20
pass_ok "--max-delete-percent 70 lets 65% through" --max-delete-percent 70
check "20 delete-local lines" test "$(grep -c '^delete-local g' "$T/out")" = 20
check "the 20 files gone locally" test "$(find "$L" -maxdepth 1 -name 'g*' | wc -l)" = 0
check "and in the local trash" in_trash "$L" g07 "g 07"
same "guard: trees equal after the local deletions"
converged "guard, local side"

done_testing
