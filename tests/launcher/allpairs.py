#!/usr/bin/env python3
"""Connectivity check run under xsite-run: every rank reaches rank 0 at
XSITE_STORE_ADDR, then every rank opens a TCP connection to every other rank.
Prints "allpairs ok rank=R peers=N" on success, exits 1 otherwise."""
import json
import os
import socket
import sys
import threading

rank = int(os.environ["XSITE_RANK"])
world = int(os.environ["XSITE_WORLD_SIZE"])
host, port = os.environ["XSITE_STORE_ADDR"].rsplit(":", 1)
port = int(port)

lsock = socket.socket()
lsock.bind(("0.0.0.0", 0))
lsock.listen(world)
myport = lsock.getsockname()[1]


def serve_peers():
    for _ in range(world - 1):
        c, _ = lsock.accept()
        c.sendall(c.recv(16))  # echo the peer's rank back
        c.close()


def recv_json(c):
    buf = b""
    while not buf.endswith(b"\n"):
        d = c.recv(65536)
        if not d:
            raise RuntimeError("store closed")
        buf += d
    return json.loads(buf)


t = threading.Thread(target=serve_peers, daemon=True)
t.start()

if rank == 0:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(world)
    table = {0: [host, myport]}
    conns = []
    for _ in range(world - 1):
        c, addr = srv.accept()
        r, p = recv_json(c)
        table[r] = [addr[0], p]
        conns.append(c)
    msg = (json.dumps(table) + "\n").encode()
    for c in conns:
        c.sendall(msg)
        c.close()
else:
    import time
    deadline = time.time() + 20
    while True:  # rank 0 may not listen yet
        try:
            c = socket.create_connection((host, port), timeout=20)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    c.sendall((json.dumps([rank, myport]) + "\n").encode())
    table = recv_json(c)
    c.close()
    table = {int(k): v for k, v in table.items()}

for r in range(world):
    if r == rank:
        continue
    ip, p = table[r]
    c = socket.create_connection((ip, p), timeout=10)
    c.sendall(b"%d" % rank)
    if c.recv(16) != b"%d" % rank:
        print("bad echo from", r)
        sys.exit(1)
    c.close()
t.join(20)
print("allpairs ok rank=%d peers=%d ip=%s" % (rank, world - 1, table[rank][0] if rank else host))
