#!/usr/bin/env bash
# homeport sync, dry-run: --dry-run prints what the real pass does and
# touches nothing (trees, database, trash).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair dry
put "$L/new-first" x
snap_all
sync_pass --dry-run
expect_rc 0 "dry run without a database"
contains "$T/out" "^sync \(dry run\): 1 to remote, 0 to local" "dry-run summary"
untouched "dry run without a database"
for f in a b c d/e k keep1 keep2 keep3; do put "$L/$f" "base $f"; done
pass_ok "dry: first pass"
put "$L/a" "a changed locally"
rm "$R/b"
put "$L/n" "new locally"
put "$R/c" "c changed remotely"
put "$L/k" "k local" $((now - 100))
put "$R/k" "k remote" $((now - 10))
chmod 600 "$R/d/e"
mkdir -p "$L/.homeport-trash/2001-01-01_000000"
snap_all
sync_pass --dry-run
expect_rc 0 "dry run"
dry_rc=$rc
cp "$T/out" "$T/dry.out"
contains "$T/out" "^sync \(dry run\): 2 to remote, 2 to local, 1 deleted locally, 0 deleted remotely, 1 conflicts, 0 special, 0 errors, [0-9]+ in step$" "dry-run summary"
untouched "dry run"
check "dry run: no trash purge" test -d "$L/.homeport-trash/2001-01-01_000000"
sync_pass
check "the real pass exits as the dry run did" test "$rc" = "$dry_rc"
norm() { sed -E 's/ [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{6}/ DATE TIME/; s/^sync \(dry run\):/sync:/' "$1"; }
if diff <(norm "$T/dry.out") <(norm "$T/out") > "$T/dry.diff"; then ok "dry run printed the same lines as the real pass"; else
    not_ok "dry run printed the same lines as the real pass"; sed 's/^/#   /' "$T/dry.diff"
fi
both "a changed locally" a "the real pass did the work"
same "dry: trees equal after the real pass"
converged "dry run, then real pass"

done_testing
