#!/usr/bin/env bash
# Bad clients on the agent's socket: non-root connections (refused by the
# socket's mode, then by SO_PEERCRED; ping allowed), garbage, an oversized
# request, an unknown protocol version, a bad user name; the agent keeps
# serving (a login through the Arch system-login snippet).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "carol's home served" pam_world carol
given "the agent" start_agent

raw 'homeport 1 account\nuser=carol\n' 2003
expect_rc 3 "non-root cannot connect (mode 0600)"
chmod 666 "$SOCK"
raw 'homeport 1 account\nuser=carol\n' 2003
contains "$T/out" "^error 1 permission denied: only root" "non-root request refused (SO_PEERCRED)"
contains "$T/out" "^EOF$" "and the connection closed"
raw 'homeport 1 ping\n' 2003
contains "$T/out" "^ok homeport .* agent pid $AGENT, [0-9]+ warm connections ready, [0-9]+ spare workers$" "ping is allowed to anyone who can connect"
chmod 600 "$SOCK"
raw 'GET / HTTP/1.0\r\n\r\n'
contains "$T/out" "^error 71 malformed request" "garbage refused (EPROTO)"
contains "$T/out" "^EOF$" "connection closed"
raw "homeport 1 account\nuser=$(head -c 5000 /dev/zero | tr '\0' a)\n"
contains "$T/out" "^error 71 request too large" "oversized request refused"
raw 'homeport 9 account\nuser=carol\n'
contains "$T/out" "unsupported protocol version 9" "unknown version refused"
raw 'homeport 1 account\nuser=../../etc\n'
contains "$T/out" "invalid user name" "bad user name refused before any path"
check "agent still alive" kill -0 "$AGENT"
rc=0; timeout 60 pamtester -v hp-arch carol acct_mgmt open_session close_session > "$T/out" 2>&1 || rc=$?
expect_rc 0 "and still serving: carol logs in and out (the Arch system-login snippet)"
contains "$T/out" "^Home of carol unmounted$" "through all three stages"
finish
