#!/usr/bin/env bash
# homeport sync, special-files: fifos, sockets and devices are reported,
# never copied, never opened.
# shellcheck disable=SC2016 # bash -c '...' _ ARGS: expanded by that bash
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

pair special
put "$L/plain" plain
mkfifo "$L/pipe" "$R/rpipe"
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$L/sock"
mknod "$L/null" c 1 3
SYNC_TIMEOUT=20 pass_ok "special files: first pass (no blocking on the fifo)"
has_line "$T/out" "special pipe (local): not synced" "fifo reported"
has_line "$T/out" "special sock (local): not synced" "socket reported"
has_line "$T/out" "special null (local): not synced" "device reported"
has_line "$T/out" "special rpipe (remote): not synced" "remote fifo reported"
summary_is "special summary" 1 0 0 0 0 4 0
check "nothing special copied to the remote" bash -c '! [ -e "$1/pipe" ] && ! [ -e "$1/sock" ] && ! [ -e "$1/null" ]' _ "$R"
check "nothing special copied to local" test ! -e "$L/rpipe"
check "the special files are left alone" bash -c '[ -p "$1/pipe" ] && [ -S "$1/sock" ] && [ -c "$1/null" ] && [ -p "$2/rpipe" ]' _ "$L" "$R"
both plain plain "the plain file beside them is synced"
same "special: trees equal (special files aside)"
SYNC_TIMEOUT=20 NSPECIAL=4 converged "special files (reported again)"

done_testing
