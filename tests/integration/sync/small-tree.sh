#!/usr/bin/env bash
# homeport sync, small-tree: a tree of 8 entries emptied: too small for the
# mass-delete guard, every deletion is done.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair smalltree
for i in 1 2 3 4 5 6 7 8; do put "$L/s$i" "s$i"; done
pass_ok "small tree: first pass"
rm "$L"/s*
pass_ok "small tree: every entry deleted, not guarded"
summary_is "8 deleted remotely" 0 0 0 8 0 0 0
check "the remote is empty but for the trash" test "$(ls -A "$R")" = .homeport-trash
converged "small tree emptied"

done_testing
