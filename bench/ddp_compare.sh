#!/usr/bin/env bash
# Data-parallel training across the emulated sites (examples/ddp_train.py: a 6.3 M-parameter MLP,
# 8 ranks in 2 sites x 2 domains x 2 ranks, same seed everywhere), one configuration after the
# other on each link: torch's Gloo backend, xsite (hierarchical all-reduce, no codec), and xsite
# with int8 and int4 on the cross-site stage and error feedback per bucket (the DDP hook). Prints
# per configuration the mean step time (steps 3 on), its ratio to Gloo's, the final loss on a
# fixed evaluation set and its difference from Gloo's, and the bytes that crossed the WAN per
# step (counted by the link emulator, both directions); writes the per-step records and a PNG
# of loss and step time (bench/ddp_plot.py). Needs root (network namespaces) and a build with
# the PyTorch backend.
# Usage: bench/ddp_compare.sh [--presets "default thin"] [--steps 40] [--out DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
PRESETS="default thin" STEPS=40 OUT="$XSITE_BUILD/ddp_compare"
while [ $# -gt 0 ]; do
  case "$1" in
    --presets) PRESETS="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "ddp_compare.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "ddp_compare.sh: needs root (network namespaces)" >&2; exit 2; }
[ -f "$XSITE_BUILD/python/xsite/__init__.py" ] ||
  { echo "ddp_compare.sh: build first, with the PyTorch backend ($XSITE_BUILD/python/xsite)" >&2; exit 1; }
ensure_packages python3-matplotlib
mkdir -p "$OUT"
rm -f "$OUT"/*.jsonl "$OUT"/wan.tsv

CONFIGS=("gloo:--backend gloo" "xsite:--backend xsite" "xsite+int8:--backend xsite --codec int8"
         "xsite+int4:--backend xsite --codec int4")
for preset in $PRESETS; do
  echo "# $("$ROOT/tools/xsite-run" --preset "$preset" --print-wan)" >&2
  for c in "${CONFIGS[@]}"; do
    name="${c%%:*}" flags="${c#*:}"
    log="$OUT/$preset.$name.log"
    # shellcheck disable=SC2086
    "$ROOT/tools/xsite-run" -v --preset "$preset" --timeout 1200 -- env PYTHONPATH="$XSITE_BUILD/python" \
      /usr/bin/python3 -W ignore "$ROOT/examples/ddp_train.py" $flags --steps "$STEPS" \
      --out "$OUT/$preset.$name.jsonl" >"$log" 2>&1 ||
      { echo "ddp_compare.sh: $preset $name failed:" >&2; tail -20 "$log" >&2; exit 1; }
    # The emulator's counters (xsite-run -v): bytes it delivered, both directions.
    wan=$(sed -n 's/^xsite-wanem: .* tx [0-9]* packets \([0-9]*\) bytes.*/\1/p' "$log" |
          awk '{ s += $1 } END { printf "%.0f\n", s }')
    printf "%s\t%s\t%s\n" "$preset" "$name" "$wan" >>"$OUT/wan.tsv"
    echo "ddp_compare.sh: $preset $name done" >&2
  done
done
/usr/bin/python3 "$ROOT/bench/ddp_plot.py" "$OUT" "$STEPS"
