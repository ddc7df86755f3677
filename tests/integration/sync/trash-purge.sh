#!/usr/bin/env bash
# homeport sync, trash-purge: trash folders older than --trash-days (default
# 30) are purged; the trashes are not synced.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair purge
put "$L/a" a
pass_ok "purge: first pass"
old=2001-01-01_000000
d40=$(date -u -d '-40 days' +%Y-%m-%d_%H%M%S)
d1=$(date -u -d '-1 day' +%Y-%m-%d_%H%M%S)
# (the folders' mtimes say the same as their names: the spec does not say
# which of the two "older than" reads)
for s in "$old" "$d40" "$d1"; do
    put "$L/.homeport-trash/$s/l-$s" x
    put "$R/.homeport-trash/$s/r-$s" x
    when=$(date -u -d "$(echo "$s" | sed -E 's/_(..)(..)(..)$/ \1:\2:\3/')" +%s)
    touch -d "@$when" "$L/.homeport-trash/$s" "$R/.homeport-trash/$s"
done
pass_ok "purge: --trash-days 60" --trash-days 60
check "an ancient local trash folder is purged" test ! -e "$L/.homeport-trash/$old"
check "an ancient remote trash folder is purged" test ! -e "$R/.homeport-trash/$old"
check "a 40-day-old folder is kept with --trash-days 60" test -e "$L/.homeport-trash/$d40/l-$d40" -a -e "$R/.homeport-trash/$d40/r-$d40"
pass_ok "purge: default trash-days (30)"
check "a 40-day-old folder is purged (local)" test ! -e "$L/.homeport-trash/$d40"
check "a 40-day-old folder is purged (remote)" test ! -e "$R/.homeport-trash/$d40"
check "a 1-day-old folder is kept" test -e "$L/.homeport-trash/$d1/l-$d1" -a -e "$R/.homeport-trash/$d1/r-$d1"
check "the trashes are not synced" test ! -e "$R/.homeport-trash/$d1/l-$d1" -a ! -e "$L/.homeport-trash/$d1/r-$d1"
same "purge: trees equal"
converged "trash purge"

done_testing
