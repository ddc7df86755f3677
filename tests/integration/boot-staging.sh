#!/usr/bin/env bash
# The boot phase empties the staging dir: safely (symlinks are removed, never
# followed), completely (odd names, deep trees), and recreates it root 0755.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root
S=$T/home/profiletemp

# --- a dirty staging dir with everything a crashed session leaves ---------
mkdir -p "$S/alice/.config/app" "$S/bob/Documents"
echo data > "$S/alice/.config/app/settings"
echo doc > "$S/bob/Documents/report.odt"
touch "$S/plain file with spaces" "$S/-leading-dash" "$S/$(printf 'new\nline')"
touch "$S/$(printf 'bad\xffutf8')"
long=$(printf 'n%.0s' $(seq 255))
touch "$S/$long"
mkdir "$S/$long.d" 2>/dev/null || mkdir "$S/${long:0:250}.d"
mkfifo "$S/fifo"
mkdir "$S/locked" && touch "$S/locked/f" && chmod 000 "$S/locked"
chmod 000 "$S/alice/.config"
# symlinks out of the staging dir: to /etc and to a sentinel directory
echo keep > "$T/outside/sentinel"
ln -s /etc "$S/etc-link"
ln -s "$T/outside" "$S/outside-link"
ln -s "$T/outside/sentinel" "$S/alice/sentinel-link"
ln -s /nonexistent "$S/dangling"
# a hard link to a file outside: removing the link keeps the file
ln "$T/outside/sentinel" "$S/hardlink"

hp boot
expect_rc 0 "dirty staging dir cleaned"
contains "$T/out" "^staging $S: emptied \([0-9]+ entries removed\)" "report says emptied"
check "staging dir exists" test -d "$S"
check "staging dir is empty" test -z "$(ls -A "$S")"
check "staging dir is root 0755" test "$(stat -c '%u:%g %a' "$S")" = "0:0 755"
check "/etc untouched through the symlink" test -f /etc/passwd
check "sentinel outside untouched" test "$(cat "$T/outside/sentinel")" = keep
check "sentinel keeps its hard link count" test "$(stat -c %h "$T/outside/sentinel")" = 1
contains "$T/out" "^result 0 \(ok\), boot phase [0-9]+\.[0-9] ms$" "result line, with the phase's time"

# --- deep tree: deeper than PATH_MAX, removed with bounded descriptors -----
# (python: bash's cd re-walks $PWD on every step and takes minutes)
python3 -c '
import os, sys
os.chdir(sys.argv[1])
for i in range(2500):
    os.mkdir("d"); os.chdir("d")
open("file", "w").write("bottom")
' "$S"
depth_ok=$?
check "built a tree 2500 levels deep (path > PATH_MAX)" test "$depth_ok" = 0
# with at most 24 descriptors: the walk must not hold one per level
rc=0
(ulimit -n 32 && exec timeout 60 "$HOMEPORT" -c "$CONF" boot) > "$T/out" 2> "$T/err" || rc=$?
expect_rc 0 "deep tree removed with ulimit -n 32"
check "staging dir is empty after the deep tree" test -z "$(ls -A "$S")"

# --- the staging dir itself is a symlink: the link goes, never the target --
rmdir "$S"
mkdir "$T/outside/victim" && echo precious > "$T/outside/victim/file"
ln -s "$T/outside/victim" "$S"
hp boot
expect_rc 0 "staging symlink replaced"
check "staging is now a real directory" test -d "$S" -a ! -L "$S"
check "symlink target kept its file" test "$(cat "$T/outside/victim/file")" = precious

# --- the staging dir is a regular file ---
rmdir "$S" && echo x > "$S"
hp boot
expect_rc 0 "staging file replaced by a directory"
check "staging is a directory" test -d "$S"

# --- missing staging dir (and missing parent) is created ---
rmdir "$S"
hp boot
expect_rc 0 "missing staging dir created"
check "created" test -d "$S"
mkdir -p "$T/deeper"
sed -i "s|^staging_dir = .*|staging_dir = $T/deeper/a/b/profiletemp|" "$CONF"
hp boot
expect_rc 0 "staging dir with missing parents created"
check "created with parents" test -d "$T/deeper/a/b/profiletemp"

# --- JSON report ---
write_conf
touch "$S/x" "$S/y"
hp boot --json
expect_rc 0 "boot --json"
check "JSON parses and says emptied" test "$(json_get "$T/out" 'j["staging"]["result"]')" = emptied
check "JSON counts 2 removed" test "$(json_get "$T/out" 'j["staging"]["removed"]')" = 2
check "JSON exit_code 0" test "$(json_get "$T/out" 'j["exit_code"]')" = 0
check "JSON elapsed_ms, a time in ms" test "$(json_get "$T/out" '0 < j["elapsed_ms"] < 60000')" = True

done_testing
