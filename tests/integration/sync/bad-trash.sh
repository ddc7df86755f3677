#!/usr/bin/env bash
# homeport sync, bad-trash: a .homeport-trash at the root that is a
# symlink (the remote) or a file (local) is never followed, so the
# deletions cannot be done: they are errors, stay pending, and the files
# do not come back; they are done once the trashes are usable.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair badtrash
for f in a b c d e f g h; do put "$L/$f" "base $f"; done
pass_ok "bad trash: first pass"
mkdir -p "$T/outside/trashlink/2001-01-01_000000"
put "$T/outside/trashlink/2001-01-01_000000/precious" precious
ln -s "$T/outside/trashlink" "$R/.homeport-trash"
put "$L/.homeport-trash" "a file, not a directory"
rm "$L/a" "$R/b"
sync_pass
expect_rc 1 "deletions without a usable trash: exit 1"
contains "$T/out" "^error a: .+" "error line for a (the remote's trash is a symlink)"
contains "$T/out" "^error b: .+" "error line for b (the local trash is a file)"
check "a still on the remote" has "base a" "$R/a"
check "b still local" has "base b" "$L/b"
check "nothing moved through the remote's trash link" test "$(find "$T/outside/trashlink" | wc -l)" = 3
check "no purge through the remote's trash link" has precious "$T/outside/trashlink/2001-01-01_000000/precious"
sync_pass
expect_rc 1 "the deletions stay pending (exit 1 again)"
no_line "$T/out" "to-local a" "the file deleted locally does not come back"
no_line "$T/out" "to-remote b" "the file deleted remotely does not come back"
check "a not back locally" absent "$L/a"
check "b not back on the remote" absent "$R/b"
rm "$R/.homeport-trash" "$L/.homeport-trash"
pass_ok "bad trash: the trashes usable again"
has_line "$T/out" "delete-remote a" "the pending remote deletion is done"
has_line "$T/out" "delete-local b" "the pending local deletion is done"
gone a "a gone from both"
gone b "b gone from both"
check "a in the remote trash" in_trash "$R" a "base a"
check "b in the local trash" in_trash "$L" b "base b"
same "bad trash: trees equal"
converged "bad trash repaired"

done_testing
