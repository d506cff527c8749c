#!/usr/bin/env python3
"""Sends a known byte stream over one TCP connection and checks every byte on arrival.

  tcp_stream.py recv PORT MBYTES        prints "received B bytes sha256 ok" (or "... MISMATCH")
                                        once MBYTES MiB arrived, and exits 1 on a mismatch
  tcp_stream.py send HOST PORT MBYTES   sends MBYTES MiB of the stream (HOST: IPv4 or IPv6)

The stream is SHA-256 in counter mode, so both ends know it without sharing a file.
"""
import hashlib
import socket
import sys
import time

BLOCK = 1 << 20


def block(i):
    seed = hashlib.sha256(b"xsite-wanem %d" % i).digest()
    return seed * (BLOCK // len(seed))


def expected_digest(mbytes):
    h = hashlib.sha256()
    for i in range(mbytes):
        h.update(block(i))
    return h.hexdigest()


def recv(port, mbytes):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)  # IPv4 too (dual stack)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(1)
    print("listening", flush=True)
    c, _ = s.accept()
    h = hashlib.sha256()
    got, want = 0, mbytes * BLOCK
    while got < want:
        data = c.recv(min(1 << 20, want - got))
        if not data:
            break
        h.update(data)
        got += len(data)
    ok = got == want and h.hexdigest() == expected_digest(mbytes)
    print("received %d bytes sha256 %s" % (got, "ok" if ok else "MISMATCH"), flush=True)
    sys.exit(0 if ok else 1)


def send(host, port, mbytes):
    t0 = time.monotonic()
    s = socket.create_connection((host, port), timeout=30)
    for i in range(mbytes):
        s.sendall(block(i))
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # the receiver's close
    print("sent %d MiB in %.2f s" % (mbytes, time.monotonic() - t0))


if __name__ == "__main__":
    if sys.argv[1] == "recv":
        recv(int(sys.argv[2]), int(sys.argv[3]))
    else:
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
