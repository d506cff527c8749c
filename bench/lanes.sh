#!/usr/bin/env bash
# Lanes of the hierarchical all-reduce's cross-site stage (chunks in flight over one rank pair's
# WAN streams) side by side: XSITE_WAN_LANES=auto (0) and fixed counts, on each preset, one size,
# in one run. Prints the time of each and the count auto chose.
#
# Usage: bench/lanes.sh [--presets "default transatlantic"] [--lanes "0 1 2 4 8"] [--size 64M]
#                       [--iters 5] [--perf PATH] [--sites S --domains D --ranks-per-domain L]
#
# Needs build/bin/xsite_allreduce_perf. Run as root for the emulated WAN (network namespaces).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PERF="$ROOT/build/bin/xsite_allreduce_perf"
PRESETS="default transatlantic" LANES="0 1 2 4 8" SIZE=64M ITERS=5
topo=()
usage() { sed -n '2,9s/^# \{0,1\}//p' "$0"; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --presets) PRESETS="$2"; shift 2 ;;
    --lanes) LANES="$2"; shift 2 ;;
    --size) SIZE="$2"; shift 2 ;;
    --iters) ITERS="$2"; shift 2 ;;
    --perf) PERF="$2"; shift 2 ;;
    --sites|--domains|--ranks-per-domain) topo+=("$1" "$2"); shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "lanes.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -x "$PERF" ] || { echo "lanes.sh: $PERF not built" >&2; exit 2; }
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
printf '# hierarchical all-reduce, float sum, %s, out-of-place and in-place\n' "$SIZE"
printf '%-14s %6s %12s %12s\n' preset lanes "oop (ms)" "ip (ms)"
for preset in $PRESETS; do
  for lanes in $LANES; do
    XSITE_WAN_LANES="$lanes" XSITE_DEBUG=DEBUG XSITE_DEBUG_SUBSYS=COLL \
      "$ROOT/tools/xsite-run" "${topo[@]}" --preset "$preset" --timeout 1200 -- \
      "$PERF" -b "$SIZE" -e "$SIZE" -n "$ITERS" -w 2 -c 1 -A hier > "$log" 2>&1 ||
      { echo "lanes.sh: $preset with XSITE_WAN_LANES=$lanes failed:" >&2; tail -20 "$log" >&2; exit 1; }
    chosen="$(grep -m1 -o 'cross-site stage on [0-9]* lanes' "$log" | grep -o '[0-9]*' || true)"
    label="$lanes"
    [ "$lanes" = 0 ] && label="auto=${chosen:-?}"
    # rank 0's result row: size, count, type, op, root, oop time (us) ... ip time (us) ...
    grep -E '^\[0\] +[0-9]+ +[0-9]+ +[a-z0-9]+ +[a-z]+ ' "$log" | tail -1 |
      awk -v p="$preset" -v l="$label" '{printf "%-14s %6s %12.1f %12.1f\n", p, l, $7 / 1000, $11 / 1000}'
  done
done
