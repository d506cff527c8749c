#!/usr/bin/env python3
"""Measures xsite-wanrelay alone: starts it with a static forward to a local server and reports
the round-trip time of tiny request/responses and the goodput of a bulk transfer through it.

Usage: relay_probe.py RELAY rtt|rate|loss [relay flags...]
Prints one line: "rtt min=.. median=.. max=.. ms" or "rate ... Mbit/s" (goodput of the payload)."""
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

relay, what, flags = sys.argv[1], sys.argv[2], sys.argv[3:]

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4)
dest = "127.0.0.1:%d" % srv.getsockname()[1]
rfd, wfd = os.pipe()
p = subprocess.Popen([relay, "--forward", "127.0.0.1:0=" + dest, "--ready-fd", str(wfd)] + flags,
                     pass_fds=(wfd,))
os.close(wfd)
ready = os.read(rfd, 256).decode().split()
assert ready and ready[0] == "ready", ready
host, port = ready[-1].rsplit(":", 1)
relay_addr = (host, int(port))


def echo_server():
    c, _ = srv.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.close()


def sink_server(result):
    c, _ = srv.accept()
    n = 0
    t0 = None
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        if t0 is None:
            t0 = time.monotonic()
        n += len(d)
    result.append((n, time.monotonic() - t0))
    c.sendall(b"x")
    c.close()


try:
    if what == "rtt":
        threading.Thread(target=echo_server, daemon=True).start()
        c = socket.create_connection(relay_addr)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rtts = []
        for i in range(30):
            t0 = time.monotonic()
            c.sendall(b"ping%04d" % i)
            got = b""
            while len(got) < 8:
                got += c.recv(64)
            rtts.append((time.monotonic() - t0) * 1e3)
            time.sleep(0.005)
        c.close()
        rtts = rtts[3:]  # the first ones include the relay's connect to the server
        print("rtt min=%.3f median=%.3f max=%.3f ms" % (min(rtts), statistics.median(rtts), max(rtts)))
    else:
        secs = float(os.environ.get("PROBE_SECS", "3"))
        result = []
        th = threading.Thread(target=sink_server, args=(result,), daemon=True)
        th.start()
        c = socket.create_connection(relay_addr)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        buf = b"\0" * (1 << 20)
        t0 = time.monotonic()
        while time.monotonic() - t0 < secs:
            c.sendall(buf)
        c.shutdown(socket.SHUT_WR)
        c.recv(1)  # the sink has counted everything
        th.join()
        n, dt = result[0]
        print("rate %.1f Mbit/s (%d bytes in %.2f s)" % (n * 8 / dt / 1e6, n, dt))
finally:
    p.terminate()
    p.wait()
