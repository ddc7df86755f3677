#!/usr/bin/env bash
# homeport mkhome: a sparse ext4 image per user, populated from a skeleton
# owned by the user, never overwriting, nothing left behind on failure.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root
mkdir -p "$T/srv/homes" "$T/skel/.config"
echo "welcome" > "$T/skel/README"
echo "colors=on" > "$T/skel/.config/app.rc"
ln -s README "$T/skel/link-to-readme"
cat >> "$CONF" <<CONF
[server]
image_dir = $T/srv/homes
skel = $T/skel
default_size = 64M
CONF

hp mkhome alice --uid 1234 --gid 2345
expect_rc 0 "mkhome alice"
img=$T/srv/homes/alice
contains "$T/out" "^created $img: 67108864 bytes, ext4, owner 1234:2345, from $T/skel$" "report line"
check "image has the default size" test "$(stat -c %s "$img")" = 67108864
check "image is sparse (<= 16 MiB allocated)" test "$(du -k "$img" | cut -f1)" -le 16384
check "image is ext4" bash -c "file -b '$img' | grep -q 'ext4 filesystem data'"
check "label is the user name" test "$(e2label "$img")" = alice
check "no reserved blocks" bash -c "dumpe2fs -h '$img' 2>/dev/null | grep -Eq '^Reserved block count: +0$'"
debugfs -R "stat /" "$img" > "$T/root" 2>/dev/null
contains "$T/root" "User: +1234 +Group: +2345" "root dir owned by the user"
check "skeleton file copied" test "$(debugfs -R 'cat /README' "$img" 2>/dev/null)" = welcome
check "skeleton subdir copied" test "$(debugfs -R 'cat /.config/app.rc' "$img" 2>/dev/null)" = colors=on
debugfs -R "stat /README" "$img" > "$T/readme" 2>/dev/null
contains "$T/readme" "User: +1234 +Group: +2345" "skeleton files owned by the user"
check "symlink copied as a symlink" bash -c "debugfs -R 'stat /link-to-readme' '$img' 2>/dev/null | grep -q 'Type: symlink'"
check "fsck clean" e2fsck -fn "$img"
check "no temporary dir left" test "$(ls -A "$T/srv/homes")" = alice

# never overwrite
echo marker >> "$img"
hp mkhome alice --uid 1234 --gid 2345
expect_rc 1 "second mkhome alice refused"
contains "$T/err" "$img already exists: refusing to overwrite a home image" "says why"
check "existing image untouched" bash -c "tail -c 7 '$img' | grep -q marker"

# size, no skeleton, a user known to the system
hp mkhome root --size 32M --no-skel
expect_rc 0 "mkhome root --size 32M --no-skel (uid from the passwd database)"
check "32M" test "$(stat -c %s "$T/srv/homes/root")" = 33554432
check "owned by uid 0" bash -c "debugfs -R 'stat /' '$T/srv/homes/root' 2>/dev/null | grep -Eq 'User: +0 +Group: +0'"

# bad input: nothing created
for bad in "../etc" "a/b" "-rf" ".hidden" 'x;y'; do
    hp mkhome --uid 1 --gid 1 -- "$bad"
    if [ "$rc" = 2 ] && grep -q "invalid user name" "$T/err"; then ok "bad name '$bad' refused"; else not_ok "bad name '$bad': exit $rc"; show_out; fi
done
hp mkhome nosuchuser-hp
expect_rc 2 "unknown user without --uid/--gid"
contains "$T/err" "user 'nosuchuser-hp' is unknown on this machine: give --uid and --gid" "says what to do"
hp mkhome bob --size 1K --uid 1 --gid 1
expect_rc 2 "size too small"
hp mkhome bob --uid 1
expect_rc 2 "--uid without --gid"
hp mkhome bob --skel "$T/no-such-skel" --uid 1 --gid 1
expect_rc 2 "missing skeleton"
check "nothing left for bob" test ! -e "$T/srv/homes/bob"

# a tool that fails (a skeleton bigger than the image): the half-made
# image is removed
mkdir -p "$T/bigskel" && head -c 20M /dev/urandom > "$T/bigskel/big"
hp mkhome carol --size 16M --skel "$T/bigskel" --uid 1 --gid 1
expect_rc 1 "skeleton larger than the image: mkfs fails"
contains "$T/err" "cannot create $T/srv/homes/carol: mkfs.ext4 failed \(exit [0-9]+\); nothing was left behind" "names the failing tool"
check "nothing left for carol" test ! -e "$T/srv/homes/carol"
check "no temporary dir left after failures" bash -c "! ls -A '$T/srv/homes' | grep -q mkhome"

done_testing
