#!/usr/bin/env bash
# The cross-site codecs side by side: the hierarchical all-reduce of one size on the emulated
# superfactory (tools/xsite-run, default 2x2x2) under each codec, in one run, and each codec's
# effective bandwidth (uncompressed bytes over time, nccl-tests' algbw) against no codec.
#
# Usage: bench/codec_compare.sh [--preset thin] [--size 64M] [--iters 5] [--warmup 2]
#                               [--codecs "none bf16 int8 int4"] [--perf PATH]
#                               [--sites S --domains D --ranks-per-domain L]
#
# Needs build/bin/xsite_allreduce_perf. Run as root for the emulated WAN (network namespaces).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PERF="$ROOT/build/bin/xsite_allreduce_perf"
# Lossless codecs are left out by default: the benchmark's inputs (small integers, so that every
# element can be checked exactly) compress far better than gradients do; bench/codec_bench.sh
# measures them on gradient-like data.
PRESET=thin SIZE=64M ITERS=5 WARMUP=2 CODECS="none bf16 fp16 int8 fp8 int4"
topo=()
usage() { sed -n '2,10s/^# \{0,1\}//p' "$0"; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) PRESET="$2"; shift 2 ;;
    --size) SIZE="$2"; shift 2 ;;
    --iters) ITERS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --codecs) CODECS="$2"; shift 2 ;;
    --perf) PERF="$2"; shift 2 ;;
    --sites|--domains|--ranks-per-domain) topo+=("$1" "$2"); shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "codec_compare.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -x "$PERF" ] || { echo "codec_compare.sh: $PERF not built" >&2; exit 2; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$ROOT/tools/xsite-run" "${topo[@]}" --preset "$PRESET" --print-wan | sed 's/^/# WAN link: /'
for codec in $CODECS; do
  "$ROOT/tools/xsite-run" "${topo[@]}" --preset "$PRESET" --timeout 1200 -- \
    "$PERF" -b "$SIZE" -e "$SIZE" -n "$ITERS" -w "$WARMUP" -c 1 -A hier --codec "$codec" \
    -J "$out/$codec.json" > "$out/$codec.log" 2>&1 ||
    { echo "codec_compare.sh: codec $codec failed:" >&2; tail -20 "$out/$codec.log" >&2; exit 1; }
done
files=()
for codec in $CODECS; do files+=("$out/$codec.json"); done
python3 "$ROOT/scripts/codec_table.py" "${files[@]}"
