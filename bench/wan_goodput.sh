#!/usr/bin/env bash
# WAN goodput between two sites, in one run per emulated link: xsite's WAN streams, the same
# streams under TLS 1.3 (XSITE_WAN_TLS=1), xsite over one plain socket, and single-stream iperf3
# with default socket buffers, all through the same emulated link (tools/xsite-run, 2 sites x
# 1 domain x 1 rank). Needs root and a build.
# Preset `none` is a plain veth pair (no delay, no rate limit): what the CPUs allow, where TLS's
# cost shows.
# Usage: bench/wan_goodput.sh [--size 256M] [--presets "default transatlantic none"]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
SIZE=256M PRESETS="default transatlantic none"
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE="$2"; shift 2 ;;
    --presets) PRESETS="$2"; shift 2 ;;
    *) echo "wan_goodput.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "wan_goodput.sh: needs root (network namespaces)" >&2; exit 2; }
ensure_packages iperf3
PERF="$XSITE_BUILD/bin/xsite_wan_perf"
[ -x "$PERF" ] || { echo "wan_goodput.sh: build first ($PERF missing)" >&2; exit 1; }
RUN=("$ROOT/tools/xsite-run" --sites 2 --domains 1 --ranks-per-domain 1 --timeout 600)

goodput() {  # goodput PRESET ARGS...: the goodput column of xsite_wan_perf's row
  "${RUN[@]}" --preset "$1" -- "$PERF" -b "$SIZE" -e "$SIZE" -n 3 "${@:2}" 2>/dev/null |
    awk '/^\[0\] +[0-9]/ { print $5 }'
}
iperf() {  # iperf PRESET: single-stream iperf3, default buffers, site 0 -> site 1, Mbit/s
  "${RUN[@]}" --preset "$1" -- bash -c '
    if [ "$XSITE_RANK" = 1 ]; then exec iperf3 -s -1 -p 5299 >/dev/null; fi
    sleep 1; iperf3 -c 10.200.1.1 -p 5299 -t 8 -f m | awk "/receiver/ { print \$7 }"' 2>/dev/null |
    awk '/^\[0\]/ { print $2 }'
}

printf "%-14s %-40s %14s %14s %14s %16s\n" preset link "xsite streams" "streams + TLS" "xsite 1 socket" "iperf3 1 stream"
for p in $PRESETS; do
  link=$("$ROOT/tools/xsite-run" --preset "$p" --print-wan)
  rate=$(echo "$link" | sed -n 's/.* \([0-9.]*\) Mbit\/s.*/\1/p')
  s=$(goodput "$p"); e=$(goodput "$p" -T); t=$(goodput "$p" -t tcp); i=$(iperf "$p")
  pct() { awk -v g="$1" -v r="$rate" 'BEGIN { if (g == "") print "-"; else if (r == "") printf "%.0f", g;
                                              else printf "%.0f (%.1f%%)", g, 100 * g / r }'; }
  printf "%-14s %-40s %14s %14s %14s %16s\n" "$p" "$(echo "$link" | cut -c1-40)" "$(pct "$s")" "$(pct "$e")" "$(pct "$t")" "$(pct "$i")"
done
echo "# goodput in Mbit/s (percent of the emulated rate); $SIZE per xsite message; $(nproc) cores"
