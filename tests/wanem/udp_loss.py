#!/usr/bin/env python3
"""Measures the loss rate of a path with numbered UDP datagrams.

  udp_loss.py recv PORT COUNT        prints "received R of COUNT lost_pct P" and exits
                                     1.5 s after the last datagram (or 10 s without any)
  udp_loss.py send HOST PORT COUNT PPS   sends COUNT 100-byte datagrams at about PPS per second

The receiver's socket buffer is forced large (SO_RCVBUFFORCE, root), so a busy machine does
not add receive-buffer drops to what the link loses.
"""
import socket
import struct
import sys
import time

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
PAYLOAD = 100


def recv(port, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 256 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    s.bind(("0.0.0.0", port))
    print("listening", flush=True)
    seen = bytearray(count)
    got = 0
    s.settimeout(10.0)
    while True:
        try:
            data = s.recv(2048)
        except socket.timeout:
            break
        s.settimeout(1.5)
        (seq,) = struct.unpack_from("!I", data)
        if seq < count and not seen[seq]:
            seen[seq] = 1
            got += 1
    print("received %d of %d lost_pct %.4f" % (got, count, 100.0 * (count - got) / count))


def send(host, port, count, pps):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    pad = b"x" * (PAYLOAD - 4)
    burst = 50
    t0 = time.monotonic()
    for i in range(0, count, burst):
        for seq in range(i, min(i + burst, count)):
            s.send(struct.pack("!I", seq) + pad)
        ahead = t0 + (i + burst) / pps - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    print("sent %d in %.2f s" % (count, time.monotonic() - t0))


if __name__ == "__main__":
    if sys.argv[1] == "recv":
        recv(int(sys.argv[2]), int(sys.argv[3]))
    else:
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
