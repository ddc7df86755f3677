#!/bin/sh
# tests/fuzz/run.sh SECONDS [TARGET...]: run each libFuzzer target (built
# by `make fuzz-build` into build/fuzz/) for SECONDS, one after the other,
# at the lowest CPU priority, on a working corpus under build/fuzz/corpus
# seeded from tests/fuzz/corpus/TARGET (whose crash-* inputs are the
# regression cases: they run first).  Prints one PASS/FAIL line a target
# and the libFuzzer figures; exits 1 when any target crashed, leaked, hung
# (over FUZZ_TIMEOUT s for one input, default 10) or did not run.  The
# crashing input is left in build/fuzz/artifacts/TARGET/.  FUZZ_JOBS=N runs
# the targets N at a time instead.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
secs=${1:?usage: run.sh SECONDS [TARGET...]}
shift
[ $# -gt 0 ] || set -- $(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c | sed 's/^fuzz_//'; done)
timeout_s=${FUZZ_TIMEOUT:-10}
jobs=${FUZZ_JOBS:-1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_target() { # name
    t=$1 bin=build/fuzz/fuzz_$1
    corpus=build/fuzz/corpus/$t art=build/fuzz/artifacts/$t log=build/fuzz/logs/$t.log
    mkdir -p "$corpus" "$art" "$(dirname "$log")"
    if [ ! -x "$bin" ]; then
        echo "FAIL $t: $bin is not built (make fuzz-build)"
        return 1
    fi
    [ -d "tests/fuzz/corpus/$t" ] && cp -n tests/fuzz/corpus/$t/* "$corpus/" 2>/dev/null
    dict=""
    [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
    rc=0
    # shellcheck disable=SC2086 # $dict is one word or none
    nice -n 19 "$bin" -max_total_time="$secs" -timeout="$timeout_s" -max_len=16384 \
        -print_final_stats=1 -artifact_prefix="$art/" $dict "$corpus" > "$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    files=$(find "$corpus" -type f | wc -l)
    if [ "$rc" -eq 0 ] && [ -n "$runs" ]; then
        printf 'PASS %-14s %9s runs %7s exec/s  cov %5s  ft %6s  corpus %5s  (%s s)\n' \
            "$t" "$runs" "$speed" "$cov" "$ft" "$files" "$secs"
        return 0
    fi
    printf 'FAIL %-14s exit %s after %s runs: see %s, input in %s/\n' "$t" "$rc" "${runs:-?}" \
        "$log" "$art"
    grep -E 'ERROR: |runtime error:|fuzz check failed|SUMMARY:|Test unit written' "$log" |
        head -8 | sed 's/^/     | /'
    return 1
}

failed=0 total=0
if [ "$jobs" -gt 1 ]; then
    out=build/fuzz/logs
    mkdir -p "$out"
    running=0
    for t in "$@"; do
        (run_target "$t" > "$out/$t.verdict"; echo $? > "$out/$t.rc") &
        running=$((running + 1))
        if [ "$running" -ge "$jobs" ]; then wait; running=0; fi
    done
    wait
    for t in "$@"; do
        total=$((total + 1))
        cat "$out/$t.verdict"
        [ "$(cat "$out/$t.rc")" = 0 ] || failed=$((failed + 1))
    done
else
    for t in "$@"; do
        total=$((total + 1))
        run_target "$t" || failed=$((failed + 1))
    done
fi
echo "fuzz: $((total - failed)) of $total targets passed ($secs s each)"
[ "$failed" -eq 0 ]
