#!/usr/bin/env bash
# homeport sync, two-machines: two machines sharing one remote, each with
# its own database: changes travel through the remote; a change on both is a
# conflict.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair twomachines
L2=$P/L2 DB2=$P/db2
mkdir -p "$L2"
# machine2 CMD ARGS…: run a helper with machine 2's tree and database.
machine2() { local L=$L2 DB=$DB2 HOST=m2; "$@"; }
for f in a b c k1 k2 k3 k4 k5 k6; do put "$L/$f" "base $f"; done
pass_ok "machine 1: first pass"
machine2 pass_ok "machine 2: first pass (no database)"
machine2 same "machine 2 has the home"
put "$L/a" "a changed on machine 1"
rm "$L/b"
put "$L/n1" "new on machine 1"
pass_ok "machine 1 syncs its changes"
machine2 pass_ok "machine 2 syncs"
machine2 has_line "$T/out" "to-local a" "machine 2 gets the change"
machine2 has_line "$T/out" "delete-local b" "machine 2 gets the deletion"
check "a on machine 2" has "a changed on machine 1" "$L2/a"
check "b gone on machine 2" test ! -e "$L2/b"
check "n1 on machine 2" has "new on machine 1" "$L2/n1"
put "$L2/c" "c changed on machine 2"
rm "$L2/a"
put "$L2/n2" "new on machine 2"
machine2 pass_ok "machine 2 syncs its changes"
pass_ok "machine 1 syncs"
has_line "$T/out" "to-local c" "machine 1 gets the change"
has_line "$T/out" "delete-local a" "machine 1 gets the deletion"
check "c on machine 1" has "c changed on machine 2" "$L/c"
check "a gone on machine 1" test ! -e "$L/a"
check "n2 on machine 1" has "new on machine 2" "$L/n2"
same "machine 1 and the remote equal"
machine2 same "machine 2 and the remote equal"
converged "machine 1"
machine2 converged "machine 2"
# both machines change k1 before syncing: the second to sync has a conflict
put "$L/k1" "k1 from machine 1, later" $((now - 10))
put "$L2/k1" "k1 from machine 2" $((now - 100))
pass_ok "machine 1 syncs k1"
t0=$(date +%s)
machine2 pass_ok "machine 2 syncs its own k1"
t1=$(date +%s)
machine2 conflict_copy k1 remote "$t0" "$t1" m2
pass_ok "machine 1 syncs"
check "machine 1 has machine 2's k1 as '$CC'" has "k1 from machine 2" "$L/$CC"
check "machine 1 keeps its own k1" has "k1 from machine 1, later" "$L/k1"
machine2 both "k1 from machine 1, later" k1 "machine 2 and the remote: k1 from machine 1"
machine2 both "k1 from machine 2" "$CC" "machine 2 and the remote: machine 2's k1 as the conflict copy"
same "machine 1 and the remote equal after the conflict"
machine2 same "machine 2 and the remote equal after the conflict"
converged "machine 1 after the conflict"
machine2 converged "machine 2 after the conflict"

done_testing
