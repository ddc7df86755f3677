# shellcheck shell=bash
# tests/lib-ssh.sh: a captive OpenSSH server on 127.0.0.1 for the
# roaming-profile tests (sshfs).  Sourced after tests/lib.sh, used after
# enter_namespace and setup_root:
#
#   add_users alice:2001
#   server_home alice              # remote home $T/server/alice, in passwd
#   set_password alice secret      # optional: password login
#   start_sshd alice               # alice may log in with $SSH_KEY
#   sshfs_mount alice DIR "$(sshfs_key_opts),reconnect,uid=2001,gid=2001"
#   # = timeout 20 sshfs -F $SSH_CONFIG -o ... alice@127.0.0.1: DIR
#   echo secret | sshfs_mount alice DIR "$(sshfs_password_opts),..."
#   kill_sshd [SIGNAL]; start_sshd # the server dies, comes back (same port)
#   CLEANUP_HOOK=stop_sshfs        # the EXIT trap detaches sshfs mounts
#
# Everything lives in $T/ssh: host key, the test's client key, the config,
# the log (sshd.log), the pid file, known_hosts and one authorized_keys file
# per user (authorized_keys/USER), so no real home directory is read or
# written.  sshd runs in the foreground as a tracked child: the EXIT trap
# kills it.  Users' homes and passwords live in private copies of
# /etc/passwd and /etc/shadow bind-mounted in the test's mount namespace.
#
# sshd needs its privilege separation directory /run/sshd (a compiled-in
# path).  /run is the host's: when /run/sshd is missing, an empty one
# (root, 0755, what openssh-server itself creates) is made there, and in
# every case a private tmpfs is mounted on it inside the namespace, so
# nothing the test does there reaches the host.

SSHD=${SSHD:-/usr/sbin/sshd}
SFTP_SERVER=${SFTP_SERVER:-internal-sftp}

# have_ssh: sshd, ssh-keygen, ssh and sshfs are there (else: skip the test).
have_ssh() {
    [ -x "$SSHD" ] && command -v ssh-keygen > /dev/null && command -v ssh > /dev/null &&
        command -v sshfs > /dev/null && command -v openssl > /dev/null
}

# _passwd_field USER N: field N of USER's line in /etc/passwd.
_passwd_field() {
    awk -F: -v u="$1" -v n="$2" '$1 == u { print $n; found = 1; exit } END { exit !found }' /etc/passwd
}

# _rewrite_line FILE USER FIELD VALUE: set a field of USER's line in FILE in
# place.  The file is bind-mounted over /etc/...: it must keep its inode, so
# no sed -i (which renames a new file over it).
_rewrite_line() {
    local f=$1 new
    new=$(awk -F: -v OFS=: -v u="$2" -v n="$3" -v v="$4" '$1 == u { $n = v } { print }' "$f") || return 1
    printf '%s\n' "$new" > "$f"
}

# set_home USER DIR: USER's home directory in the private /etc/passwd.
set_home() {
    [ -f "$T/passwd" ] || { echo "set_home: add_users first" >&2; return 1; }
    _passwd_field "$1" 1 > /dev/null || { echo "set_home: no user $1" >&2; return 1; }
    _rewrite_line "$T/passwd" "$1" 6 "$2"
}

# server_home USER: the user's home on the server, $T/server/USER (owned by
# the user, 0700), made the home in /etc/passwd so that sshd and its sftp
# server start there (sshfs USER@127.0.0.1: mounts it).
server_home() {
    local u=$1 uid gid
    if ! uid=$(_passwd_field "$u" 3) || ! gid=$(_passwd_field "$u" 4); then
        echo "server_home: no user $u" >&2
        return 1
    fi
    mkdir -p "$T/server"
    chmod 0755 "$T/server"
    mkdir -p "$T/server/$u"
    chown "$uid:$gid" "$T/server/$u"
    chmod 0700 "$T/server/$u"
    set_home "$u" "$T/server/$u"
}

# set_password USER PASSWORD: password login for a user of add_users (sshd
# with UsePAM no reads /etc/shadow itself): a private copy of /etc/shadow,
# bind-mounted over the real one, with a SHA-512 crypt hash; the passwd
# line says 'x'.
set_password() {
    local u=$1 pw=$2 hash day
    [ -f "$T/passwd" ] || { echo "set_password: add_users first" >&2; return 1; }
    if [ ! -f "$T/shadow" ]; then
        cp -p /etc/shadow "$T/shadow" || return 1
        mount --bind "$T/shadow" /etc/shadow || return 1
    fi
    hash=$(printf '%s\n' "$pw" | openssl passwd -6 -stdin) || return 1
    # last change: today (0 would mean "must change at next login")
    day=$(($(date +%s) / 86400))
    _rewrite_line "$T/passwd" "$u" 2 x || return 1
    if grep -q "^$u:" "$T/shadow"; then
        _rewrite_line "$T/shadow" "$u" 2 "$hash" && _rewrite_line "$T/shadow" "$u" 3 "$day"
    else
        echo "$u:$hash:$day:0:99999:7:::" >> "$T/shadow"
    fi
}

# authorize_key USER [PUBKEY_FILE]: USER may log in with the key (default:
# the test's, $SSH_KEY.pub).  The file is read by sshd as the user.
authorize_key() {
    local u=$1 pub=${2:-$SSH_KEY.pub} uid
    uid=$(_passwd_field "$u" 3) || { echo "authorize_key: no user $u" >&2; return 1; }
    mkdir -p "$T/ssh/authorized_keys"
    cat "$pub" >> "$T/ssh/authorized_keys/$u"
    chown "$uid" "$T/ssh/authorized_keys/$u"
    chmod 0600 "$T/ssh/authorized_keys/$u"
}

# _privsep_dir: a private, root-owned 0755 /run/sshd in this namespace.
_privsep_dir() {
    [ -d /run/sshd ] || mkdir -m 0755 /run/sshd || return 1
    mountpoint -q /run/sshd && [ "$(stat -c %U:%a /run/sshd)" = root:755 ] && return 0
    mount -t tmpfs -o mode=0755,uid=0,gid=0,size=64k homeport-sshd /run/sshd
}

# _sshd_listening: an SSH server greets on 127.0.0.1:$SSHD_PORT.
_sshd_listening() {
    # shellcheck disable=SC2016
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && read -r -t 2 l <&3 && [[ $l == SSH-2.0-* ]]' _ "$SSHD_PORT" 2> /dev/null
}

# start_sshd USER...: a captive sshd on 127.0.0.1 (port from free_port, or
# $SSHD_PORT when already set: a restart keeps it), logging (VERBOSE) to
# $T/ssh/sshd.log; each USER may log in with the test's key $SSH_KEY.
# Keys and config are made once; calling it again (after kill_sshd)
# restarts the same server.  Waits up to 10 s for the port.
# Sets SSHD_PID, SSHD_PORT, SSH_KEY, SSH_KNOWN_HOSTS, SSH_CONFIG.
start_sshd() {
    local d=$T/ssh u
    mkdir -p "$d/authorized_keys"
    chmod 0755 "$d" "$d/authorized_keys"
    SSH_KEY=$d/id_ed25519
    SSH_KNOWN_HOSTS=$d/known_hosts
    SSH_CONFIG=$d/ssh_config
    if [ ! -f "$d/host_ed25519" ]; then
        ssh-keygen -q -t ed25519 -N '' -C homeport-test-host -f "$d/host_ed25519" || return 1
        ssh-keygen -q -t ed25519 -N '' -C homeport-test-client -f "$SSH_KEY" || return 1
        # the client side reads no ~/.ssh/config of whoever runs the tests
        echo "# empty: tests pass every ssh option on the command line" > "$SSH_CONFIG"
    fi
    for u in "$@"; do authorize_key "$u" || return 1; done
    _privsep_dir || { echo "start_sshd: no /run/sshd" >&2; return 1; }
    SSHD_PORT=${SSHD_PORT:-$(free_port)}
    cat > "$d/sshd_config" << CONF
ListenAddress 127.0.0.1
Port $SSHD_PORT
HostKey $d/host_ed25519
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys/%u
StrictModes no
UsePAM no
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication yes
PermitEmptyPasswords no
KbdInteractiveAuthentication no
UseDNS no
LogLevel VERBOSE
MaxStartups 100
LoginGraceTime 20
ClientAliveInterval 0
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
Subsystem sftp $SFTP_SERVER
CONF
    "$SSHD" -t -f "$d/sshd_config" 2>> "$d/sshd.log" || { echo "start_sshd: bad config, see $d/sshd.log" >&2; return 1; }
    "$SSHD" -D -e -f "$d/sshd_config" -E "$d/sshd.log" &
    SSHD_PID=$!
    track "$SSHD_PID"
    if ! wait_for _sshd_listening; then
        echo "start_sshd: nothing listens on 127.0.0.1:$SSHD_PORT" >&2
        sed 's/^/  sshd.log: /' "$d/sshd.log" >&2
        return 1
    fi
    echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$d/host_ed25519.pub")" > "$SSH_KNOWN_HOSTS"
}

# _descendants PID: PID's children, grandchildren, ... (depth first).
_descendants() {
    local f c cs
    for f in /proc/"$1"/task/*/children; do
        cs=()
        read -r -a cs 2> /dev/null < "$f" || [ ${#cs[@]} -gt 0 ] || continue
        for c in "${cs[@]}"; do
            echo "$c"
            _descendants "$c"
        done
    done
}

# kill_sshd [SIGNAL]: signal (default KILL) the listener and every session
# process it forked (sshd -D forks one per connection: killing only the
# listener leaves the open connections served).
kill_sshd() {
    local sig=${1:-KILL} pids
    [ -n "${SSHD_PID:-}" ] || return 0
    pids="$SSHD_PID $(_descendants "$SSHD_PID")"
    # shellcheck disable=SC2086
    kill -s "$sig" $pids 2> /dev/null
    if [ "$sig" = KILL ]; then
        wait "$SSHD_PID" 2> /dev/null
        SSHD_PID=
    fi
    return 0
}

# ssh options for sshfs (comma-separated, for -o): the host is checked
# against $SSH_KNOWN_HOSTS only, nothing is asked, no ~/.ssh is read.
sshfs_common_opts() {
    echo "port=$SSHD_PORT,UserKnownHostsFile=$SSH_KNOWN_HOSTS,GlobalKnownHostsFile=/dev/null,StrictHostKeyChecking=yes,ConnectTimeout=5"
}
# ... logging in with a key (default: the test's)
sshfs_key_opts() {
    echo "$(sshfs_common_opts),IdentityFile=${1:-$SSH_KEY},IdentitiesOnly=yes,BatchMode=yes,PasswordAuthentication=no"
}
# ... logging in with a password on stdin (sshfs -o password_stdin)
sshfs_password_opts() {
    echo "$(sshfs_common_opts),password_stdin,PreferredAuthentications=password,PubkeyAuthentication=no"
}

# sshfs_mount USER DIR OPTIONS [SSHFS_ARGS...]: timeout 20 sshfs -o OPTIONS
# USER@127.0.0.1: DIR (the user's home on the server), with the test's
# ssh_config (stdin is passed on: password_stdin).  stdout in $T/out,
# stderr in $T/err, exit code in $rc, duration in $ms (milliseconds).
# Not -v into a pipe: with -v the ssh child keeps stderr open as long as the
# mount lives.
# shellcheck disable=SC2034 # rc and ms are for the caller
sshfs_mount() {
    local user=$1 dir=$2 opts=$3 t0
    shift 3
    mkdir -p "$dir"
    rc=0
    t0=$(date +%s%3N)
    timeout 20 sshfs -F "$SSH_CONFIG" -o "$opts" "$@" "$user@127.0.0.1:" "$dir" > "$T/out" 2> "$T/err" || rc=$?
    ms=$(($(date +%s%3N) - t0))
}

# sshfs_pid DIR: the live sshfs process(es) serving the mount point DIR.
sshfs_pid() {
    local f p a
    for f in /proc/[0-9]*/cmdline; do
        p=${f#/proc/} p=${p%/cmdline}
        mapfile -d "" a 2> /dev/null < "$f" || continue
        if [ "${#a[@]}" -lt 2 ] || [ "${a[0]##*/}" != sshfs ] || [ "${a[-1]}" != "$1" ]; then continue; fi
        [ "$(awk '{ print $3 }' "/proc/$p/stat" 2> /dev/null)" = Z ] && continue
        echo "$p"
    done
}

# sshfs_mounts: the sshfs mount points below $T, deepest first.
sshfs_mounts() {
    awk -v t="$T" '$0 ~ / - fuse\.sshfs / && index($5, t "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

# stop_sshfs: for CLEANUP_HOOK: lazily detach every sshfs mount below $T
# and stop its sshfs (which would linger while something still holds the
# detached mount, or while it waits to reconnect).
stop_sshfs() {
    local m p
    for m in $(sshfs_mounts); do
        p=$(sshfs_pid "$m")
        umount -l "$m" 2> /dev/null
        # shellcheck disable=SC2086
        [ -z "$p" ] || kill $p 2> /dev/null
    done
    return 0
}
