#!/usr/bin/env python3
"""bench/delay-proxy.py: a TCP proxy that delays every chunk by DELAY
seconds in each direction, keeping the order of the bytes: a link with a
round-trip time of 2 * DELAY, for a kernel without sch_netem (tc netem).

  delay-proxy.py DELAY LISTEN_ADDR LISTEN_PORT TARGET_PORT [ECHO_PORT]

Connections to LISTEN_ADDR:LISTEN_PORT are forwarded to 127.0.0.1:TARGET_PORT.
With ECHO_PORT, LISTEN_PORT + 1 is forwarded the same way to an echo server
on 127.0.0.1:ECHO_PORT (started here), to measure the round trip the proxy
gives: `delay-proxy.py rtt ADDR PORT N` prints the median of N one-byte
round trips through it, in ms.

One thread a direction of a connection reads chunks and queues each with
its due time; another writes each when it is due (time.sleep: about 0.1 ms
late at worst on an idle machine; an asyncio loop's timers round up to
1 ms).  Prints "ready" once listening.
"""
import queue
import socket
import statistics
import sys
import threading
import time


def pump(src, dst, delay):
    q = queue.SimpleQueue()

    def reader():
        while True:
            try:
                data = src.recv(262144)
            except OSError:
                data = b""
            q.put((time.monotonic() + delay, data))
            if not data:
                return

    def writer():
        while True:
            due, data = q.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    for f in (reader, writer):
        threading.Thread(target=f, daemon=True).start()


def serve(addr, port, target, delay):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(64)

    def loop():
        while True:
            c, _ = ls.accept()
            t = socket.create_connection(("127.0.0.1", target))
            for s in (c, t):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pump(c, t, delay)
            pump(t, c, delay)

    threading.Thread(target=loop, daemon=True).start()


def echo(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(8)

    def one(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)

    def loop():
        while True:
            c, _ = ls.accept()
            threading.Thread(target=one, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def rtt(addr, port, n):
    s = socket.create_connection((addr, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    v = []
    for _ in range(n):
        t = time.monotonic()
        s.sendall(b"x")
        if s.recv(1) != b"x":
            sys.exit("delay-proxy: the echo did not answer")
        v.append((time.monotonic() - t) * 1000)
    print("%.3f" % statistics.median(v))


def main(a):
    if a[0] == "rtt":
        rtt(a[1], int(a[2]), int(a[3]))
        return
    delay, addr, port, target = float(a[0]), a[1], int(a[2]), int(a[3])
    serve(addr, port, target, delay)
    if len(a) > 4:
        echo(int(a[4]))
        serve(addr, port + 1, int(a[4]), delay)
    print("ready", flush=True)
    threading.Event().wait()


main(sys.argv[1:])
