#!/usr/bin/env bash
# Codec throughput per core against the goals: runs xsite_codec_bench (Google Benchmark, one
# thread) and prints, per data set, each codec's encode and decode GB/s, its ratio, and both
# speeds relative to a memcpy of the same 64 MiB measured in the same run.
#   bench/codec_bench.sh [path/to/xsite_codec_bench] [extra benchmark flags...]
# Goals: bf16/fp16 encode >= 0.6x memcpy; int8/fp8/int4 encode >= 0.4x memcpy; lz4 encode
# >= 1 GB/s per core. Runs in about a minute.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../build/bin/xsite_codec_bench}
shift || true
[[ -x $bin ]] || { echo "codec_bench.sh: no benchmark binary at $bin (build xsite_codec_bench)" >&2; exit 2; }
json=$(mktemp)
trap 'rm -f "$json"' EXIT
echo "machine: $(uname -n), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
"$bin" --benchmark_filter='^(memcpy|encode|decode)/' --benchmark_min_time=0.2 \
  --benchmark_format=json "$@" >"$json"
/usr/bin/python3 - "$json" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["benchmarks"]
res = {}
for b in runs:
    if b.get("run_type") == "aggregate":
        continue
    parts = b["name"].split("/")
    kind, data = parts[0], parts[-1]
    codec = parts[1] if len(parts) == 3 else ""
    res[(kind, codec, data)] = b
goals = {"bf16": ("x", 0.6), "fp16": ("x", 0.6), "int8": ("x", 0.4), "fp8": ("x", 0.4),
         "int4": ("x", 0.4), "lz4": ("GB/s", 1.0)}
codecs = ["none", "lz4", "zstd", "bf16", "fp16", "int8", "fp8", "int4"]
datas = sorted({k[2] for k in res}, key=lambda d: ["normal", "sparse", "relu"].index(d)
               if d in ("normal", "sparse", "relu") else 9)
gbs = lambda b: b.get("bytes_per_second", 0) / 1e9
for data in datas:
    mc = res.get(("memcpy", "", data))
    if not mc:
        continue
    m = gbs(mc)
    print(f"\n{data}: memcpy {m:.2f} GB/s")
    print(f"{'codec':6} {'enc GB/s':>9} {'dec GB/s':>9} {'ratio':>7} {'enc/memcpy':>11} "
          f"{'dec/memcpy':>11}  {'goal':22} result")
    for c in codecs:
        e, d = res.get(("encode", c, data)), res.get(("decode", c, data))
        if not e or e.get("error_occurred"):
            why = (e or {}).get("error_message", "not run")
            print(f"{c:6} {'-':>9} {'-':>9} {'-':>7} {'-':>11} {'-':>11}  skipped: {why}")
            continue
        eg = gbs(e)
        dg = gbs(d) if d and not d.get("error_occurred") else float("nan")
        goal, result = "-", ""
        if c in goals:
            unit, target = goals[c]
            if unit == "x":
                goal, ok = f"encode >= {target}x memcpy", eg / m >= target
            else:
                goal, ok = f"encode >= {target} GB/s", eg >= target
            result = "PASS" if ok else "MISS"
        print(f"{c:6} {eg:9.2f} {dg:9.2f} {e.get('ratio', 0):7.2f} {eg / m:11.2f} "
              f"{dg / m:11.2f}  {goal:22} {result}")
PY
