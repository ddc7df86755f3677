#!/usr/bin/env bash
# SIGHUP reloads the configuration: a prepared home nobody opens is
# released when its lease (renewed with the new one) is over; a bad file
# on reload is reported (file, line, key) and the running configuration
# kept.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "bob's and carol's homes served" pam_world bob carol
given "the agent" start_agent
pt bob acct_mgmt
given "bob's home prepared under a 60 s lease" test "$rc" = 0

LEASE=1s conf
kill -HUP "$AGENT"
wait_for grep -q "configuration reloaded" "$T/agent.log"
check "SIGHUP reloads" grep -q "configuration reloaded from $CONF" "$T/agent.log"
pt bob acct_mgmt # prepared earlier under the old lease: renewed with the new one
expect_rc 0 "account bob again (already prepared)"
check "lease over: bob's prepared home released" wait_for test ! -e "$R/homes/bob"
check "no stage mount left" bash -c "! grep -q ' $R/stage/' /proc/self/mountinfo"
cp "$CONF" "$T/good.conf"
echo "bogus = 1" >> "$CONF"
kill -HUP "$AGENT"
check "a bad file on reload is reported" wait_for grep -q "keeping the running configuration" "$T/agent.log"
contains "$T/agent.log" "$CONF:[0-9]+: unknown key 'bogus'" "naming file, line and key"
cp "$T/good.conf" "$CONF"
pt carol acct_mgmt open_session
expect_rc 0 "still serving with the old configuration"
finish
