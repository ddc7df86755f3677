#!/usr/bin/env python3
"""A captive NBD server that closes connections idle in the options phase.

idle-close-proxy.py LISTEN_PORT BACKEND_SOCKET LIMIT_S KEEP_FILE ACCEPT_LOG

Listens on 127.0.0.1:LISTEN_PORT and relays each connection to the NBD
server on the unix socket BACKEND_SOCKET (nbdkit).  Like qemu's NBD server,
it closes a connection whose client has sent no option within LIMIT_S
seconds of the accept (the client has sent at most its 4 flag bytes),
unless KEEP_FILE exists.  Each accept is logged to ACCEPT_LOG as
"accept MONOTONIC_SECONDS", each close for idleness as "idle-close ...".
"""
import socket
import sys
import threading
import time
import os

port, backend, limit, keep, logpath = (int(sys.argv[1]), sys.argv[2], float(sys.argv[3]),
                                        sys.argv[4], sys.argv[5])
log_lock = threading.Lock()


def log(what):
    with log_lock, open(logpath, "a") as f:
        f.write("%s %.3f\n" % (what, time.monotonic()))


def pump(src, dst, counter):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            if counter is not None:
                counter[0] += len(b)
            dst.sendall(b)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(c):
    b = socket.socket(socket.AF_UNIX)
    try:
        b.connect(backend)
    except OSError:
        c.close()
        return
    sent = [0]
    threading.Thread(target=pump, args=(c, b, sent), daemon=True).start()
    threading.Thread(target=pump, args=(b, c, None), daemon=True).start()
    time.sleep(limit)
    if sent[0] <= 4 and not os.path.exists(keep):
        log("idle-close")
        for s in (c, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(128)
while True:
    conn, _ = ls.accept()
    log("accept")
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
