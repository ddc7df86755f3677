#!/usr/bin/env bash
# homeport sync, modify-delete: a change on one side wins over a deletion on
# the other, also inside a deleted directory.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair moddel
for f in m1 m2 dd/f dd/g dn/old k1 k2 k3 k4 k5 k6 k7 k8; do put "$L/$f" "base $f"; done
pass_ok "modify vs delete: first pass"
put "$L/m1" "m1 changed locally"
rm "$R/m1"
put "$R/m2" "m2 changed remotely"
rm "$L/m2"
rm -r "$L/dd" "$L/dn"
put "$R/dn/new" "new in a directory deleted locally"
put "$R/dd/f" "dd/f changed remotely"
pass_ok "modify vs delete pass"
has_line "$T/out" "to-remote m1" "local change wins over remote delete (to-remote m1)"
has_line "$T/out" "to-local m2" "remote change wins over local delete (to-local m2)"
both "m1 changed locally" m1 "m1 back on both sides"
both "m2 changed remotely" m2 "m2 back on both sides"
both "dd/f changed remotely" dd/f "a changed file inside a deleted directory comes back with its directory"
gone dd/g "the unchanged dd/g stays deleted"
both "new in a directory deleted locally" dn/new "a new file in a directory deleted on the other side comes back"
gone dn/old "the unchanged dn/old stays deleted"
no_line "$T/out" "delete-remote dd/f" "dd/f not deleted"
lacks "$T/out" "^(delete-remote|delete-local) (m1|m2)$" "no deletion of m1/m2"
same "modify vs delete: trees equal"
converged "modify vs delete"

done_testing
