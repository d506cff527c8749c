#!/usr/bin/env python3
"""Measures xsite-wanrelay alone: starts it with a static forward to a local server and reports
the round-trip time of tiny request/responses and the goodput of a bulk transfer through it.
"gateway" checks its store gateway instead, against a stand-in store: a connection announcing a
message past the store's limit (from the rank or from the store) is dropped, and the relay keeps
serving the others.

Usage: relay_probe.py RELAY rtt|rate|gateway [relay flags...]
Prints one line: "rtt min=.. median=.. max=.. ms", "rate ... Mbit/s" (goodput of the payload) or
"gateway ok ..." (exit 1 and "gateway FAILED: ..." otherwise)."""
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

relay, what, flags = sys.argv[1], sys.argv[2], sys.argv[3:]

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4)
dest = "127.0.0.1:%d" % srv.getsockname()[1]
store = socket.socket()
store.bind(("127.0.0.1", 0))
store.listen(16)
if what == "gateway":
    flags += ["--site-ip", "0=127.0.0.1", "--site-ip", "1=127.0.0.2",
              "--store", "127.0.0.1:%d" % store.getsockname()[1]]


def limit_memory():  # a relay that runs away fails here instead of taking the machine's memory
    # (not under ASan, whose shadow memory alone reserves terabytes of address space; ASan then
    # reports a runaway allocation itself)
    if what == "gateway" and "ASAN_OPTIONS" not in os.environ:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


rfd, wfd = os.pipe()
p = subprocess.Popen([relay, "--forward", "127.0.0.1:0=" + dest, "--ready-fd", str(wfd)] + flags,
                     pass_fds=(wfd,), preexec_fn=limit_memory,
                     stderr=subprocess.PIPE if what == "gateway" else None)
os.close(wfd)
ready = os.read(rfd, 256).decode().split()
assert ready and ready[0] == "ready", ready
host, port = ready[-1].rsplit(":", 1)
relay_addr = (host, int(port))


# The store's framing: [u32 length][payload]; a set is [1][u32 len][key][u32 len][value].
HUGE = 0xFFFFFFFC  # 4 + this wraps to 0 in 32 bits


def frame(payload):
    return struct.pack("<I", len(payload)) + payload


def set_request(key, value=b"v"):
    return frame(b"\x01" + struct.pack("<I", len(key)) + key + struct.pack("<I", len(value)) + value)


# The job-secret handshake that opens every store connection (src/bootstrap/auth.h): the store's
# challenge (magic "XSA1", version, nonce), the client's response, the store's proof. The gateway
# passes it on untouched; the stand-in store does not check it.
CHALLENGE = struct.pack("<II", 0x58534131, 1) + b"n" * 16
RESPONSE_BYTES, PROOF_BYTES = 48, 32


def recv_exact(c, n):
    got = b""
    while len(got) < n:
        d = c.recv(n - len(got))
        if not d:
            raise RuntimeError("closed during the handshake")
        got += d
    return got


def stand_in_store():
    """Answers every request [0] (a set's OK); a set of the key b"evil" with a huge length."""
    def serve(c):
        c.sendall(CHALLENGE)
        recv_exact(c, RESPONSE_BYTES)
        c.sendall(b"p" * PROOF_BYTES)
        buf = b""
        while True:
            d = c.recv(65536)
            if not d:
                break
            buf += d
            while len(buf) >= 4 and len(buf) >= 4 + struct.unpack_from("<I", buf)[0]:
                n = struct.unpack_from("<I", buf)[0]
                msg, buf = buf[4:4 + n], buf[4 + n:]
                c.sendall(struct.pack("<I", HUGE) if b"evil" in msg else frame(b"\x00"))
        c.close()
    while True:
        c, _ = store.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def gateway_client(port):
    c = socket.create_connection(("127.0.0.1", port), timeout=2)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if recv_exact(c, len(CHALLENGE)) != CHALLENGE:
        raise RuntimeError("the gateway changed the store's challenge")
    c.sendall(b"r" * RESPONSE_BYTES)
    recv_exact(c, PROOF_BYTES)
    return c


def round_trip(c, key):
    """A set through the gateway answered in time."""
    c.sendall(set_request(key))
    got = b""
    while len(got) < 5:
        d = c.recv(16)
        if not d:
            raise RuntimeError("the gateway closed a well-behaved connection")
        got += d
    if got != frame(b"\x00"):
        raise RuntimeError("unexpected answer %r" % got)


def closed(c):
    """True when the gateway closes `c` within 2 s (whatever it sent before)."""
    deadline = time.monotonic() + 2
    try:
        while time.monotonic() < deadline:
            if not c.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        pass
    return False


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
    if what == "gateway":
        threading.Thread(target=stand_in_store, daemon=True).start()
        port = int(next(w for w in ready if w.startswith("1=")).split("=")[1])
        t0 = time.monotonic()
        try:
            fine = gateway_client(port)
            round_trip(fine, b"before")
            # A whole message, then a length that wraps: the relay used to spin on it for ever.
            bad = gateway_client(port)
            bad.sendall(set_request(b"x") + struct.pack("<I", HUGE))
            if not closed(bad):
                raise RuntimeError("a rank's 0x%X-byte message did not close its connection" % HUGE)
            # The same length after a message answered: the connection speaks the store protocol.
            late = gateway_client(port)
            round_trip(late, b"first")
            late.sendall(struct.pack("<I", HUGE))
            if not closed(late):
                raise RuntimeError("a 0x%X-byte second message did not close its connection" % HUGE)
            round_trip(fine, b"after-rank")
            round_trip(gateway_client(port), b"new-after-rank")
            # The same from the store's side.
            evil = gateway_client(port)
            evil.sendall(set_request(b"evil"))
            if not closed(evil):
                raise RuntimeError("the store's 0x%X-byte answer did not close the connection" % HUGE)
            round_trip(fine, b"after-store")
        except (OSError, RuntimeError) as e:
            print("gateway FAILED: %s" % e)
            sys.exit(1)
        print("gateway ok: oversized messages from a rank and from the store dropped their "
              "connection, others served (%.2f s)" % (time.monotonic() - t0))
    elif what == "rtt":
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
    try:
        _, err = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # a relay stuck in a loop never sees its SIGTERM
        p.kill()
        _, err = p.communicate()
    if err is not None:
        err = err.decode(errors="replace")
        sys.stderr.write(err)
        if what == "gateway" and sys.exc_info()[0] is None and err.count("dropping a connection") != 3:
            print("gateway FAILED: no warning for each dropped connection")
            sys.exit(1)
