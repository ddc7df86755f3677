#!/usr/bin/env bash
# Exempt users pass untouched: root, a uid below min_uid, exempt_users,
# members of exempt_groups, the PAM service systemd-user; root even with a
# missing configuration.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

given "bob's home served" pam_world bob
given "the agent" start_agent

pt root acct_mgmt open_session close_session
expect_rc 0 "root passes"
lacks "$T/out" "Checking|Home of" "root: no homeport lines"
pt sysuser acct_mgmt open_session
expect_rc 0 "uid below min_uid passes"
pt listed acct_mgmt open_session
expect_rc 0 "user in exempt_users passes"
pt grouped acct_mgmt open_session
expect_rc 0 "member of an exempt group passes"
rc=0; timeout 30 pamtester -v systemd-user bob acct_mgmt open_session > "$T/out" 2>&1 || rc=$?
expect_rc 0 "PAM service systemd-user passes"
check "none of them got a home" test "$(ls "$R/homes" | grep -vc ':')" = 0
rc=0; env PAM_TYPE=account PAM_USER=root "$HOMEPORT" -c /nonexistent pam > "$T/out" 2>&1 || rc=$?
expect_rc 0 "root passes even with a missing config"
finish
