#!/usr/bin/env bash
# Mounts under the staging dir and the home root: live ones make the boot
# phase refuse to clean (nothing deleted), stale ones (a FUSE daemon killed
# with SIGKILL) are detected and detached, then the dir is cleaned.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root
S=$T/home/profiletemp

# --- a live mount below the staging dir: refusal, nothing deleted ---------
mkdir -p "$S/alice" "$S/bob"
echo mine > "$S/bob/unsaved-work"
mount -t tmpfs live-home "$S/alice"
echo inside > "$S/alice/file"
hp boot
expect_rc 3 "live mount below staging: cleanup refused"
contains "$T/out" "^staging $S: not cleaned: something is mounted" "report says not cleaned"
contains "$T/out" "^mount live live-home on $S/alice type tmpfs: kept" "report lists source, target, fstype"
check "file beside the mount kept" test "$(cat "$S/bob/unsaved-work")" = mine
check "file inside the mount kept" test "$(cat "$S/alice/file")" = inside
check "live mount still mounted" is_mounted "$S/alice"
hp boot --json
check "JSON: refused-mounts" test "$(json_get "$T/out" 'j["staging"]["result"]')" = refused-mounts
check "JSON: the live mount listed" test "$(json_get "$T/out" '[m["target"] for m in j["mounts"] if m["health"]=="live"]')" = "['$S/alice']"
umount "$S/alice"

# --- a mount on the staging dir itself ---
mount -t tmpfs on-staging "$S"
touch "$S/x"
hp boot
expect_rc 3 "staging dir itself a mount point: refused"
check "nothing deleted in it" test -f "$S/x"
umount "$S"

# --- a stale FUSE mount (daemon SIGKILLed) below the staging dir ----------
check "stale FUSE mount made" stale_fuse "$S/carol with space"
touch "$S/leftover"
hp boot
expect_rc 0 "stale FUSE detached, then cleaned"
contains "$T/out" "^mount stale /dev/fuse on $S/carol with space type fuse: transport endpoint is not connected.*: detached" "report names the stale mount and the action"
contains "$T/out" "^staging $S: emptied" "staging emptied after the detach"
check "stale mount gone" bash -c "! grep -q profiletemp /proc/self/mountinfo"
check "staging empty" test -z "$(ls -A "$S")"

# --- unmount_stale = no: stale mount kept, cleanup refused ----------------
UNMOUNT_STALE=no write_conf
check "stale FUSE mount made" stale_fuse "$S/dave"
hp boot
expect_rc 3 "unmount_stale = no: refused"
contains "$T/out" "^mount stale /dev/fuse on $S/dave type fuse: .*: kept" "stale mount reported and kept"
check "still mounted" is_mounted "$S/dave"
write_conf
hp boot
expect_rc 0 "with unmount_stale = yes again: detached and cleaned"
check "gone" bash -c "! grep -qF ' $S/dave ' /proc/self/mountinfo"

# --- stale beside live: the stale one goes, the live one refuses ----------
mkdir -p "$S/erin"
mount -t tmpfs live2 "$S/erin"
check "stale FUSE mount made" stale_fuse "$S/frank"
hp boot
expect_rc 3 "stale beside live: refused"
contains "$T/out" "on $S/frank type fuse: .*: detached" "the stale one was detached anyway"
check "live one still mounted" is_mounted "$S/erin"
umount "$S/erin"

# --- stale mount under the home root, outside staging ---------------------
check "stale FUSE under home root" stale_fuse "$T/home/gina"
mkdir -p "$T/home/harry" && mount -t tmpfs harry-home "$T/home/harry"
hp boot
expect_rc 0 "stale home mount detached, live home untouched"
contains "$T/out" "^mount stale /dev/fuse on $T/home/gina type fuse: .*: detached" "stale home reported"
lacks "$T/out" "harry" "a live home is not reported"
check "live home still mounted" is_mounted "$T/home/harry"

# --- a live mount below a stale one: lazily detaching the stale one would
# take the live one along, so neither is touched ---
mkdir -p "$T/home/kim"
nbdfuse "$T/home/kim" --command nbdkit -s memory 1M 2>> "$T/nbdfuse.log" &
fpid=$!; track "$fpid"
wait_for test -e "$T/home/kim/nbd"
echo live > "$T/outside/live-file"
mount --bind "$T/outside/live-file" "$T/home/kim/nbd"
kill -9 "$fpid"; wait "$fpid" 2>/dev/null
hp boot
contains "$T/out" "^mount stale /dev/fuse on $T/home/kim type fuse: .*: kept" "stale parent of a live mount kept"
check "the live mount below it is still there" is_mounted "$T/home/kim/nbd"
umount -l "$T/home/kim"

# --- a loop-mounted home whose image file was deleted: an orphan ---------
# (its data is still reachable through the mount: reported, never detached)
truncate -s 8M "$T/ivan.img" && mkfs.ext4 -q -F "$T/ivan.img"
loop=$(losetup -f --show "$T/ivan.img") && track_loop "$loop"
mkdir -p "$T/home/ivan" && mount "$loop" "$T/home/ivan" && echo precious > "$T/home/ivan/thesis"
rm "$T/ivan.img"
hp boot
expect_rc 0 "orphaned loop home: reported, boot still ok"
contains "$T/out" "^mount orphan $loop on $T/home/ivan type ext4: ${loop#/dev/} backing file $T/ivan.img \(deleted\): kept" "orphan reported with its backing file"
check "orphan still mounted, data readable" test "$(cat "$T/home/ivan/thesis")" = precious
contains "$T/out" "^device ${loop#/dev/} orphan: ${loop#/dev/} backing file $T/ivan.img \(deleted\): reported" "the loop device itself reported"
umount "$T/home/ivan"

# the same below the staging dir: cleanup refused, nothing deleted
truncate -s 8M "$T/jo.img" && mkfs.ext4 -q -F "$T/jo.img"
loop2=$(losetup -f --show "$T/jo.img") && track_loop "$loop2"
mkdir -p "$S/jo" && mount "$loop2" "$S/jo" && touch "$S/jo/mail" "$S/other"
rm "$T/jo.img"
hp boot
expect_rc 3 "orphaned loop below staging: refused"
check "nothing deleted" test -e "$S/jo/mail" -a -e "$S/other"
umount "$S/jo"

done_testing
