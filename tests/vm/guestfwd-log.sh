#!/bin/sh
# guestfwd-log.sh DIR COMMAND [ARG...]
#
# run-vm.sh puts this in front of the guestfwd command when HP_VM_GUESTFWD_LOG
# is set.  qemu (libslirp) starts the command once per guest connection with
# stdin, stdout and stderr all on the connection's socket, and nobody waits
# for it: when a server goes away, nothing tells whether it exited, with
# what, or was killed.  Here COMMAND keeps stdin and stdout (the NBD stream)
# while its stderr, its pid and how it ended are appended to
# DIR/guestfwd.<start time>.<pid of this script>.log, one file a connection
# (by name in the order they started).
#
# Nothing but COMMAND may write to stdout or stderr here: both are the
# guest's connection.
log=$1/guestfwd.$(date +%H%M%S.%N).$$.log
shift
exec 2>> "$log"
# The stdin of an asynchronous command in a non-interactive sh is
# /dev/null, and that before its own redirections (a plain <&0 would copy
# /dev/null): the connection goes round through fd 3.
exec 3<&0
"$@" <&3 3<&- &
pid=$!
exec 3<&-
now() { date +%H:%M:%S.%N; }
echo "$(now) $1 pid $pid started" >&2
wait "$pid"
rc=$?
# sh reports a command ended by signal S as 128 + S
if [ "$rc" -gt 128 ]; then
    echo "$(now) $1 pid $pid killed by signal $((rc - 128)) ($(kill -l "$((rc - 128))"))" >&2
else
    echo "$(now) $1 pid $pid exit $rc" >&2
fi
