#!/usr/bin/env bash
# homeport sync, renames: a file and a directory renamed: the new name
# copied, the old one deleted into the trash, the mtime kept.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair rename
put "$L/docs/report.txt" "the report" 1500000000
put "$L/olddir/a" "a in olddir"
put "$L/olddir/sub/b" "b in olddir"
for f in k1 k2 k3 k4 k5 k6 k7 k8; do put "$L/$f" "$f"; done
pass_ok "rename: first pass"
mv "$L/docs/report.txt" "$L/docs/final.txt"
mv "$R/olddir" "$R/newdir"
pass_ok "rename pass"
has_line "$T/out" "delete-remote docs/report.txt" "old name deleted on the remote"
has_line "$T/out" "to-remote docs/final.txt" "new name copied to the remote"
has_line "$T/out" "to-local newdir/sub/b" "renamed directory's content copied to local"
has_line "$T/out" "delete-local olddir/sub/b" "old directory's content deleted locally"
gone docs/report.txt "docs/report.txt gone from both"
both "the report" docs/final.txt "docs/final.txt on both"
check "renamed file keeps its mtime on the remote" test "$(stat -c %Y "$R/docs/final.txt")" = 1500000000
gone olddir "olddir gone from both"
both "b in olddir" newdir/sub/b "newdir/sub/b on both"
check "old name in the remote trash" in_trash "$R" docs/report.txt "the report"
check "old directory in the local trash" in_trash "$L" olddir/sub/b "b in olddir"
same "rename: trees equal"
converged "renames"

done_testing
