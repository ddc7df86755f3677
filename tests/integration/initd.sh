#!/usr/bin/env bash
# The boot integration files: the LSB init script (init.d/homeport) run
# under busybox sh and dash against the real agent (start with the boot
# phase, already running, reload good and bad, stop refused while a home has
# open sessions, restart as a hand-over, forced stop leaving the home
# mounted, re-adoption, taking over from an agent of another binary, LSB
# exit codes); the systemd unit (systemd-analyze verify); the sync popup and
# its Xsession.d snippet (plain message, fake zenity and xmessage, time
# limit); the default sync exclude list.
. "$(dirname "$0")/../lib.sh"
enter_namespace "$@"
setup_root
R=$T/run/homeport
INITD=$TOP/init.d/homeport
UNIT=$TOP/init.d/homeport.service
POPUP=$TOP/configs/homeport-sync-popup
SNIPPET=$TOP/configs/Xsession.d/95homeport-sync-popup

AGENTS=()
# every agent seen (pid file), stopped at exit: SIGTERM (orderly: it waits
# up to shutdown_timeout for open sessions), a second one if needed (exit at
# once); then the homes (lib.sh).
stop_all() {
    local p
    [ -f "$R/agent.pid" ] && AGENTS+=("$(cat "$R/agent.pid")")
    for p in "${AGENTS[@]}"; do
        is_agent "$p" || continue
        kill -TERM "$p" 2> /dev/null
        timeout 5 tail --pid="$p" -f /dev/null
        kill -TERM "$p" 2> /dev/null
        timeout 5 tail --pid="$p" -f /dev/null
    done
    stop_homes
}
CLEANUP_HOOK=stop_all

requires_fuse
requires busybox

add_users alice:2001 bob:2002 carol:2003
mkdir -p "$T/srv" "$T/skel" "$T/bin" "$T/fake"
echo hi > "$T/skel/README"
conf() { # conf [LEASE]
    SESSION_CONF="lease = ${1:-60s}
kill_grace = 1s" SERVER_CONF="skel = $T/skel" home_conf "servers = unix:$T/nbd.sock"
    sed -i "s/^\[agent\]$/[agent]\nshutdown_timeout = 2s/" "$CONF"
}
conf
for u in alice bob carol; do hp mkhome "$u"; done
check "homes made" test -f "$T/srv/alice" -a -f "$T/srv/bob" -a -f "$T/srv/carol"
check "nbdkit serves the image dir" start_nbdkit "$T/nbd.sock" file dir="$T/srv"

ms() { echo $(($(date +%s%N) / 1000000)); }
apid() { cat "$R/agent.pid" 2> /dev/null; }
# a live process named homeport (not a zombie: init may be slow to reap)
is_agent() {
    local st
    [ -n "$1" ] && st=$(cat "/proc/$1/stat" 2> /dev/null) || return 1
    [[ $st == *"(homeport) "[!ZX]* ]]
}
mounted() { grep -q " $T/home/$1 " /proc/self/mountinfo; }
export -f is_agent
# pam STAGE USER: what pam_exec runs; output in $T/out
pam() {
    rc=0
    env PAM_TYPE="$1" PAM_USER="$2" PAM_SERVICE=login timeout 60 "$HOMEPORT" -c "$CONF" pam > "$T/out" 2>&1 || rc=$?
}
# initd ARGS…: the init script under $SH with the defaults file $DEFS;
# stdout and stderr in $T/out (the LSB functions print failures on stdout,
# the plain messages go to stderr), exit in $rc
initd() {
    rc=0
    rm -f "$T/err"
    HOMEPORT_DEFAULTS=$DEFS timeout 120 "${SH[@]}" "$INITD" "$@" > "$T/out" 2>&1 || rc=$?
}
# defaults FILE [VAR=value…]: an /etc/default/homeport for the test
defaults() {
    local f=$1; shift
    {
        echo "DAEMON=$HOMEPORT"
        echo "CONFIG=$CONF"
        echo "PIDFILE=$R/agent.pid"
        echo "STOP_TIMEOUT=20"
        echo "INIT_FUNCTIONS=$INIT_FUNCTIONS"
        printf '%s\n' "$@"
    } > "$f"
}
# a process named homeport that is not an agent (SIGHUP kills it), reparented
# to init so that it is reaped when it dies; pid in $FAKE
fake_homeport() {
    cp "$(command -v sleep)" "$T/fake/homeport"
    ("$T/fake/homeport" 600 > /dev/null 2>&1 & echo $! > "$T/fake.pid")
    FAKE=$(cat "$T/fake.pid")
    track "$FAKE"
}

# --- static checks ------------------------------------------------------------
for f in "$INITD" "$POPUP"; do
    check "$(basename "$f") is executable" test -x "$f"
    check "$(basename "$f") parses under dash" dash -n "$f"
    check "$(basename "$f") parses under busybox sh" busybox sh -n "$f"
done
check "the Xsession.d snippet parses" dash -n "$SNIPPET"
if command -v shellcheck > /dev/null; then
    check "shellcheck -s sh: init script, popup, snippet" shellcheck -s sh "$INITD" "$POPUP" "$SNIPPET"
else
    skip "shellcheck" "shellcheck is not installed"
fi
if command -v checkbashisms > /dev/null; then
    check "checkbashisms: init script, popup" checkbashisms -p -x "$INITD" "$POPUP"
    check "checkbashisms: the initramfs hook, boot script and dracut module" checkbashisms -p -x \
        "$TOP"/initramfs-hooks/initramfs-tools/hooks/homeport \
        "$TOP"/initramfs-hooks/initramfs-tools/scripts/init-premount/homeport \
        "$TOP"/initramfs-hooks/dracut/95homeport/*.sh
else
    skip "checkbashisms" "checkbashisms (devscripts) is not installed"
fi
hdr=$(sed -n '/^### BEGIN INIT INFO$/,/^### END INIT INFO$/p' "$INITD")
for l in "Provides: +homeport$" "Required-Start: +\\\$network \\\$remote_fs \\\$syslog$" \
    "Default-Start: +2 3 4 5$" "Default-Stop: +0 1 6$" "X-Start-Before: +lightdm gdm3 sddm xdm$" \
    "Short-Description: " "Description: "; do
    check "LSB header: ${l%% *}" grep -qE "^# $l" <<< "$hdr"
done

# --- the systemd unit ---------------------------------------------------------
for l in "^Type=forking$" "^PIDFile=/run/homeport/agent.pid$" \
    "^ExecStart=/usr/local/sbin/homeport agent --replace$" "^ExecReload=/bin/kill -HUP \\\$MAINPID$" \
    "^KillMode=process$" "^KillSignal=SIGTERM$" "^TimeoutStopSec=75$" "^Restart=on-failure$" \
    "^Before=display-manager.service systemd-user-sessions.service$" "^After=network-online.target" \
    "^Wants=network-online.target$" "^WantedBy=multi-user.target$"; do
    contains "$UNIT" "$l" "unit: ${l//[\^\$\\]/}"
done
lacks "$UNIT" "^ExecStartPre=" "unit: no second boot phase before the agent"
lacks "$UNIT" "^(PrivateTmp|ProtectHome|ProtectSystem|PrivateDevices|PrivateMounts|MountFlags|ReadOnlyPaths|ReadWritePaths|InaccessiblePaths|TemporaryFileSystem|BindPaths|RootDirectory|RuntimeDirectory)=" \
    "unit: no mount namespace, no RuntimeDirectory"
if command -v systemd-analyze > /dev/null && [ -d /usr/local/sbin ]; then
    # the binary where the unit expects it, in this namespace only
    mount -t tmpfs hp-sbin /usr/local/sbin && cp "$HOMEPORT" /usr/local/sbin/homeport
    rc=0
    timeout 60 systemd-analyze verify --man=no "$UNIT" > "$T/out" 2>&1 || rc=$?
    expect_rc 0 "systemd-analyze verify"
    lacks "$T/out" "." "and it has nothing to say"
    umount /usr/local/sbin
else
    skip "systemd-analyze verify" "systemd-analyze is not installed"
fi

# --- the init script, under one shell ----------------------------------------
suite() {
    local L=$1 P OLD t0 t1
    diag "init script under ${SH[*]} (${INIT_FUNCTIONS##*/} when it exists: $INIT_FUNCTIONS)"
    DEFS=$T/default.$L
    defaults "$DEFS"

    initd status
    expect_rc 3 "[$L] status when stopped"
    contains "$T/out" "not running" "[$L] says not running"
    check "[$L] no agent" test ! -e "$R/agent.pid"

    touch "$T/home/profiletemp/leftover-$L"
    initd start
    expect_rc 0 "[$L] start"
    cp "$T/out" "$T/start.$L"
    P=$(apid)
    AGENTS+=("$P")
    check "[$L] the pid file names a live agent" is_agent "$P"
    check "[$L] it listens on its socket" test -S "$R/agent.sock"
    contains "$T/out" "agent ready \(pid $P\)" "[$L] start names the agent"
    contains "$T/out" "^staging $T/home/profiletemp: " "[$L] the boot phase's report is shown"
    contains "$T/out" "^result 0 " "[$L] with its result"
    check "[$L] the boot phase emptied the staging dir" test ! -e "$T/home/profiletemp/leftover-$L"
    hp status
    expect_rc 0 "[$L] homeport status works"

    initd start
    expect_rc 0 "[$L] start again"
    contains "$T/out" "already running \(pid $P\)" "[$L] says already running"
    check "[$L] same agent" test "$(apid)" = "$P"
    lacks "$T/out" "^result " "[$L] no second boot phase"

    # reload: a lease of 1 s, which only the agent applies (a home prepared
    # at account is released when no session follows within the lease)
    conf 1s
    initd reload
    expect_rc 0 "[$L] reload"
    check "[$L] the agent lives on" is_agent "$P"
    sleep 0.5
    pam account bob
    expect_rc 0 "[$L] bob's home prepared"
    check "[$L] and released after the reloaded 1 s lease" wait_for test ! -e "$R/homes/bob"
    if dmesg 2> /dev/null | grep -qF "homeport[$P]: agent ready"; then
        check "[$L] the agent logged the reload" bash -c "dmesg | grep -qF 'homeport[$P]: configuration reloaded from $CONF'"
    else
        skip "[$L] the agent logged the reload" "the daemon's log is not in the kernel log here"
    fi
    conf 60s
    cp "$CONF" "$T/good.conf"
    printf '[nbd]\ncolour = blue\n' >> "$CONF"
    fake_homeport
    defaults "$T/default.fake" "PIDFILE=$T/fake.pid"
    DEFS=$T/default.fake initd reload
    expect_rc 6 "[$L] reload with a configuration that is not valid"
    contains "$T/out" "unknown key 'colour'" "[$L] with the checker's messages"
    check "[$L] no signal sent (SIGHUP would have killed the process)" is_agent "$FAKE"
    initd reload
    expect_rc 6 "[$L] same against the real agent"
    check "[$L] which runs on" is_agent "$P"
    cp "$T/good.conf" "$CONF"
    DEFS=$T/default.fake initd reload
    expect_rc 0 "[$L] a valid one is signalled"
    check "[$L] SIGHUP sent (the process is gone)" wait_for bash -c "! is_agent $FAKE"
    initd reload
    expect_rc 0 "[$L] reload back to 60 s"

    initd status
    expect_rc 0 "[$L] status when running"
    contains "$T/out" "running \(pid $P\)" "[$L] names the pid"
    contains "$T/out" "^no homes held$" "[$L] and shows homeport status"

    # --- homes in use: stop refused; restart hands over -----------------------
    pam open_session alice
    expect_rc 0 "[$L] alice's session opens"
    pam open_session bob
    expect_rc 0 "[$L] bob's too"
    check "[$L] alice's home mounted" mounted alice
    echo "written before the restart ($L)" > "$T/home/alice/note"
    initd stop
    expect_rc 1 "[$L] stop refused while homes are in use"
    contains "$T/out" "refusing to stop: homes in use by alice, bob; use 'force-stop' or 'stop --force' to stop anyway" "[$L] naming the users"
    check "[$L] the agent still runs" is_agent "$P"
    pam close_session bob
    expect_rc 0 "[$L] bob logs out"

    OLD=$P
    initd restart
    expect_rc 0 "[$L] restart with a session open"
    P=$(apid)
    AGENTS+=("$P")
    check "[$L] a new agent ($OLD -> $P)" test -n "$P" -a "$P" != "$OLD"
    check "[$L] it runs" is_agent "$P"
    check "[$L] the old one is gone" wait_for bash -c "! is_agent $OLD"
    check "[$L] alice's home still mounted" mounted alice
    check "[$L] and served" test "$(cat "$T/home/alice/note")" = "written before the restart ($L)"
    hp status
    contains "$T/out" "^alice .* on $T/home/alice \(mounted\):.* sessions 1," "[$L] re-adopted with its session"
    lacks "$T/start.$L" "handing over" "[$L] (start did not hand over)"

    initd stop --force
    expect_rc 0 "[$L] stop --force with a session open"
    check "[$L] the agent is gone" bash -c "! is_agent $P"
    check "[$L] its pid file too" test ! -e "$R/agent.pid"
    check "[$L] alice's home stays mounted" mounted alice
    check "[$L] served by its worker" test "$(cat "$T/home/alice/note")" = "written before the restart ($L)"

    initd stop
    expect_rc 0 "[$L] stop when not running"
    contains "$T/out" "not running" "[$L] says so"

    initd start
    expect_rc 0 "[$L] start again"
    P=$(apid)
    AGENTS+=("$P")
    check "[$L] runs" is_agent "$P"
    hp status
    contains "$T/out" "^alice .* on $T/home/alice \(mounted\):.* sessions 1," "[$L] alice's home re-adopted with its session"

    # at runlevel 0 or 6 stop does not refuse: the machine goes down anyway
    t0=$(ms)
    RUNLEVEL=6 initd stop
    t1=$(ms)
    expect_rc 0 "[$L] stop at runlevel 6 with a session open"
    check "[$L] the agent is gone" bash -c "! is_agent $P"
    check "[$L] after waiting for the session up to shutdown_timeout ($((t1 - t0)) ms)" test $((t1 - t0)) -ge 1500
    check "[$L] alice's home stays mounted" mounted alice

    # an agent of another binary (the initramfs's): start takes over from it
    mkdir -p "$T/initramfs"
    cp "$HOMEPORT" "$T/initramfs/homeport"
    rc=0
    timeout 60 "$T/initramfs/homeport" -c "$CONF" agent > "$T/out" 2>&1 || rc=$?
    expect_rc 0 "[$L] an agent from the initramfs's binary"
    OLD=$(apid)
    AGENTS+=("$OLD")
    check "[$L] it runs" is_agent "$OLD"
    initd start
    expect_rc 0 "[$L] start while the initramfs's agent runs"
    contains "$T/out" "taking over from the agent running $T/initramfs/homeport \(pid $OLD\)" "[$L] says it takes over"
    P=$(apid)
    AGENTS+=("$P")
    check "[$L] a new agent ($OLD -> $P)" test -n "$P" -a "$P" != "$OLD"
    check "[$L] from DAEMON" test "$(readlink "/proc/$P/exe")" = "$(readlink -f "$HOMEPORT")"
    check "[$L] the old one is gone" wait_for bash -c "! is_agent $OLD"
    lacks "$T/out" "^result " "[$L] no boot phase while taking over"
    hp status
    contains "$T/out" "^alice .* \(mounted\):.* sessions 1," "[$L] alice's home re-adopted"

    initd force-stop
    expect_rc 0 "[$L] force-stop"
    check "[$L] the agent is gone" bash -c "! is_agent $P"
    initd start
    expect_rc 0 "[$L] start once more"
    P=$(apid)
    AGENTS+=("$P")

    pam close_session alice
    expect_rc 0 "[$L] alice logs out"
    check "[$L] her home is unmounted" bash -c "! grep -q ' $T/home/alice ' /proc/self/mountinfo"
    initd stop
    expect_rc 0 "[$L] stop with no home in use"
    check "[$L] the agent is gone" bash -c "! is_agent $P"
    initd status
    expect_rc 3 "[$L] status after stop"
    initd try-restart
    expect_rc 0 "[$L] try-restart when stopped"
    check "[$L] starts nothing" test ! -e "$R/agent.pid"

    # --- pid files --------------------------------------------------------------
    mkdir -p "$R"
    sleep 0 & wait $!
    echo $! > "$R/agent.pid"
    initd status
    expect_rc 1 "[$L] status with a pid file naming a dead process"
    contains "$T/out" "not running, but $R/agent.pid exists" "[$L] says so"
    echo $$ > "$R/agent.pid"
    initd status
    expect_rc 1 "[$L] status with a pid file naming something else"
    initd stop
    expect_rc 0 "[$L] stop then: not running"
    check "[$L] the shell named there lives on" kill -0 $$
    echo garbage > "$R/agent.pid"
    initd status
    expect_rc 4 "[$L] status with a pid file that holds no pid"
    initd reload
    expect_rc 7 "[$L] reload when not running"
    rm -f "$R/agent.pid"

    # --- not installed, not configured, bad arguments --------------------------
    defaults "$T/default.nobin" "DAEMON=$T/no/homeport"
    DEFS=$T/default.nobin initd start
    expect_rc 5 "[$L] start without the binary"
    contains "$T/out" "$T/no/homeport is not installed" "[$L] says so"
    printf '[nbd]\ncolour = blue\n' >> "$CONF"
    initd start
    expect_rc 6 "[$L] start with a configuration that is not valid"
    contains "$T/out" "unknown key 'colour'" "[$L] with the checker's messages"
    check "[$L] no agent started" test ! -e "$R/agent.pid"
    initd restart
    expect_rc 6 "[$L] restart likewise"
    cp "$T/good.conf" "$CONF"
    defaults "$T/default.noconf" "CONFIG=$T/no.conf"
    DEFS=$T/default.noconf initd start
    expect_rc 6 "[$L] start without a configuration"
    contains "$T/out" "configuration $T/no.conf is missing" "[$L] says so"
    for a in "" bogus "stop --bogus" "status extra"; do
        # shellcheck disable=SC2086
        initd $a
        expect_rc 2 "[$L] usage: '$a'"
        contains "$T/out" "^Usage: .*start\|stop \[--force\]\|force-stop\|restart" "[$L] usage printed"
    done
    check "[$L] nothing left running" test ! -e "$R/agent.pid"
}

SH=(busybox sh)
INIT_FUNCTIONS=$T/none # a minimal system: plain messages
suite busybox
if command -v dash > /dev/null; then
    SH=(dash)
    INIT_FUNCTIONS=/lib/lsb/init-functions # when installed (Debian: sysvinit-utils)
    suite dash
else
    skip "the init script under dash" "dash is not installed"
fi

# --- the sync popup ------------------------------------------------------------
mount --bind "$T/var/tmp" /var/tmp # the default flag path, in this namespace only
cat > "$T/bin/zenity" <<Z
#!/bin/sh
printf '%s\n' "\$@" > "$T/zenity.args"
cat > "$T/zenity.in"
Z
mkdir -p "$T/xbin"
cat > "$T/xbin/xmessage" <<X
#!/bin/sh
printf '%s\n' "\$@" > "$T/xmessage.args"
echo \$\$ > "$T/xmessage.pid"
exec sleep 600
X
chmod +x "$T/bin/zenity" "$T/xbin/xmessage"
# popup ENV…: the popup under $SH; stderr in $T/err, stdout in $T/out,
# exit in $rc, duration in $dt (ms)
popup() {
    local t0
    rc=0
    t0=$(ms)
    timeout 30 env "$@" "${SH[@]}" "$POPUP" > "$T/out" 2> "$T/err" || rc=$?
    dt=$(($(ms) - t0))
}
remove_later() { # remove_later FILE SECONDS
    (sleep "$2"; rm -f "$1") &
    track $!
}

popup_suite() {
    local L=$1 F=$T/var/tmp/horizon-pam_session_alice.flag t0
    rm -f "$T/zenity.args" "$T/zenity.in" "$T/xmessage.args"
    popup -u DISPLAY USER=alice
    expect_rc 0 "[$L] popup: no flag"
    check "[$L] returns at once ($dt ms)" test "$dt" -lt 1000
    check "[$L] silently" test ! -s "$T/out" -a ! -s "$T/err"

    touch "$F"
    remove_later "$F" 2
    popup -u DISPLAY USER=alice
    expect_rc 0 "[$L] popup: flag at the default path, removed after 2 s"
    check "[$L] returned once it was gone ($dt ms)" test "$dt" -ge 1500 -a "$dt" -lt 10000
    check "[$L] the plain message, once" test "$(cat "$T/err")" = "homeport: your profile is being synchronised; please wait..."

    touch "$T/var/tmp/horizon-pam_session_root.flag"
    popup -u DISPLAY -u USER HOMEPORT_POPUP_TIMEOUT=2
    check "[$L] popup: no USER: id -un's flag, which stays: gives up" test "$rc" -ne 0
    check "[$L] after HOMEPORT_POPUP_TIMEOUT=2 ($dt ms)" test "$dt" -ge 1500 -a "$dt" -lt 6000
    contains "$T/err" "gave up waiting for the profile synchronisation after 2 s" "[$L] saying so"
    rm -f "$T/var/tmp/horizon-pam_session_root.flag"

    # the greeter side: any user's flag
    touch "$T/var/tmp/horizon-pam_session_alice.flag" "$T/var/tmp/horizon-pam_session_bob.flag"
    remove_later "$T/var/tmp/horizon-pam_session_alice.flag" 1
    remove_later "$T/var/tmp/horizon-pam_session_bob.flag" 2
    rc=0
    t0=$(ms)
    env -u DISPLAY timeout 30 "${SH[@]}" "$POPUP" --any > "$T/out" 2> "$T/err" || rc=$?
    dt=$(($(ms) - t0))
    expect_rc 0 "[$L] popup --any: two users' flags"
    check "[$L] returned once both were gone ($dt ms)" test "$dt" -ge 1500 -a "$dt" -lt 10000
    check "[$L] naming them" test "$(cat "$T/err")" = "homeport: the profile of alice, bob is being synchronised; please wait..."
    rc=0
    timeout 10 "${SH[@]}" "$POPUP" --bogus > "$T/out" 2>&1 || rc=$?
    expect_rc 2 "[$L] popup: bad argument"

    touch "$T/flag"
    remove_later "$T/flag" 3
    popup DISPLAY=:99 PATH="$T/bin:$PATH" HOMEPORT_FLAG="$T/flag"
    expect_rc 0 "[$L] popup with zenity and a display"
    check "[$L] returned after the flag went ($dt ms)" test "$dt" -ge 2500 -a "$dt" -lt 10000
    check "[$L] zenity ran" test -f "$T/zenity.args"
    check "[$L] with --progress --pulsate --no-cancel --auto-close" \
        bash -c "grep -qx -- --progress '$T/zenity.args' && grep -qx -- --pulsate '$T/zenity.args' && grep -qx -- --no-cancel '$T/zenity.args' && grep -qx -- --auto-close '$T/zenity.args'"
    check "[$L] and the text" grep -qx "Synchronising your profile…" "$T/zenity.args"
    check "[$L] fed each second until the flag went ($(grep -c '^# ' "$T/zenity.in") lines)" test "$(grep -c '^# Synchronising your profile…$' "$T/zenity.in")" -ge 2
    check "[$L] then 100 and the end of its input" test "$(tail -n 1 "$T/zenity.in")" = 100
    check "[$L] no plain message" test ! -s "$T/err"

    rm -f "$T/zenity.args"
    touch "$T/flag"
    remove_later "$T/flag" 1
    popup -u DISPLAY PATH="$T/bin:$PATH" HOMEPORT_FLAG="$T/flag"
    expect_rc 0 "[$L] popup with zenity but no display"
    check "[$L] zenity not used" test ! -e "$T/zenity.args"
    contains "$T/err" "please wait" "[$L] the plain message"

    touch "$T/flag"
    popup DISPLAY=:99 PATH="$T/bin:$PATH" HOMEPORT_FLAG="$T/flag" HOMEPORT_POPUP_TIMEOUT=2
    check "[$L] zenity popup: gives up too (exit $rc)" test "$rc" -ne 0
    check "[$L] after 2 s ($dt ms)" test "$dt" -ge 1500 -a "$dt" -lt 6000
    rm -f "$T/flag"

    touch "$T/flag"
    remove_later "$T/flag" 2
    popup DISPLAY=:99 PATH="$T/xbin:$PATH" HOMEPORT_FLAG="$T/flag"
    expect_rc 0 "[$L] popup with xmessage (no zenity)"
    check "[$L] xmessage showed the text" grep -qx "Synchronising your profile…" "$T/xmessage.args"
    check "[$L] and was closed with the flag" bash -c "! kill -0 $(cat "$T/xmessage.pid") 2> /dev/null"

    # the Xsession.d snippet: sourced with set -e, must return at once
    touch "$T/flag"
    rc=0
    t0=$(ms)
    HOMEPORT_SYNC_POPUP=$POPUP HOMEPORT_FLAG=$T/flag HOMEPORT_POPUP_TIMEOUT=5 DISPLAY='' \
        timeout 10 "${SH[@]}" -ec ". '$SNIPPET'; echo after the snippet" > "$T/out" 2> "$T/err" || rc=$?
    dt=$(($(ms) - t0))
    expect_rc 0 "[$L] Xsession.d snippet sourced under set -e"
    check "[$L] the session goes on ($dt ms)" test "$dt" -lt 1000 -a "$(cat "$T/out")" = "after the snippet"
    check "[$L] the popup runs in the background" wait_for grep -q "please wait" "$T/err"
    rm -f "$T/flag"
    rc=0
    HOMEPORT_SYNC_POPUP=$T/no/popup timeout 10 "${SH[@]}" -ec ". '$SNIPPET'; echo after the snippet" > "$T/out" 2>&1 || rc=$?
    expect_rc 0 "[$L] snippet without the popup installed"
    check "[$L] says nothing, the session goes on" test "$(cat "$T/out")" = "after the snippet"
}
SH=(busybox sh)
popup_suite busybox
if command -v dash > /dev/null; then
    SH=(dash)
    popup_suite dash
else
    skip "the popup under dash" "dash is not installed"
fi

# --- the sync exclude lists ------------------------------------------------------
for f in "$TOP/configs/sync-exclude" "$TOP/configs/sync-exclude.local.example"; do
    n=$(basename "$f")
    check "$n: exists" test -s "$f"
    lacks "$f" "[[:space:]]$" "$n: no trailing spaces"
    lacks "$f" "^[[:space:]]+[^[:space:]]" "$n: no leading spaces"
    lacks "$f" $'\r|\t' "$n: no CR or tab"
    check "$n: has patterns" test "$(grep -cvE '^(#|$)' "$f")" -gt 5
    lacks "$f" "^[^#].*\*\*\*" "$n: no '***'"
done
for p in "/.local/share/Trash/" "/.cache/" "/.cache/thumbnails/" "/.thumbnails/" "/.mozilla/firefox/*/cache2/" \
    "/.config/chromium/*/Cache/" "/.config/google-chrome/*/Cache/" "/.xsession-errors*" "/.ICEauthority" \
    "/.Xauthority" "/.mozilla/firefox/*/lock" "/.mozilla/firefox/*/.parentlock" "/.gvfs" "/.dbus/"; do
    check "sync-exclude: $p" grep -qxF -- "$p" "$TOP/configs/sync-exclude"
done
contains "$TOP/configs/sync-exclude.local.example" "REPLACES" "the example says the local file replaces the default list"

done_testing
