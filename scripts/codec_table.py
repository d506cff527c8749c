#!/usr/bin/env python3
"""Prints xsite_allreduce_perf -J files of one size under different --codec side by side:
time, effective bandwidth (nccl-tests' algbw: uncompressed bytes over time), the speed-up over
the first file's codec, the cross-site bytes each rank put on the wire per call, and the ratio.

  codec_table.py none.json bf16.json int8.json int4.json
"""
import json
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    rows = []
    for path in sys.argv[1:]:
        with open(path) as f:
            doc = json.load(f)
        for r in doc["results"]:
            rows.append((doc, r))
    doc0, first = rows[0]
    print(f"# hierarchical all-reduce, {first['type']} {first['redop']}, {first['size']} bytes, "
          f"{doc0['nranks']} ranks ({doc0['topology']}); out-of-place")
    print(f"# {'codec':>6} {'time (ms)':>10} {'eff. GB/s':>10} {'vs ' + first['codec']:>9} "
          f"{'wire MB/rank':>13} {'ratio':>6} {'#wrong':>7}")
    base = first["out_of_place"]["algbw"]
    wrong = 0
    for _, r in rows:
        o = r["out_of_place"]
        w = max(0, o["wrong"]) + max(0, r["in_place"]["wrong"])
        wrong += w
        print(f"  {r['codec']:>6} {o['time_us'] / 1000:>10.1f} {o['algbw']:>10.3f} "
              f"{o['algbw'] / base:>8.2f}x {r['wire_bytes'] / 1e6:>13.2f} {r['ratio']:>6.2f} {w:>7}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
