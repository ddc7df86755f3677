#!/usr/bin/env bash
# homeport sync, type-changes: file, directory and symlink turned into one
# another on either side: no conflict, the replaced directory in the trash.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair types
for s in t u; do
    put "$L/${s}1" "file ${s}1"
    put "$L/${s}2/in" "in ${s}2"
    put "$L/${s}3" "file ${s}3"
    ln -s "${s}3" "$L/${s}4"
done
for f in k1 k2 k3 k4 k5 k6 k7 k8; do put "$L/$f" "$f"; done
pass_ok "types: first pass"
# local: t1 file->dir, t2 dir->file, t3 file->symlink, t4 symlink->file
rm "$L/t1" && put "$L/t1/x" "t1 is a dir now"
rm -r "$L/t2" && put "$L/t2" "t2 is a file now"
rm "$L/t3" && ln -s "target of t3" "$L/t3"
rm "$L/t4" && put "$L/t4" "t4 is a file now"
# remote: the same on u*
rm "$R/u1" && put "$R/u1/x" "u1 is a dir now"
rm -r "$R/u2" && put "$R/u2" "u2 is a file now"
rm "$R/u3" && ln -s "target of u3" "$R/u3"
rm "$R/u4" && put "$R/u4" "u4 is a file now"
pass_ok "type change pass"
lacks "$T/out" "^conflict " "type changes on one side are no conflict"
both "t1 is a dir now" t1/x "local file->dir reaches the remote"
both "t2 is a file now" t2 "local dir->file reaches the remote"
check "local file->symlink reaches the remote" test "$(readlink "$R/t3")" = "target of t3"
both "t4 is a file now" t4 "local symlink->file reaches the remote"
both "u1 is a dir now" u1/x "remote file->dir reaches local"
both "u2 is a file now" u2 "remote dir->file reaches local"
check "remote file->symlink reaches local" test "$(readlink "$L/u3")" = "target of u3"
both "u4 is a file now" u4 "remote symlink->file reaches local"
check "the replaced directory's file is in the remote trash" in_trash "$R" t2/in "in t2"
check "the replaced directory's file is in the local trash" in_trash "$L" u2/in "in u2"
same "types: trees equal"
converged "type changes"

done_testing
