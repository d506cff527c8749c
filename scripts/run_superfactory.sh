#!/usr/bin/env bash
# The main job: builds if needed, then runs xsite_allreduce_perf on the emulated mini
# superfactory (2 sites x 2 domains x 2 ranks, tools/xsite-run) from 1 KiB to 64 MiB, once with
# the flat ring and once hierarchical, and prints the two side by side.
# Options: --min SIZE --max SIZE --iters N (defaults 1K 64M 10); other xsite-run topology flags
# (--sites S --domains D --ranks-per-domain L) pass through.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
MIN=1K MAX=64M ITERS=10
topo=()
while [ $# -gt 0 ]; do
  case "$1" in
    --min) MIN="$2"; shift 2 ;;
    --max) MAX="$2"; shift 2 ;;
    --iters) ITERS="$2"; shift 2 ;;
    --sites|--domains|--ranks-per-domain) topo+=("$1" "$2"); shift 2 ;;
    *) echo "run_superfactory.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
ensure_build_deps
build xsite_allreduce_perf
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for algo in ring hier; do
  echo "== xsite_allreduce_perf -A $algo (nccl-tests columns) =="
  "$XSITE_ROOT/tools/xsite-run" "${topo[@]}" --timeout 900 -- \
    "$XSITE_BUILD/bin/xsite_allreduce_perf" -b "$MIN" -e "$MAX" -f 2 -n "$ITERS" -w 2 -c 1 \
    -A "$algo" -J "$out/$algo.json"
  echo
done
python3 "$XSITE_ROOT/scripts/side_by_side.py" "$out/ring.json" "$out/hier.json"
