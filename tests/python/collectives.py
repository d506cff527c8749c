"""Every collective of the xsite backend against torch's own Gloo backend, on the same inputs, in
one job started by xsite-run (each rank runs this file with /usr/bin/python3).

    xsite-run ... -- /usr/bin/python3 tests/python/collectives.py [check|die R|mismatch]

check: allreduce (every op, every dtype xsite reduces; integer-valued floats so that any
summation order gives the same bits, plus random floats within a tolerance), coalesced
allreduce, broadcast from every root, allgather and _allgather_base, reduce_scatter (Gloo of
torch 1.13 has none: against the sum computed locally from every rank's inputs), barrier, the
per-call options, async work and its future, and a lossy codec within its documented bound.
Prints "all matched" on rank 0. die R: rank R exits abruptly in the middle of a job of
all-reduces; every other rank must get a RuntimeError naming rank R. mismatch: rank 1 calls
all-reduce with another size; every rank must get an error saying so.
"""
import os
import sys
import time

import torch
import torch.distributed as dist

import xsite

RANK = int(os.environ["RANK"])
WORLD = int(os.environ["WORLD_SIZE"])
failures = []


def check(name, ok, detail=""):
    if not ok:
        failures.append("%s %s" % (name, detail))
        print("[rank %d] FAILED %s %s" % (RANK, name, detail), flush=True)


def inputs(seed, n, dtype, rank=None):
    g = torch.Generator().manual_seed(seed * 1000 + (RANK if rank is None else rank))
    if seed % 7 == 2:  # products: small factors, so that 8 ranks' product stays exact
        return torch.randint(-2, 3, (n,), generator=g).to(dtype)
    if dtype in (torch.int8, torch.uint8):
        return torch.randint(0, 3, (n,), generator=g).to(dtype)
    if dtype.is_floating_point:  # small integers: exact in every dtype and summation order
        return torch.randint(-4, 5, (n,), generator=g).to(dtype)
    return torch.randint(-1000, 1000, (n,), generator=g).to(dtype)


def run_check(gloo):
    dtypes = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int32,
              torch.int64, torch.int8, torch.uint8]
    ops = {"sum": dist.ReduceOp.SUM, "product": dist.ReduceOp.PRODUCT, "min": dist.ReduceOp.MIN,
           "max": dist.ReduceOp.MAX}
    seed = 0
    for dtype in dtypes:
        for opname, op in ops.items():
            for n in (1, 1000, 300001):
                seed += 1
                if opname == "product":
                    seed += (2 - seed) % 7  # inputs() gives small factors for these seeds
                    if dtype == torch.uint8:
                        continue  # negative factors
                a = inputs(seed, n, dtype)
                b = a.clone()
                dist.all_reduce(a, op=op)
                if dtype in (torch.float16, torch.bfloat16, torch.int8, torch.uint8):
                    # Gloo of torch 1.13 has no sum of these: the reference is computed here
                    ref = reference(seed, n, dtype, opname)
                else:
                    dist.all_reduce(b, op=op, group=gloo)
                    ref = b
                check("allreduce %s %s n=%d" % (dtype, opname, n), torch.equal(a, ref))
    # avg: Gloo has none; the reference is the sum divided by the world size
    seed += 1
    a = inputs(seed, 4097, torch.float32)
    dist.all_reduce(a, op=dist.ReduceOp.AVG)
    check("allreduce avg", torch.allclose(a, reference(seed, 4097, torch.float32, "sum") / WORLD))
    # random floats: the summation order differs, the values agree closely
    g = torch.Generator().manual_seed(99 + RANK)
    a = torch.randn(1 << 18, generator=g)
    b = a.clone()
    dist.all_reduce(a)
    dist.all_reduce(b, group=gloo)
    check("allreduce random float32", torch.allclose(a, b, rtol=1e-5, atol=1e-5),
          "max diff %g" % (a - b).abs().max().item())
    # coalesced
    ts = [inputs(500 + i, 100 * (i + 1), torch.float32) for i in range(4)]
    refs = [t.clone() for t in ts]
    dist.all_reduce_coalesced(ts)
    for r in refs:
        dist.all_reduce(r, group=gloo)
    check("allreduce_coalesced", all(torch.equal(x, y) for x, y in zip(ts, refs)))
    # broadcast from every root
    for root in range(WORLD):
        t = inputs(600 + root, 5000, torch.float64)
        ref = inputs(600 + root, 5000, torch.float64)
        dist.broadcast(t, src=root)
        dist.broadcast(ref, src=root, group=gloo)
        check("broadcast root=%d" % root, torch.equal(t, ref))
    # allgather, _allgather_base
    mine = inputs(700, 3333, torch.int64)
    outs = [torch.empty_like(mine) for _ in range(WORLD)]
    refs = [torch.empty_like(mine) for _ in range(WORLD)]
    dist.all_gather(outs, mine)
    dist.all_gather(refs, mine, group=gloo)
    check("allgather", all(torch.equal(x, y) for x, y in zip(outs, refs)))
    flat = torch.empty(WORLD * mine.numel(), dtype=mine.dtype)
    dist._all_gather_base(flat, mine)
    check("_allgather_base", torch.equal(flat, torch.cat(refs)))
    # reduce_scatter: the reference from every rank's inputs
    n = 2049
    ins = [inputs(800 + r, n, torch.float32) for r in range(WORLD)]
    out = torch.empty(n)
    dist.reduce_scatter(out, ins)
    ref = torch.zeros(n)
    for r in range(WORLD):  # rank r's input for this rank's block
        ref += inputs(800 + RANK, n, torch.float32, rank=r)
    check("reduce_scatter", torch.equal(out, ref))
    dist.barrier()
    # async work and its future (what DDP's comm hooks chain on)
    t = inputs(900, 10000, torch.float32)
    work = dist.all_reduce(t, async_op=True)
    fut = work.get_future().then(lambda f: f.value()[0] * 2)
    doubled = fut.wait()
    check("future", torch.equal(doubled, reference(900, 10000, torch.float32, "sum") * 2))
    # per-call options: the hierarchical schedule, and int8 with error feedback on random data
    t = inputs(1000, 1 << 16, torch.float32)
    xsite.all_reduce(t, algorithm="hier")
    check("all_reduce algorithm=hier", torch.equal(t, reference(1000, 1 << 16, torch.float32, "sum")))
    g = torch.Generator().manual_seed(1100 + RANK)
    t = torch.randn(1 << 16, generator=g)
    exact = t.clone()
    dist.all_reduce(exact, group=gloo)
    xsite.all_reduce(t, codec="int8", error_feedback=True, key="test")
    err = ((t - exact).norm() / exact.norm()).item()
    check("all_reduce codec=int8", err < 0.02, "relative error %g" % err)
    raw, wire = xsite.wan_stats()
    check("wan_stats", raw >= wire >= 0, "raw %d wire %d" % (raw, wire))


def reference(seed, n, dtype, opname):
    acc = None
    for r in range(WORLD):
        x = inputs(seed, n, dtype, rank=r)
        if acc is None:
            acc = x.clone()
        elif opname == "sum":
            acc = acc + x
        elif opname == "product":
            acc = acc * x
        elif opname == "min":
            acc = torch.minimum(acc, x)
        elif opname == "max":
            acc = torch.maximum(acc, x)
    return acc.to(dtype)


def run_die(victim):
    t = torch.ones(1 << 20)
    start = time.time()
    try:
        for i in range(1000):
            if RANK == victim and i == 20:
                os._exit(3)  # abruptly: no goodbye
            dist.all_reduce(t)
            t.fill_(1)
    except RuntimeError as e:
        msg = str(e)
        named = ("rank %d (" % victim) in msg
        print("[rank %d] error after %.1f s: %s" % (RANK, time.time() - start, msg[:300]), flush=True)
        check("dead rank named", named, msg[:300])
        return
    check("dead rank", False, "no error")


def run_mismatch():
    t = torch.ones(1000 if RANK != 1 else 999)
    try:
        dist.all_reduce(t)
    except RuntimeError as e:
        msg = str(e)
        print("[rank %d] error: %s" % (RANK, msg[:300]), flush=True)
        check("mismatch named", "count" in msg or "size" in msg, msg[:300])
        return
    check("mismatch", False, "no error")


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    dist.init_process_group("xsite")
    check("backend name", dist.get_backend() == "xsite", dist.get_backend())
    if mode == "check":
        gloo = dist.new_group(backend="gloo")
        run_check(gloo)
    elif mode == "die":
        run_die(int(sys.argv[2]))
    elif mode == "mismatch":
        run_mismatch()
    dist.destroy_process_group()  # a failed group closes at once (rank 0 waits for the others)
    if failures:
        print("[rank %d] %d FAILED" % (RANK, len(failures)), flush=True)
        sys.exit(1)
    if RANK == 0:
        print("all matched (%d ranks)" % WORLD, flush=True)


if __name__ == "__main__":
    main()
