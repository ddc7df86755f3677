#!/usr/bin/env bash
# homeport sync, symlinks: links copied as links (absolute, relative,
# dangling, to directories, loops), never followed; a remote link where
# local has a directory becomes a conflict copy; nothing written through a
# link.
# shellcheck disable=SC2016 # bash -c '...' _ ARGS: expanded by that bash
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair links
mkdir -p "$T/outside/bigdir" "$T/outside/victim"
put "$T/outside/bigdir/secret.txt" "outside content"
put "$T/outside/file.txt" "outside file"
put "$L/sub/target.txt" "link target"
ln -s "$T/outside/file.txt" "$L/abs"
ln -s sub/target.txt "$L/rel"
ln -s ../../somewhere "$L/up"
ln -s no/such/thing "$L/dangling"
ln -s "$T/outside/bigdir" "$L/dirlink"
ln -s selfloop "$L/selfloop"
ln -s .. "$L/sub/back"
put "$L/esc/pwn" "must not land outside"
ln -s "$T/outside/victim" "$R/esc"
t0=$(date +%s)
pass_ok "symlinks: first pass"
t1=$(date +%s)
for l in abs rel up dangling dirlink selfloop sub/back; do
    check "link $l copied as a link with the same target" \
        bash -c '[ -L "$1" ] && [ "$(readlink "$1")" = "$(readlink "$2")" ]' _ "$R/$l" "$L/$l"
done
check "the linked directory's content is not copied" test -z "$(find "$R" -name secret.txt)"
check "nothing written into the linked directory" test "$(ls -A "$T/outside/bigdir")" = secret.txt
conflict_copy esc local "$t0" "$t1"
check "the remote link esc is kept as '$CC' (a link)" bash -c '[ -L "$1" ] && [ -L "$2" ] &&
    [ "$(readlink "$1")" = "$3" ] && [ "$(readlink "$2")" = "$3" ]' _ "$L/$CC" "$R/$CC" "$T/outside/victim"
both "must not land outside" esc/pwn "local dir esc is a real dir on the remote"
check "the remote's esc is a directory, not the link" bash -c '[ -d "$1" ] && [ ! -L "$1" ]' _ "$R/esc"
check "nothing written through the remote's link" test -z "$(ls -A "$T/outside/victim")"
same "symlinks: trees equal"
converged "symlinks"
ln -sfn sub/other "$L/rel"
ln -sfn "elsewhere/now" "$R/dangling"
rm "$L/dirlink"
pass_ok "symlinks: changes"
has_line "$T/out" "to-remote rel" "a changed link target to remote"
has_line "$T/out" "to-local dangling" "a changed link target to local"
has_line "$T/out" "delete-remote dirlink" "a deleted link deleted on the remote"
check "new target on the remote" test "$(readlink "$R/rel")" = sub/other
check "new target locally" test "$(readlink "$L/dangling")" = elsewhere/now
gone dirlink "dirlink gone from both"
check "deleting the link kept the linked directory" has "outside content" "$T/outside/bigdir/secret.txt"
check "the trash holds the link, not the directory" bash -c 'for f in "$1"/.homeport-trash/*/dirlink; do [ -L "$f" ] && exit 0; done; exit 1' _ "$R"
same "symlinks: trees equal after changes"
converged "symlinks, changed"

done_testing
