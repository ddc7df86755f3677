#!/usr/bin/env bash
# homeport sync, deep-tree: a tree 30 levels deep: created, changed, deleted.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair deep
deep=
for i in $(seq -w 1 30); do deep=${deep:+$deep/}level$i; done
put "$L/$deep/leaf.txt" "deep leaf"
for i in $(seq -w 1 40); do put "$L/filler/f$i" "f$i"; done
pass_ok "deep: first pass"
both "deep leaf" "$deep/leaf.txt" "a file 30 levels down reaches the remote"
put "$R/$deep/leaf.txt" "deep leaf, changed remotely"
mkdir "$R/$deep/level31"
pass_ok "deep: remote change"
both "deep leaf, changed remotely" "$deep/leaf.txt" "the change 30 levels down reaches local"
check "a new 31st level reaches local" test -d "$L/$deep/level31"
same "deep: trees equal"
converged "deep tree"
rm -r "$L/level01"
pass_ok "deep: the whole tree deleted locally"
has_line "$T/out" "delete-remote $deep/leaf.txt" "deepest file deleted on the remote"
has_line "$T/out" "delete-remote level01" "top directory deleted on the remote"
summary_is "deep delete: 32 entries" 0 0 0 32 0 0 0
gone level01 "deep tree gone from both"
check "deep tree in the remote trash" in_trash "$R" "$deep/leaf.txt" "deep leaf, changed remotely"
same "deep: trees equal after the delete"
converged "deep tree deleted"

done_testing
