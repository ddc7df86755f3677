#!/usr/bin/env bash
# homeport sync, basic: create, modify and delete on each side; deleted
# files go to the trash; changes that size and mtime alone do not show.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair basic
put "$L/a.txt" "local a"
put "$L/d/b.txt" "local b"
mkdir -p "$L/e" "$L/sub/.homeport-trash"
put "$L/sub/.homeport-trash/x" "not the real trash: synced"
put "$R/r.txt" "remote r"
put "$R/rd/x/y.txt" "remote y"
pass_ok "first pass (no database)"
has_line "$T/out" "to-remote a.txt" "to-remote a.txt"
has_line "$T/out" "to-remote d" "to-remote d (directories count)"
has_line "$T/out" "to-remote d/b.txt" "to-remote d/b.txt"
has_line "$T/out" "to-remote e" "to-remote e (an empty directory)"
has_line "$T/out" "to-local rd/x/y.txt" "to-local rd/x/y.txt"
summary_is "first pass summary" 7 4 0 0 0 0 0
check "the database is created" test -s "$DB"
both "local a" a.txt "a.txt on both sides"
both "remote y" rd/x/y.txt "rd/x/y.txt on both sides"
both "not the real trash: synced" sub/.homeport-trash/x "a .homeport-trash below the root is synced"
check "empty directory copied" test -d "$R/e"
same "basic: trees equal after the first pass"
converged "basic, first pass"

put "$L/a.txt" "local a, modified"
put "$R/r.txt" "remote r, modified"
put "$L/n1" "new on local"
put "$R/n2" "new on remote"
pass_ok "modify and create on each side"
has_line "$T/out" "to-remote a.txt" "modified a.txt to remote"
has_line "$T/out" "to-local r.txt" "modified r.txt to local"
has_line "$T/out" "to-remote n1" "new n1 to remote"
has_line "$T/out" "to-local n2" "new n2 to local"
summary_is "modify pass summary" 2 2 0 0 0 0 0
both "local a, modified" a.txt "a.txt modified on both"
both "remote r, modified" r.txt "r.txt modified on both"
both "new on local" n1 "n1 on both"
both "new on remote" n2 "n2 on both"
same "basic: trees equal after modifications"
converged "basic, modifications"

rm "$L/d/b.txt"
rm -r "$R/rd"
pass_ok "delete on each side"
has_line "$T/out" "delete-remote d/b.txt" "delete-remote d/b.txt"
has_line "$T/out" "delete-local rd/x/y.txt" "delete-local rd/x/y.txt"
has_line "$T/out" "delete-local rd" "delete-local rd (a directory)"
summary_is "delete pass summary (directories count)" 0 0 3 1 0 0 0
gone d/b.txt "d/b.txt gone from both"
gone rd "rd gone from both"
check "d kept (only its file was deleted)" test -d "$R/d"
check "remote's deleted file is in the remote trash" in_trash "$R" d/b.txt "local b"
check "local's deleted tree is in the local trash" in_trash "$L" rd/x/y.txt "remote y"
check "trash folders are named YYYY-MM-DD_HHMMSS (local)" stamps_ok "$L"
check "trash folders are named YYYY-MM-DD_HHMMSS (remote)" stamps_ok "$R"
not_in_trash() { ! in_trash "$@"; }
check "the trash is not synced (local's trash has no d/b.txt)" not_in_trash "$L" d/b.txt
same "basic: trees equal after deletions"
converged "basic, deletions"

# changes that size and mtime alone do not show
put "$L/gone-both" x
put "$R/gone-both" x
pass_ok "basic: a file new on both sides, the same"
rm "$L/gone-both" "$R/gone-both"
put "$R/r.txt" "remote R, modified" # the same length, a later mtime
touch -r "$L/n1" "$T/n1.time"
put "$L/n1" "NEW ON LOCAL" # the same length, and the mtime put back
touch -r "$T/n1.time" "$L/n1"
pass_ok "basic: same-size rewrites; a file deleted on both sides"
has_line "$T/out" "to-local r.txt" "a same-size rewrite on the remote is a change"
has_line "$T/out" "to-remote n1" "a same-size local rewrite with its mtime put back is a change"
summary_is "nothing else done (deleted on both sides: no action)" 1 1 0 0 0 0 0
both "remote R, modified" r.txt "r.txt rewritten on both sides"
both "NEW ON LOCAL" n1 "n1 rewritten on both sides"
gone gone-both "deleted on both sides"
same "basic: trees equal after subtle changes"
converged "basic, subtle changes"

done_testing
