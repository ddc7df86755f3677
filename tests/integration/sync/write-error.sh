#!/usr/bin/env bash
# homeport sync, write-error: a path that cannot be written is an error line
# and exit 1; the rest of the pass is done; the failed copy is retried, not
# taken for a deletion.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair errors
put "$L/ro/old" old
put "$L/k1" k1
put "$L/k2" k2
pass_ok "errors: first pass"
mount --bind "$R/ro" "$R/ro" && mount -o remount,bind,ro "$R/ro"
put "$L/ro/new.txt" "cannot land"
put "$L/fine.txt" "lands"
sync_pass
expect_rc 1 "a path that cannot be written: exit 1"
contains "$T/out" "^error ro/new.txt: .+" "error line for ro/new.txt"
has_line "$T/out" "to-remote fine.txt" "the rest is done"
contains "$T/out" "^sync: .*, 0 conflicts, 0 special, 1 errors, [0-9]+ in step$" "1 error in the summary"
both lands fine.txt "fine.txt on both sides"
check "the failed file is still local" has "cannot land" "$L/ro/new.txt"
sync_pass
expect_rc 1 "the failed path is retried (still failing)"
check "the failed file is still local after the retry" has "cannot land" "$L/ro/new.txt"
umount "$R/ro"
pass_ok "errors: the destination writable again"
has_line "$T/out" "to-remote ro/new.txt" "the failed copy is done now (not taken for a deletion)"
both "cannot land" ro/new.txt "ro/new.txt on both sides"
same "errors: trees equal"
converged "errors resolved"

done_testing
