#!/usr/bin/env bash
# Cross-site goodput of the NCCL net plugin, driven through its net table as NCCL 2.28's proxy
# drives it (xsite_net_plugin_perf: one connection, 8 slots of 512 KiB, at most 8 isends in
# flight, 8 irecvs posted), over one emulated WAN link (tools/xsite-run, 2 sites x 1 domain x
# 1 rank): WAN streams with eager staging (XSITE_WAN_TRANSPORT=streams, the default) and the
# plain-socket baseline (XSITE_WAN_TRANSPORT=tcp), one after the other in the same run.
# Needs root (network namespaces) and a build (XSITE_BUILD, default build/).
# Usage: bench/net_plugin_goodput.sh [--size 256M] [--iters 3] [--delay 40] [--rate 1000]
#                                    [--slots 8] [--slot 512K]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
SIZE=256M ITERS=3 DELAY=40 RATE=1000 SLOTS=8 SLOT=512K
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE="$2"; shift 2 ;;
    --iters) ITERS="$2"; shift 2 ;;
    --delay) DELAY="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --slots) SLOTS="$2"; shift 2 ;;
    --slot) SLOT="$2"; shift 2 ;;
    *) echo "net_plugin_goodput.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "net_plugin_goodput.sh: needs root (network namespaces)" >&2; exit 2; }
PERF="$XSITE_BUILD/bin/xsite_net_plugin_perf"
[ -x "$PERF" ] || { echo "net_plugin_goodput.sh: build first ($PERF missing)" >&2; exit 1; }
RUN=("$ROOT/tools/xsite-run" --sites 2 --domains 1 --ranks-per-domain 1
     --wan-delay "$DELAY" --wan-rate "$RATE" --timeout 600)
TMP=$(mktemp -d /tmp/xsite_net_goodput.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# measure TRANSPORT: the receiver's (rank 1) rows, "[1] iter bytes seconds Mbit/s"
measure() {
  "${RUN[@]}" -- "$PERF" -f "$TMP/handle.$1" -t "$1" -b "$SIZE" -n "$ITERS" -k "$SLOTS" \
    -s "$SLOT" >"$TMP/$1.log" 2>&1 || { echo "net_plugin_goodput.sh: $1 run failed:" >&2;
                                          cat "$TMP/$1.log" >&2; exit 1; }
}
col() {  # col TRANSPORT ROW: the Mbit/s of that row (an iteration number, or "all")
  awk -v row="$2" '$1 == "[1]" && $2 == row { print $5 }' "$TMP/$1.log"
}
pct() { awk -v g="$1" -v r="$RATE" 'BEGIN { if (g == "") print "-"; else printf "%.0f (%.1f%%)", g, 100 * g / r }'; }

link=$("$ROOT/tools/xsite-run" --wan-delay "$DELAY" --wan-rate "$RATE" --print-wan)
echo "# link: $link"
echo "# $SLOTS slots x $SLOT per connection, $SIZE x $ITERS iterations back to back; $(nproc) cores"
printf "%-9s %18s %18s %18s\n" transport "first $SIZE" "last $SIZE" "all"
for t in streams tcp; do
  measure "$t"
  printf "%-9s %18s %18s %18s\n" "$t" "$(pct "$(col "$t" 0)")" "$(pct "$(col "$t" $((ITERS - 1)))")" \
    "$(pct "$(col "$t" all)")"
done
echo "# goodput at the receiver in Mbit/s (percent of the emulated rate); the first iteration"
echo "# leaves out the first message (connection start) and includes TCP's ramp-up"
