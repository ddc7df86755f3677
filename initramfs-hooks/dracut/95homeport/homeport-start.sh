#!/bin/sh
# dracut pre-mount hook (sourced by dracut's init, POSIX sh: busybox or
# dash): the boot phase, then the resident agent, which returns once ready
# and serves on after switch_root until the system's "homeport agent
# --replace" takes over.  Nothing here stops the boot.  The report goes to
# /run/initramfs/homeport.log.  rd.homeport=0 skips it.
command -v info > /dev/null 2>&1 || . /lib/dracut-lib.sh

if [ -x /usr/sbin/homeport ] && getargbool 1 rd.homeport; then
    _hp_log=/run/initramfs/homeport.log
    mkdir -p /run/initramfs /run/homeport
    modprobe -q nbd || warn "homeport: cannot load nbd: kernel NBD homes will not attach"
    _hp_rc=0
    /usr/sbin/homeport boot >> "$_hp_log" 2>&1 || _hp_rc=$?
    if [ "$_hp_rc" = 0 ]; then
        info "homeport: boot phase done"
    else
        warn "homeport: boot phase exit $_hp_rc, see $_hp_log"
    fi
    _hp_rc=0
    /usr/sbin/homeport agent >> "$_hp_log" 2>&1 || _hp_rc=$?
    if [ "$_hp_rc" = 0 ]; then
        info "homeport: agent started (pid $(cat /run/homeport/agent.pid 2>/dev/null))"
    else
        warn "homeport: agent did not start (exit $_hp_rc), see $_hp_log"
    fi
    unset _hp_log _hp_rc
fi
