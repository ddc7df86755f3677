#!/usr/bin/env bash
# The run dir under a shared mount, as /run is under systemd: the agent
# makes its stage dir a private mount of its own, so that open_session
# moves the prepared home onto the home dir in one mount(2) (MS_MOVE
# refuses a mount whose parent is shared); an agent started again (after
# kill -9: the homes stay) keeps that one mount.  Homes an earlier agent
# left prepared on a stage dir that is not a mount of its own are not
# hidden under a new one: the agent leaves it as it is and binds instead.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

mount --make-rshared "$T" || bail "cannot make $T shared"
given "alice's and bob's homes" homes alice bob
check "nbdkit serves the image dir" start_nbdkit "$T/nbd.sock" file dir="$T/srv"
pam_services

stage_mounts() { grep -c " $R/stage " /proc/self/mountinfo; }
stage_line() { grep " $R/stage " /proc/self/mountinfo; }

# An earlier agent's prepared home, on a stage dir that is not a mount of
# its own (here a tmpfs stands for it).
mkdir -p "$R/stage/zed"
check "an earlier agent's home on the stage dir" mount -t tmpfs old-home "$R/stage/zed"
check "agent starts" start_agent
check "it leaves that stage dir as it is" test "$(stage_mounts)" = 0
contains "$T/agent.log" "cannot make $R/stage a private mount (.*busy)" "it says why"
check "the earlier home is still there" grep -q " $R/stage/zed .* old-home " /proc/self/mountinfo
pt alice acct_mgmt
expect_rc 0 "account alice (stage dir shared)"
pt alice open_session
expect_rc 0 "open_session alice (bound, not moved)"
check "alice's home mounted" mounted alice
check "her stage mount is gone" bash -c "! grep -q ' $R/stage/alice ' /proc/self/mountinfo"
kill -9 "$AGENT"; wait "$AGENT" 2> /dev/null
check "the earlier home taken away" umount "$R/stage/zed"

check "the agent starts again" start_agent
check "the stage dir is a mount of its own now" test "$(stage_mounts)" = 1
check "a private one (no shared: tag)" bash -c "! stage_line | grep -q shared:" 2> /dev/null ||
    stage_line >&2
pt bob acct_mgmt
expect_rc 0 "account bob"
check "bob's home prepared on the private stage dir" grep -q " $R/stage/bob " /proc/self/mountinfo
pt bob open_session
expect_rc 0 "open_session bob (moved)"
check "bob's home mounted" mounted bob
check "his stage mount is gone" bash -c "! grep -q ' $R/stage/bob ' /proc/self/mountinfo"
check "bob's home is shared like its parent" grep -q " $T/home/bob .* shared:" /proc/self/mountinfo
check "the home belongs to bob" test "$(stat -c %U "$T/home/bob")" = bob
kill -9 "$AGENT"; wait "$AGENT" 2> /dev/null
check "a third start" start_agent
check "still one stage mount" test "$(stage_mounts)" = 1
pt bob close_session
expect_rc 0 "close_session bob"
check "bob's home unmounted" bash -c "! grep -q ' $T/home/bob ' /proc/self/mountinfo"
finish
