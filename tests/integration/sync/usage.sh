#!/usr/bin/env bash
# homeport sync, usage: usage errors exit 2 and do nothing (missing or
# unknown options, missing trees, an unusable database, a missing
# exclusion list); --help exits 0.
# shellcheck disable=SC2016 # bash -c '...' _ ARGS: expanded by that bash
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair usage
put "$L/a" a
for args in "--local $L --remote $R" "--local $L --state $DB" "--local $T/nope --remote $R --state $DB" \
    "--local $L --remote $T/nope --state $DB" "--local $L --remote $R --state $DB --frobnicate" \
    "--local $L --remote $R --state $DB --max-delete-percent lots"; do
    rc=0
    # shellcheck disable=SC2086 # the words are the arguments
    timeout 60 "$HOMEPORT" sync $args > "$T/out" 2> "$T/err" || rc=$?
    expect_rc 2 "sync ${args//$T/\$T}"
done
check "usage errors: nothing copied, no database" bash -c '[ -z "$(ls -A "$1")" ] && [ ! -e "$2" ]' _ "$R" "$DB"
mkdir "$P/dbdir"
rc=0
timeout 60 "$HOMEPORT" sync --local "$L" --remote "$R" --state "$P/dbdir" > "$T/out" 2> "$T/err" || rc=$?
expect_rc 2 "a database that is a directory is unusable"
check "an unusable database: nothing done" test -z "$(ls -A "$R")"
rc=0
timeout 60 "$HOMEPORT" sync --help > "$T/out" 2> "$T/err" || rc=$?
expect_rc 0 "sync --help"
rc=0
timeout 60 "$HOMEPORT" sync --local "$L" --remote "$R" --state "$DB" --exclude "$P/no-such-list" > "$T/out" 2> "$T/err" || rc=$?
expect_rc 2 "a missing exclusion list (nor its .local): a configuration error"
rc=0
timeout 60 "$HOMEPORT" sync --local "$L" --remote "$R" --state "$P/no-such-dir/db" > "$T/out" 2> "$T/err" || rc=$?
expect_rc 2 "a database in a missing directory is unusable"
check "still nothing done" test -z "$(ls -A "$R")"

done_testing
