#!/usr/bin/env bash
# A home over the kernel nbd path, in a VM (the host kernel has no nbd.ko):
# homeport mount with attach = kernel hands a negotiated socket to nbd.ko
# over netlink; the guest writes; the host kills the server process in the
# middle and the worker reconnects (NBD_CMD_RECONFIGURE); umount
# disconnects; then the agent and `homeport pam` (account on a warm
# connection handed to nbd.ko, open_session, close_session); the host reads
# the guest's files back from the image; last, the server goes away for
# good: after dead_timeout I/O fails cleanly, status says so, the home still
# unmounts.  Then the same (without the reconnect, the agent and the server
# going away) through the old ioctl interface.  Last, the netlink run again
# against a server that requires TLS (PSK): nbd.ko gets the worker's relay,
# and the reconnect hands it a new one.  Each run lists how every guest
# connection's server ended; after a failure, their stderr and qemu's too.
. "$(dirname "$0")/../lib.sh"
if ! file -L "$HOMEPORT" | grep -q 'statically linked'; then
    echo "ok 1 - kernel nbd home in a VM # SKIP the guest runs only the static binary: covered by the static run"
    echo "1..1"
    exit 0
fi
enter_namespace "$@"
setup_root
OUT=${HP_VM_OUT:-$TOP/build/vm}
mkdir -p "$T/srv"
cat >> "$CONF" <<C
[server]
image_dir = $T/srv
C
rc=0
bash "$TOP/tests/vm/build-image.sh" "$OUT" "$HOMEPORT" > "$T/build.log" 2>&1 || rc=$?
if [ "$rc" = 0 ]; then ok "VM image built"; else not_ok "VM image built (exit $rc)"; tail -20 "$T/build.log" | sed 's/^/#   /'; fi

# server_report LABEL DIR QEMU_STDERR FULL: how each guest connection's
# server ended (run-vm.sh's guestfwd log in DIR, one file a connection,
# named in the order they started), one line each; with FULL=1 (something
# failed) the servers' stderr and qemu's in full.  A server that went away under the guest ("server
# disconnected unexpectedly") shows there as an exit status, a signal, its
# last words, or a log with no end line.
server_report() {
    local label=$1 dir=$2 qerr=$3 full=$4 f i end=' pid [0-9]+ (exit [0-9]+|killed by signal .*)$'
    # qemu has exited, so every server gets EOF; the last may still be
    # writing its end line (bounded)
    for i in $(seq 50); do
        grep -L -E -- "$end" "$dir"/guestfwd.*.log 2> /dev/null | grep -q . || break
        sleep 0.1
    done
    for f in "$dir"/guestfwd.*.log; do
        [ -e "$f" ] || { diag "[$label] no guestfwd connection logged"; break; }
        grep -E -- "$end" "$f" | sed "s/^/# [$label] server: /" | grep . ||
            diag "[$label] server: no end line in ${f##*/}: $(tail -n1 "$f")"
    done
    [ "$full" = 1 ] || return 0
    for f in "$dir"/guestfwd.*.log; do
        [ -e "$f" ] || continue
        diag "[$label] ${f##*/}:"
        sed 's/^/#   /' "$f"
    done
    if [ -s "$qerr" ]; then diag "[$label] qemu's stderr:"; sed 's/^/#   /' "$qerr"; else diag "[$label] qemu's stderr: empty"; fi
}

# run_guest API [tls]: one VM run with kernel_api = API against a fresh
# image; with tls, the server requires TLS (PSK) and the kernel is given
# the worker's relay (agent/relay.h), reconnects included.
run_guest() {
    local api=$1 img=$T/srv/alice label=$1${2:++$2} fwd= failed0=$_tap_failed
    # each guest connection's server: its stderr and how it ended; and
    # qemu's stderr (libslirp says there when it cannot start one)
    local fwdlog=$T/guestfwd-$label qerr=$T/qemu-$label.stderr
    rm -rf "$img" "$fwdlog" "$qerr"
    hp mkhome alice --uid 1001 --gid 1001 --no-skel --size 64M
    expect_rc 0 "[$label] image for alice"
    { echo "API=$api"; [ "${2:-}" = tls ] && echo "TLS=1"; cat "$TOP/tests/vm/home-kernel-guest.sh"; } > "$T/guest-$label.sh"
    if [ "${2:-}" = tls ]; then
        mkdir -p "$T/extra/etc/homeport"
        echo "thin01:$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" > "$T/extra/etc/homeport/psk"
        chmod 600 "$T/extra/etc/homeport/psk"
        fwd="nbdkit -s --tls=require --tls-psk=$T/extra/etc/homeport/psk file $img"
    fi
    local api_shown=$api
    api=$label
    # emptied here, not by the background job's redirection: the loops
    # below must not find the previous run's markers (HOMEPORT-READY-FOR-KILL)
    : > "$T/vm.log"
    HP_VM_GUESTFWD_CMD=$fwd HP_VM_EXTRA_DIR=${fwd:+$T/extra} HP_VM_TIMEOUT=200 \
        HP_VM_GUESTFWD_LOG=$fwdlog HP_VM_QEMU_STDERR=$qerr \
        bash "$TOP/tests/vm/run-vm.sh" "$OUT" "$T/guest-$label.sh" "$img" >> "$T/vm.log" 2>&1 &
    local vm=$!
    track "$vm"
    # netlink: kill the guest's server process when it says so (bounded)
    local killed=no
    for i in $(seq 1500); do
        if grep -q HOMEPORT-READY-FOR-KILL "$T/vm.log"; then
            # only nbdkit processes (qemu's command line names the image too)
            for p in $(pgrep -x nbdkit); do
                grep -qF "$img" "/proc/$p/cmdline" 2> /dev/null && kill -9 "$p" && killed=yes
            done
            break
        fi
        kill -0 "$vm" 2> /dev/null || break
        sleep 0.1
    done
    # netlink: the server goes away for good when the guest says so (the
    # image hidden, so no reconnect can succeed), and comes back after
    if [ "$api_shown" = netlink ]; then
        for i in $(seq 1500); do
            if grep -q HOMEPORT-READY-FOR-DEATH "$T/vm.log"; then
                mv "$img" "$img.away"
                for p in $(pgrep -x nbdkit); do
                    grep -qF "$img" "/proc/$p/cmdline" 2> /dev/null && kill -9 "$p"
                done
                break
            fi
            kill -0 "$vm" 2> /dev/null || break
            sleep 0.1
        done
        for i in $(seq 1500); do
            grep -q HOMEPORT-DEATH-DONE "$T/vm.log" && break
            kill -0 "$vm" 2> /dev/null || break
            sleep 0.1
        done
        [ -e "$img.away" ] && mv "$img.away" "$img"
    fi
    wait "$vm"
    local vmrc=$?
    [ "$api_shown" = netlink ] && check "[$api] the host killed the server mid-session" test "$killed" = yes
    while read -r _ name result detail; do
        if [ "$result" = ok ]; then ok "[$api] guest: $name: $detail"; else not_ok "[$api] guest: $name: $detail"; fi
    done < <(grep '^VMHOME ' "$T/vm.log" | tr -d '\r')
    check "[$api] guest checks ran (exit $vmrc)" test "$vmrc" = 0
    grep -E 'VMHOME-TIME|ready at' "$T/vm.log" | sed "s/^/# [$api] /"
    [ "$vmrc" = 0 ] || sed 's/^/#   vm: /' "$T/vm.log" | tail -40
    check "[$api] image clean after the VM's umount" e2fsck -fn "$img"
    check "[$api] hello.txt read back on the host" test "$(debugfs -R 'cat /hello.txt' "$img" 2> /dev/null)" = "written in the guest"
    check "[$api] after.txt read back" test "$(debugfs -R 'cat /after.txt' "$img" 2> /dev/null)" = "after the reconnect"
    [ "$api_shown" = netlink ] && check "[$api] pam.txt (written in the PAM session) read back" test "$(debugfs -R 'cat /pam.txt' "$img" 2> /dev/null)" = "written through PAM"
    debugfs -R "dump /big $T/big" "$img" > /dev/null 2>&1
    local want
    want=$(sed -n 's/^VMHOME-SUM \([0-9a-f]*\).*/\1/p' "$T/vm.log" | head -1)
    check "[$api] the 4 MiB file's checksum matches the guest's" test -n "$want" -a "$(sha256sum "$T/big" | cut -d' ' -f1)" = "$want"
    rm -f "$T/big"
    server_report "$api" "$fwdlog" "$qerr" "$([ "$_tap_failed" -gt "$failed0" ] && echo 1 || echo 0)"
}
run_guest netlink
run_guest ioctl
run_guest netlink tls
done_testing
