"""Data-parallel training of a small MLP with torch.distributed, unchanged but for the backend.

    xsite-run --preset thin -- /usr/bin/python3 examples/ddp_train.py --backend xsite --codec int8

A 3-layer MLP (1024 -> 2048 -> 2048 -> 10, 6.3 M parameters, 25 MB of float32 gradients per
step) learns a synthetic classification task: a fixed random "teacher" MLP labels Gaussian
inputs. Every rank draws its own batches (seeded by step and rank); the model starts from the
same seed everywhere. Plain DistributedDataParallel: with --backend gloo or xsite its default
all-reduce, with --codec the xsite hook that compresses the cross-site stage with error feedback
per bucket (xsite.hooks.compressed_allreduce). Rank 0 writes one JSON line per step (the mean
loss over every rank's batch, the step's time) and a last line with the loss on a fixed evaluation set.
"""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP


def mlp(inputs, hidden, classes):
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


def batch(teacher, step, rank, size, inputs, salt=0):
    g = torch.Generator().manual_seed(1_000_003 * step + 7919 * rank + salt)
    x = torch.randn(size, inputs, generator=g)
    with torch.no_grad():
        y = teacher(x).argmax(dim=1)
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="xsite", choices=["xsite", "gloo"])
    ap.add_argument("--codec", default="none", help="xsite's cross-site codec through the DDP hook")
    ap.add_argument("--algorithm", default="hier", help="xsite's all-reduce: auto, ring, hier, latency")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16, help="per rank")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="", help="rank 0 appends its JSON lines here (default: stdout)")
    args = ap.parse_args()

    torch.set_num_threads(1)  # several ranks share this machine's cores
    if args.backend == "xsite":
        import xsite
        xsite.set_group_options(algorithm=args.algorithm)
    dist.init_process_group(args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()

    torch.manual_seed(1234)
    teacher = mlp(1024, 256, 10)
    torch.manual_seed(args.seed)
    model = DDP(mlp(1024, args.hidden, 10))
    if args.codec != "none":
        if args.backend != "xsite":
            raise SystemExit("--codec needs --backend xsite")
        model.register_comm_hook(None, xsite.hooks.compressed_allreduce(codec=args.codec))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    out = open(args.out, "a") if args.out and rank == 0 else None

    def emit(record):
        if rank != 0:
            return
        line = json.dumps(record)
        if out:
            out.write(line + "\n")
            out.flush()
        else:
            print(line, flush=True)

    config = "%s%s" % (args.backend, "" if args.codec == "none" else "+" + args.codec)
    for step in range(args.steps):
        x, y = batch(teacher, step, rank, args.batch, 1024)
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()  # DDP all-reduces the gradients here
        opt.step()
        seconds = time.perf_counter() - t0
        # The mean loss over every rank's batch (outside the timed step): a smoother curve.
        mean = loss.detach().reshape(1).clone()
        dist.all_reduce(mean)
        emit({"config": config, "step": step, "loss": mean.item() / world, "seconds": seconds})
    # The models are the same on every rank: rank 0 evaluates on a fixed set.
    x, y = batch(teacher, 10**6, 0, 2048, 1024, salt=17)
    with torch.no_grad():
        final = loss_fn(model.module(x), y).item()
    record = {"config": config, "final_eval_loss": final, "world": world,
              "parameters": sum(p.numel() for p in model.parameters())}
    if args.backend == "xsite":
        raw, wire = xsite.wan_stats()
        record.update(wan_raw_bytes_rank0=raw, wan_wire_bytes_rank0=wire)
    emit(record)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
