#!/usr/bin/env bash
# homeport sync, missing-db: without a database a pass is a union: nothing
# deleted, the differences become conflicts named with this machine's
# hostname.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair nodb
for f in a b c d e f g; do put "$L/$f" "base $f"; done
pass_ok "missing db: first pass"
rm "$DB"
rm "$L/a"
rm "$R/g"
put "$L/b" "local b" $((now - 100))
put "$R/b" "remote b, later" $((now - 10))
t0=$(date +%s)
# without --host: the conflict name carries this machine's hostname
rc=0
timeout 60 "$HOMEPORT" sync --local "$L" --remote "$R" --state "$DB" > "$T/out" 2> "$T/err" || rc=$?
t1=$(date +%s)
expect_rc 0 "missing database: a union pass"
lacks "$T/out" "^delete-" "missing database: nothing deleted"
has_line "$T/out" "to-local a" "a deleted locally comes back"
has_line "$T/out" "to-remote g" "g deleted remotely comes back"
both "base a" a "a on both sides"
both "base g" g "g on both sides"
hn=$(hostname)
hn=${hn:0:64} hn=${hn//[^A-Za-z0-9._-]/_}
conflict_copy b remote "$t0" "$t1" "$hn"
both "remote b, later" b "b: the later remote version keeps the name"
both "local b" "$CC" "b: the local version kept as '$CC' (default host $hn)"
summary_is "union summary (identical files are in step)" 1 1 0 0 1 0 0
check "the database is written again" test -s "$DB"
same "missing db: trees equal"
converged "missing database"

done_testing
