#!/usr/bin/env bash
# homeport sync, conflicts: both sides changed: the later version keeps the
# name, the other is kept under a conflict name (host, UTC time, " N" when
# taken, cut to 255 bytes); the same change and two new directories are no
# conflict.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair conflict
for f in c.txt .bashrc tie.txt x sub/n.tar.gz p.txt same.txt keep1 keep2 keep3; do put "$L/$f" "base $f"; done
# every conflict name p.txt could get in the next seconds is taken: the
# conflict must get " 2"
t=$((now - 2))
while [ "$t" -le $((now + 40)) ]; do
    printf -v stamp '%(%Y-%m-%d %H%M%S)T' "$t"
    : > "$L/p (conflict $HOST $stamp).txt"
    t=$((t + 1))
done
long=
for i in $(seq 120); do long+=ü; done
long+=x.txt # 245 bytes: its conflict name has to be cut
put "$L/$long" "base long"
pass_ok "conflict: first pass"
same "conflict: trees equal before"
put "$L/c.txt" "local c" $((now - 100))
put "$R/c.txt" "remote c, later" $((now - 50))
put "$L/.bashrc" "local rc, later" $((now - 10))
put "$R/.bashrc" "remote rc" $((now - 200))
put "$L/tie.txt" "local tie" $((now - 30))
put "$R/tie.txt" "remote tie!" $((now - 30))
rm "$L/x" && put "$L/x/inner" "inside local dir x"
put "$R/x" "remote x, much later" $((now + 1000))
put "$L/sub/n.tar.gz" "local tgz, later" $((now - 1))
put "$R/sub/n.tar.gz" "remote tgz" $((now - 500))
put "$L/p.txt" "local p" $((now - 100))
put "$R/p.txt" "remote p" $((now - 50))
put "$L/same.txt" "the same change"
put "$R/same.txt" "the same change"
put "$L/$long" "long, local" $((now - 100))
put "$R/$long" "long, remote, later" $((now - 50))
put "$L/fresh.txt" "fresh on local" $((now - 300))
put "$R/fresh.txt" "fresh on remote, later" $((now - 200))
mkdir -p "$L/both-new" "$R/both-new"
put "$L/both-new/from-local" fl
put "$R/both-new/from-remote" fr
t0=$(date +%s)
pass_ok "conflict pass"
t1=$(date +%s)
contains "$T/out" "^sync: .*, 8 conflicts, 0 special, 0 errors, " "conflict pass summary: 8 conflicts"
conflict_copy c.txt remote "$t0" "$t1"
both "remote c, later" c.txt "later remote version keeps c.txt on both sides"
both "local c" "$CC" "local version kept as '$CC' on both sides"
conflict_copy .bashrc local "$t0" "$t1"
both "local rc, later" .bashrc "later local version keeps .bashrc"
both "remote rc" "$CC" "remote .bashrc kept as '$CC' (no extension)"
conflict_copy tie.txt remote "$t0" "$t1"
both "remote tie!" tie.txt "a tie: the remote keeps the name"
both "local tie" "$CC" "a tie: local kept as the conflict copy"
conflict_copy x local "$t0" "$t1"
both "inside local dir x" x/inner "a directory wins against a later file"
both "remote x, much later" "$CC" "the file x kept as '$CC'"
conflict_copy sub/n.tar.gz local "$t0" "$t1"
both "local tgz, later" sub/n.tar.gz "sub/n.tar.gz: local keeps the name"
both "remote tgz" "$CC" "conflict copy in the same directory, last extension only: '$CC'"
conflict_copy p.txt remote "$t0" "$t1"
check "a taken conflict name gets ' 2'" test "${CONFLICT_SEQ:-}" = " 2"
both "local p" "$CC" "local p kept as '$CC'"
conflict_copy fresh.txt remote "$t0" "$t1"
both "fresh on remote, later" fresh.txt "new on both sides, different: the later remote keeps the name"
both "fresh on local" "$CC" "new on both sides: local kept as '$CC'"
both "the same change" same.txt "the same change on both sides: no conflict"
# the long name: the stem is cut (at a character) so that the name fits in
# 255 bytes, never the suffix
line=$(grep -F -- "conflict $long: remote keeps the name, the other is " "$T/out")
CC=${line##*, the other is }
if [ -n "$line" ] && [ "${#CC}" -le 255 ] && [ "${#CC}" -ge 240 ] && [[ $CC == üü*" (conflict $HOST "*").txt" ]] &&
    [ "${long#"${CC%% (conflict*}"}" != "$long" ] && printf '%s' "$CC" | iconv -f UTF-8 -t UTF-8 > /dev/null 2>&1; then
    ok "a 245-byte name: the conflict name is cut to ${#CC} bytes, valid UTF-8, suffix kept"
else
    not_ok "a 245-byte name: conflict name '$CC' (${#CC} bytes)"
fi
both "long, remote, later" "$long" "the long name: the remote keeps it"
both "long, local" "$CC" "the long name: local kept as the cut conflict name"
lacks "$T/out" "^conflict (same.txt|both-new)" "same change and two new directories are no conflict"
both fl both-new/from-local "two new directories merge (local's file)"
both fr both-new/from-remote "two new directories merge (remote's file)"
check "c.txt's loser keeps its mtime" test "$(stat -c %Y "$R/c (conflict"*").txt")" = $((now - 100))
same "conflict: trees equal after"
converged "conflicts"

done_testing
