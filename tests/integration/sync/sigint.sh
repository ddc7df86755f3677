#!/usr/bin/env bash
# homeport sync, SIGINT:
# Ctrl-C ends the pass after the path it is on: what was done is recorded,
# the exit status is 1, and the next pass finishes the work.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair sigint
# 20 files of 8 MiB first (path order: "big" before "d1"), each copy written
# and fsynced, so that the signal comes while the pass still has work
mkdir "$L/big"
for f in $(seq 20); do truncate -s 8M "$L/big/b$f"; done
for d in $(seq 40); do mkdir -p "$L/d$d"; for f in $(seq 50); do : > "$L/d$d/f$f"; done; done
timeout 60 "$HOMEPORT" sync --local "$L" --remote "$R" --state "$DB" --host "$HOST" > "$T/out" 2> "$T/err" &
SP=$!
for i in $(seq 400); do grep -q '^to-remote big/' "$T/out" 2> /dev/null && break; sleep 0.02; done
kill -INT "$SP"
rc=0
wait "$SP" || rc=$?
if grep -q '^sync: 2061 to remote' "$T/out"; then
    skip "SIGINT stops a pass" "the pass ended before the signal"
else
    expect_rc 1 "SIGINT stops a pass"
    contains "$T/err" "stopped before the end; the next pass goes on" "  and says so"
    lacks "$T/out" "^error " "  with no error"
    check "  leaving no temp file" bash -c "! find '$R' -name '*.homeport-tmp' | grep -q ."
fi
pass_ok "the next pass finishes the work"
check "  every file is on the remote side" test "$(find "$R" -type f | wc -l)" = 2020
converged "after a stopped pass"

done_testing
