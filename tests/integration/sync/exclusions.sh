#!/usr/bin/env bash
# homeport sync, exclusions: --exclude FILE: excluded paths are neither
# copied nor deleted; FILE.local, when present, replaces FILE entirely.
# shellcheck disable=SC2016 # bash -c '...' _ ARGS: expanded by that bash
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair excl
printf '# the default list\n.cache/\n*.tmp\n/Trash/\n' > "$P/exclude"
put "$L/old.tmp" "synced before the list"
pass_ok "exclude: a pass without a list"
both "synced before the list" old.tmp "old.tmp synced without a list"
rm "$L/old.tmp"
put "$L/keep.txt" keep
put "$L/.cache/big" "cache"
put "$L/sub/.cache/x" "sub cache"
put "$L/a.tmp" "a tmp"
put "$L/sub/b.tmp" "b tmp"
put "$L/Trash/t1" "trash 1"
put "$L/sub/Trash/t2" "not anchored"
put "$L/sub2/.cache" "a file named .cache"
put "$L/app.log" "log v1"
put "$R/.cache/rfile" "remote cache"
put "$R/r.tmp" "remote tmp"
put "$R/Trash/rt" "remote trash"
put "$R/rkeep.txt" rkeep
pass_ok "exclude: a pass with the list" --exclude "$P/exclude"
both keep keep.txt "keep.txt synced"
both "not anchored" sub/Trash/t2 "sub/Trash is not /Trash/: synced"
both "a file named .cache" sub2/.cache "a file named .cache is not a directory: synced"
both rkeep rkeep.txt "rkeep.txt synced"
for p in .cache/big sub/.cache a.tmp sub/b.tmp Trash/t1; do check "excluded $p not copied to the remote" test ! -e "$R/$p"; done
for p in .cache/rfile r.tmp Trash/rt; do check "excluded $p not copied to local" test ! -e "$L/$p"; done
check "old.tmp, deleted locally but now excluded, is not deleted remotely" has "synced before the list" "$R/old.tmp"
check "excluded local paths are still there" bash -c '[ -f "$1/.cache/big" ] && [ -f "$1/a.tmp" ] && [ -f "$1/Trash/t1" ] && [ -f "$1/sub/.cache/x" ]' _ "$L"
check "excluded remote paths are still there" bash -c '[ -f "$1/.cache/rfile" ] && [ -f "$1/r.tmp" ] && [ -f "$1/Trash/rt" ]' _ "$R"
lacks "$T/out" "^[a-z-]+ ((sub/)?\.cache|Trash)(/|$)|\.tmp$" "no action line for an excluded path"
same "exclude: trees equal but for the excluded paths" -path ./.cache -o -path ./sub/.cache -o -path ./Trash -o -name '*.tmp'
NOCOUNT=1 converged "exclusions" --exclude "$P/exclude"
put "$R/r.tmp" "remote tmp changed"
rm "$L/a.tmp"
pass_ok "exclude: changes to excluded paths" --exclude "$P/exclude"
summary_is "nothing done for excluded paths" 0 0 0 0 0 0 0
check "excluded r.tmp not copied" test ! -e "$L/r.tmp"
check "r.tmp still on the remote" has "remote tmp changed" "$R/r.tmp"
# the .local list replaces the default one entirely
rm "$R/old.tmp"
printf '*.log\n' > "$P/exclude.local"
put "$L/app.log" "log v2, longer"
pass_ok "exclude: FILE.local replaces FILE" --exclude "$P/exclude"
both "cache" .cache/big ".cache/big now synced"
both "sub cache" sub/.cache/x "sub/.cache/x now synced"
both "b tmp" sub/b.tmp "sub/b.tmp now synced"
both "trash 1" Trash/t1 "Trash/t1 now synced"
both "remote cache" .cache/rfile ".cache/rfile now synced"
both "remote tmp changed" r.tmp "r.tmp now synced"
both "remote trash" Trash/rt "Trash/rt now synced"
check "app.log excluded by the .local list: the remote keeps v1" has "log v1" "$R/app.log"
check "app.log local v2 kept" has "log v2, longer" "$L/app.log"
same "exclude.local: trees equal but for *.log" -name '*.log'
NOCOUNT=1 converged "exclusions from FILE.local" --exclude "$P/exclude"

done_testing
