#!/usr/bin/env bash
# WAN goodput with the link settings right, absent and wrong: xsite's WAN streams sized from
# XSITE_WAN_RATE_MBIT / XSITE_WAN_LATENCY_US as xsite-run sets them (the link's true values),
# with neither set (xsite's defaults: 1000 Mbit/s, 5.5 ms), and with both ten times too small;
# beside iperf3 through the same emulated link in the same run (4 streams like xsite's default,
# and 1), the kernel's buffer autotuning on. Each xsite figure is the goodput of 3 messages of
# SIZE after one of warm-up (the window and buffers grow from the path during the first).
# tools/xsite-run, 2 sites x 1 domain x 1 rank. Needs root and a build.
# Usage: bench/wan_hints.sh [--size 256M] [--links "5.5 40 40/0.1"]   (one-way ms[/loss %])
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
SIZE=256M LINKS="5.5 40 40/0.1" RATE=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE="$2"; shift 2 ;;
    --links) LINKS="$2"; shift 2 ;;
    *) echo "wan_hints.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "wan_hints.sh: needs root (network namespaces)" >&2; exit 2; }
ensure_packages iperf3
PERF="$XSITE_BUILD/bin/xsite_wan_perf"
[ -x "$PERF" ] || { echo "wan_hints.sh: build first ($PERF missing)" >&2; exit 1; }

run() {  # run DELAY LOSS CMD...: under xsite-run on that link
  "$ROOT/tools/xsite-run" --sites 2 --domains 1 --ranks-per-domain 1 --timeout 600 \
    --wan-delay "$1" --wan-rate "$RATE" --wan-loss "$2" -- "${@:3}"
}
xsite() {  # xsite DELAY LOSS ENV...: the goodput column of xsite_wan_perf's row, Mbit/s
  run "$1" "$2" env "${@:3}" "$PERF" -b "$SIZE" -e "$SIZE" -n 3 -r "$RATE" 2>/dev/null |
    awk '/^\[0\] +[0-9]/ { print $5 }'
}
iperf() {  # iperf DELAY LOSS STREAMS: iperf3 site 0 -> site 1, 10 s, Mbit/s at the receiver
  run "$1" "$2" bash -c '
    if [ "$XSITE_RANK" = 1 ]; then exec iperf3 -s -1 -p 5299 >/dev/null; fi
    sleep 1; iperf3 -c 10.200.1.1 -p 5299 -t 10 -P '"$3"' -f m |
      awk "/receiver/ { v = \$(NF - 2) } END { print v }"' 2>/dev/null | awk '/^\[0\]/ { print $2 }'
}
pct() { awk -v g="$1" -v r="$RATE" 'BEGIN { if (g == "") print "-"; else printf "%.0f (%.0f%%)", g, 100 * g / r }'; }

printf "%-22s %14s %14s %14s %14s %14s\n" link "hints right" "no hints" "hints / 10" "iperf3 -P 4" "iperf3 1"
for l in $LINKS; do
  delay=${l%/*}; loss=0; [ "$l" != "$delay" ] && loss=${l#*/}
  us=$(awk -v d="$delay" 'BEGIN { printf "%g", d * 1000 }')
  right=$(xsite "$delay" "$loss")
  none=$(xsite "$delay" "$loss" -u XSITE_WAN_LATENCY_US -u XSITE_WAN_RATE_MBIT)
  small=$(xsite "$delay" "$loss" XSITE_WAN_LATENCY_US=$(awk -v u="$us" 'BEGIN { printf "%g", u / 10 }') \
          XSITE_WAN_RATE_MBIT=$((RATE / 10)))
  i4=$(iperf "$delay" "$loss" 4); i1=$(iperf "$delay" "$loss" 1)
  printf "%-22s %14s %14s %14s %14s %14s\n" "${delay} ms, ${loss}% loss" "$(pct "$right")" \
    "$(pct "$none")" "$(pct "$small")" "$(pct "$i4")" "$(pct "$i1")"
done
echo "# $RATE Mbit/s links (xsite-wanem, 2 x BDP queue); goodput in Mbit/s (percent of the link);"
echo "# $SIZE per xsite message; $(nproc) cores; net.ipv4.tcp_wmem max $(awk '{print $3}' /proc/sys/net/ipv4/tcp_wmem), tcp_rmem max $(awk '{print $3}' /proc/sys/net/ipv4/tcp_rmem)"
