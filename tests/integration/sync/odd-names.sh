#!/usr/bin/env bash
# homeport sync, odd-names: names with spaces, newlines, globs, dashes,
# backslashes, non-UTF-8 bytes: copied, changed, deleted, one action a line.
# shellcheck disable=SC2016 # bash -c '...' _ ARGS: expanded by that bash
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair odd
odd=("with space" $'new\nline' "-leading-dash" "--" "ünïcödé 日本.txt" "star*" "star" "q?mark" "qXmark"
    "[br]acket" "b" 'back\slash' "trail " $'tab\there' "quote'\"" "a:b,c" "#hash" "~tilde" "%s%n" "dir [x]*"
    $'\xff\xfe not UTF-8')
for n in "${odd[@]}"; do put "$L/$n" "c:$n"; done
put "$L/dir ?*[/in ?side" "nested odd"
put "$L/-/--x" "dash dir"
pass_ok "odd names: first pass"
for n in "${odd[@]}"; do printf -v q %q "$n"; both "c:$n" "$n" "odd name $q reaches the remote"; done
both "nested odd" "dir ?*[/in ?side" "odd directory and file name"
both "dash dir" "-/--x" "a directory named '-'"
has_line "$T/out" "to-remote -leading-dash" "a leading dash is printed as is"
has_line "$T/out" "to-remote star*" "a '*' is printed as is"
# the spec does not say how a newline in a name is printed; it must not
# break the one-line-per-action output
lacks "$T/out" "^[^ ]*$|^(line|here)$" "a newline or tab in a name does not split a line"
check "every output line is an action or the summary" bash -c '! grep -vE "^(to-remote|to-local|delete-local|delete-remote|conflict|special|error|guard) |^sync: " "$1"' _ "$T/out"
same "odd names: trees equal"
converged "odd names"
for n in "with space" "[br]acket" 'back\slash' $'new\nline' "ünïcödé 日本.txt"; do put "$R/$n" "changed:$n"; done
rm "$R/star*" "$R/q?mark" "$R/-leading-dash"
rm "$L/trail "
pass_ok "odd names: changes on both sides"
for n in "with space" "[br]acket" 'back\slash' $'new\nline' "ünïcödé 日本.txt"; do
    printf -v q %q "$n"
    both "changed:$n" "$n" "odd name $q changed on the remote reaches local"
done
for n in "star*" "q?mark" "-leading-dash" "trail "; do gone "$n" "odd name '$n' deleted on both"; done
both "c:star" star "'star' survives the deletion of 'star*'"
both "c:qXmark" qXmark "'qXmark' survives the deletion of 'q?mark'"
both "c:b" b "'b' survives the changes of '[br]acket'"
check "'star*' in the local trash" in_trash "$L" "star*" "c:star*"
same "odd names: trees equal after changes"
converged "odd names, changed"

done_testing
