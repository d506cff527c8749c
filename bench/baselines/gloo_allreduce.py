#!/usr/bin/python3
"""Gloo baseline for bench/compare.sh: torch.distributed all_reduce (sum) of
float32 with the gloo backend, one process per rank, started by tools/xsite-run.

Usage: /usr/bin/python3 gloo_allreduce.py [BYTES [ITERS [WARMUP]]]  (K/M/G suffixes)
Reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (init_method env://) and pins
Gloo to XSITE_IFNAME through GLOO_SOCKET_IFNAME. Rank 0 prints one line:
  RESULT impl=gloo bytes=B ranks=N iters=I avg_us=T min_us=T max_us=T wrong=W
where a per-iteration time is the slowest rank's time. Exit 1 on a wrong result.
Needs Debian's python3-torch, so run it with /usr/bin/python3.
"""
import os
import sys
import time

if os.environ.get("XSITE_IFNAME"):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", os.environ["XSITE_IFNAME"])

import torch
import torch.distributed as dist


def parse_size(s):
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(s[-1:].lower(), 1)
    return int(float(s[:-1] if mult != 1 else s) * mult)


def main(argv):
    nbytes = parse_size(argv[1]) if len(argv) > 1 else 64 << 20
    iters = int(argv[2]) if len(argv) > 2 else 10
    warmup = int(argv[3]) if len(argv) > 3 else 2
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="env://")
    rank, size = dist.get_rank(), dist.get_world_size()
    count = nbytes // 4
    # rank r contributes (r+1) + (i % 7): exact sums in float32 for small N.
    pattern = (torch.arange(count, dtype=torch.int64) % 7).to(torch.float32)
    send = pattern + float(rank + 1)
    buf = torch.empty_like(send)

    for _ in range(warmup):
        buf.copy_(send)
        dist.all_reduce(buf)
    times = []
    for _ in range(iters):
        buf.copy_(send)
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(buf)
        dt = torch.tensor([time.perf_counter() - t0], dtype=torch.float64)
        dist.all_reduce(dt, op=dist.ReduceOp.MAX)
        times.append(dt.item())

    expect = pattern * float(size) + float(size * (size + 1) // 2)
    wrong = torch.tensor([int((buf != expect).sum().item())], dtype=torch.int64)
    dist.all_reduce(wrong)
    if rank == 0:
        print("RESULT impl=gloo bytes=%d ranks=%d iters=%d avg_us=%.1f min_us=%.1f max_us=%.1f wrong=%d"
              % (count * 4, size, iters, sum(times) / iters * 1e6, min(times) * 1e6,
                 max(times) * 1e6, wrong.item()), flush=True)
    dist.destroy_process_group()
    return 0 if wrong.item() == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
