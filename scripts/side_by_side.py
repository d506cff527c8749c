#!/usr/bin/env python3
"""Prints xsite_*_perf -J result files side by side: out-of-place time per size, one column per
file (named after the algorithm it ran), and each column's speed-up over the first.

  side_by_side.py ring.json hier.json latency.json auto.json [more files of the same runs...]

Files with the same algorithm are merged (e.g. a small-size and a large-size sweep).
"""
import json
import sys
from collections import OrderedDict


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    columns = OrderedDict()  # label -> {size: row}
    topology = nranks = None
    for path in sys.argv[1:]:
        with open(path) as f:
            doc = json.load(f)
        topology, nranks = doc["topology"], doc["nranks"]
        for row in doc["results"]:
            label = "auto" if "auto" in path.rsplit("/", 1)[-1] else row["algo"]
            columns.setdefault(label, {})[row["size"]] = row
    labels = list(columns)
    base = labels[0]
    sizes = sorted(set().union(*[set(c) for c in columns.values()]))
    print(f"# all-reduce float sum, {nranks} ranks ({topology}); out-of-place time in us; "
          f"speed-up over {base} in ()")
    head = f"# {'size (B)':>10}" + "".join(f" {l:>18}" for l in labels)
    if "auto" in columns:
        head += "  auto ran"
    print(head)
    wrong = 0
    for size in sizes:
        line = f"  {size:>10}"
        t0 = columns[base].get(size, {}).get("out_of_place", {}).get("time_us")
        for l in labels:
            row = columns[l].get(size)
            if row is None:
                line += f" {'-':>18}"
                continue
            t = row["out_of_place"]["time_us"]
            wrong += sum(max(0, row[k]["wrong"]) for k in ("out_of_place", "in_place"))
            cell = f"{t:.0f}" if l == base or not t0 else f"{t:.0f} ({t0 / t:.2f}x)"
            line += f" {cell:>18}"
        if "auto" in columns and size in columns["auto"]:
            line += f"  {columns['auto'][size]['algo']}"
        print(line)
    print(f"# wrong elements over all rows and ranks: {wrong}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
