#!/usr/bin/env bash
# The main job: builds if needed, then runs xsite_allreduce_perf on the emulated mini
# superfactory (tools/xsite-run: 2 sites x 2 domains x 2 ranks joined by the emulated WAN link,
# preset "default": 5.5 ms one way, 1000 Mbit/s) with the flat ring, the hierarchical path, the
# latency path and auto side by side, from 8 B to 64 MiB; then the 64 MiB comparison with Open
# MPI and Gloo over the same link (bench/compare.sh); then the cross-site codecs side by side on
# the "thin" preset (5.5 ms, 200 Mbit/s), 64 MiB (bench/codec_compare.sh); then WAN goodput with
# the link settings right, absent and ten times too small beside iperf3, at 5.5 ms and at 40 ms
# with 0.1% loss (bench/wan_hints.sh); then the NCCL CollNet table's 64 MiB all-reduce beside the
# library's in one run (xsite_collnet_perf).
# Options: --preset NAME (default|thin|transatlantic), --iters N (default 5), --no-baselines,
# --no-codecs, --no-wan, --no-collnet, and xsite-run's --sites S --domains D --ranks-per-domain L.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PRESET=default ITERS=5 BASELINES=1 CODECS=1 WAN=1 COLLNET=1
topo=()
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) PRESET="$2"; shift 2 ;;
    --iters) ITERS="$2"; shift 2 ;;
    --no-baselines) BASELINES=0; shift ;;
    --no-codecs) CODECS=0; shift ;;
    --no-wan) WAN=0; shift ;;
    --no-collnet) COLLNET=0; shift ;;
    --sites|--domains|--ranks-per-domain) topo+=("$1" "$2"); shift 2 ;;
    *) echo "run_superfactory.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
ensure_build_deps
[ "$BASELINES" = 1 ] && ensure_packages openmpi-bin libopenmpi-dev python3-torch
build xsite_allreduce_perf xsite_wan_perf xsite-wanem
[ "$COLLNET" = 1 ] && build xsite_collnet_perf nccl-net-xsite
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
run=("$XSITE_ROOT/tools/xsite-run" "${topo[@]}" --preset "$PRESET" --timeout 1200 --)
perf=("$XSITE_BUILD/bin/xsite_allreduce_perf" -n "$ITERS" -w 2 -c 1)
for algo in ring hier latency auto; do
  echo "== xsite_allreduce_perf -A $algo (nccl-tests columns) =="
  "${run[@]}" "${perf[@]}" -b 8 -e 64K -f 8 -A "$algo" -J "$out/$algo-small.json"
  "${run[@]}" "${perf[@]}" -b 256K -e 64M -f 4 -A "$algo" -J "$out/$algo-large.json"
  echo
done
echo "== side by side =="
"$XSITE_ROOT/tools/xsite-run" "${topo[@]}" --preset "$PRESET" --print-wan | sed 's/^/# WAN link: /'
python3 "$XSITE_ROOT/scripts/side_by_side.py" "$out"/ring-*.json "$out"/hier-*.json \
  "$out"/latency-*.json "$out"/auto-*.json
if [ "$BASELINES" = 1 ]; then
  echo
  echo "== 64 MiB against Open MPI and Gloo over the same link (bench/compare.sh) =="
  "$XSITE_ROOT/bench/compare.sh" --size 64M --iters "$ITERS" --preset "$PRESET" \
    --perf "$XSITE_BUILD/bin/xsite_allreduce_perf"
fi
if [ "$CODECS" = 1 ]; then
  echo
  echo "== 64 MiB under each cross-site codec, thin link (bench/codec_compare.sh) =="
  "$XSITE_ROOT/bench/codec_compare.sh" --preset thin --size 64M --iters "$ITERS" "${topo[@]}" \
    --perf "$XSITE_BUILD/bin/xsite_allreduce_perf"
fi
if [ "$WAN" = 1 ]; then
  echo
  echo "== WAN goodput: link settings right, absent, ten times too small; iperf3 (bench/wan_hints.sh) =="
  "$XSITE_ROOT/bench/wan_hints.sh" --links "5.5 40/0.1"
fi
if [ "$COLLNET" = 1 ]; then
  echo
  echo "== 64 MiB through the NCCL CollNet table beside the library (xsite_collnet_perf) =="
  "${run[@]}" "$XSITE_BUILD/bin/xsite_collnet_perf" -b 64M -n "$ITERS" 2>&1 | grep '^\[0\]' |
    sed 's/^\[0\] //'
fi
