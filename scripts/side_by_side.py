#!/usr/bin/env python3
"""Prints two xsite_*_perf -J result files side by side: out-of-place time per size."""
import json
import sys


def load(path):
    with open(path) as f:
        doc = json.load(f)
    return doc, {r["size"]: r for r in doc["results"]}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: side_by_side.py ring.json hier.json")
    (doc_a, a), (_, b) = load(sys.argv[1]), load(sys.argv[2])
    name_a, name_b = next(iter(a.values()))["algo"], next(iter(b.values()))["algo"]
    print(f"# all-reduce, float sum, {doc_a['nranks']} ranks: {doc_a['topology']}")
    print(f"# {'size (B)':>12} {name_a + ' (us)':>14} {name_b + ' (us)':>14} {'speedup':>9} {'#wrong':>7}")
    for size in sorted(a):
        if size not in b:
            continue
        ta, tb = a[size]["out_of_place"]["time_us"], b[size]["out_of_place"]["time_us"]
        wrong = sum(max(0, r[k]["wrong"]) for r in (a[size], b[size]) for k in ("out_of_place", "in_place"))
        print(f"  {size:>12} {ta:>14.1f} {tb:>14.1f} {ta / tb:>8.2f}x {wrong:>7}")


if __name__ == "__main__":
    main()
