#!/usr/bin/env bash
# homeport sync, interrupted: a pass killed -9 while copying leaves the old
# or the new whole file, never half; the next pass finishes; stale temp
# files, also one that is a symlink out of the tree, are not written
# through.
# shellcheck disable=SC2016 # bash -c '...' _ ARGS: expanded by that bash
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair intr
put "$L/big.bin" "old big"
put "$L/k" k
mkdir -p "$L/sub"
pass_ok "interrupt: first pass"
# big.bin replaces an old version, fresh.bin is new: kill -9 the pass as
# soon as one of their temp files shows (tried up to 3 times, in case a
# pass copies faster than it is watched)
seen=0
for attempt in 1 2 3; do
    cp "$R/big.bin" "$T/big.old"
    head -c 100M /dev/urandom > "$L/big.bin"
    head -c 50M /dev/urandom > "$L/fresh.bin"
    (exec "$HOMEPORT" sync --local "$L" --remote "$R" --state "$DB" --host "$HOST" > "$T/out" 2> "$T/err") &
    pid=$!
    track "$pid"
    SECONDS=0
    while [ "$SECONDS" -lt 20 ]; do
        if [ -e "$R/.big.bin.homeport-tmp" ] || [ -e "$R/.fresh.bin.homeport-tmp" ]; then seen=1; break; fi
        kill -0 "$pid" 2> /dev/null || break
    done
    kill -9 "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
    [ "$seen" = 0 ] || break
done
if [ "$seen" = 1 ]; then
    ok "a copy goes through .NAME.homeport-tmp in the destination directory (killed -9 while copying, try $attempt)"
else
    not_ok "no .big.bin.homeport-tmp nor .fresh.bin.homeport-tmp seen in 3 passes"
    show_out
fi
check "after the kill the remote has the old whole big.bin or the new whole one, never half" \
    bash -c 'cmp -s "$1" "$2" || cmp -s "$1" "$3"' _ "$R/big.bin" "$T/big.old" "$L/big.bin"
check "after the kill the remote has no fresh.bin or the whole one, never half" \
    bash -c '! [ -e "$1" ] || cmp -s "$1" "$2"' _ "$R/fresh.bin" "$L/fresh.bin"
check "local's new file untouched by the kill" test "$(stat -c %s "$L/big.bin")" = 104857600
# and a stale temp file from an older crash, on each side
put "$L/sub/.stale.homeport-tmp" "half a file"
put "$R/.other.homeport-tmp" "half another"
# and one that is a symlink out of the tree, where k's copy would be written
put "$T/outside/not-yours" "must stay"
ln -s "$T/outside/not-yours" "$R/.k.homeport-tmp"
put "$L/k" "k, changed"
pass_ok "interrupt: the resumed pass"
lacks "$T/out" "^conflict " "the resumed pass sees no conflict"
lacks "$T/out" "homeport-tmp" "temp files are never synced"
check "the resumed pass completes the copies" bash -c 'cmp -s "$1/big.bin" "$2/big.bin" && cmp -s "$1/fresh.bin" "$2/fresh.bin"' _ "$L" "$R"
check "no temp file left on either side" test -z "$(find "$L" "$R" -name '*.homeport-tmp')"
check "a temp name that is a symlink is not written through" has "must stay" "$T/outside/not-yours"
both "k, changed" k "k copied all the same"
same "interrupt: trees equal"
converged "interrupted pass"

done_testing
