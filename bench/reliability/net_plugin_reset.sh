#!/usr/bin/env bash
# A WAN stream reset during a large transfer of the NCCL net plugin: xsite_net_plugin_perf (the
# net table driven as NCCL 2.28's proxy drives it: 8 slots of 512 KiB, -c: every byte of every
# message checked) moves --size across two sites of tools/xsite-run (netns mode, user-space WAN
# emulator, --delay ms one way, --rate Mbit/s); --after seconds into the transfer, --resets
# established WAN streams of the sender (site 0, to site 1, not the store's) are reset with
# `ss -K`, 0.5 s apart. The transfer must end with every message complete and correct (exit 0,
# "checked N bytes: all correct"), the streams healed ("broke" / "healed" lines of the plugin's
# log, PERF_VERBOSE=1 lets its INFO lines through).
# Prints the link, each reset, the receiver's goodput rows, the check line and the heal lines;
# exits 1 if the transfer failed or no reset hit a stream.
#
# Usage: bench/reliability/net_plugin_reset.sh [--size 1G] [--after 3] [--resets 1] [--delay 40]
#                                              [--rate 1000]
# Needs root (network namespaces) and a build (XSITE_BUILD, default build/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/scripts/lib.sh"
SIZE=1G AFTER=3 RESETS=1 DELAY=40 RATE=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE="$2"; shift 2 ;;
    --after) AFTER="$2"; shift 2 ;;
    --resets) RESETS="$2"; shift 2 ;;
    --delay) DELAY="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    -h|--help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "net_plugin_reset.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "net_plugin_reset.sh: needs root (network namespaces)" >&2; exit 2; }
PERF="$XSITE_BUILD/bin/xsite_net_plugin_perf"
[ -x "$PERF" ] || { echo "net_plugin_reset.sh: build first ($PERF missing)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/xsite_net_reset.XXXXXX)
job=""
cleanup() {
  if [ -n "$job" ] && kill -0 "$job" 2>/dev/null; then kill -TERM "$job" 2>/dev/null || true; wait "$job" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

echo "# link: $("$ROOT/tools/xsite-run" --wan-delay "$DELAY" --wan-rate "$RATE" --print-wan)"
echo "# $SIZE in 512 KiB messages, every byte checked; $RESETS reset(s) from ${AFTER} s into the transfer"
PERF_VERBOSE=1 XSITE_DEBUG=INFO "$ROOT/tools/xsite-run" -v --sites 2 --domains 1 --ranks-per-domain 1 \
  --wan-delay "$DELAY" --wan-rate "$RATE" --timeout 900 -- \
  "$PERF" -f "$TMP/handle" -b "$SIZE" -n 1 -c > "$TMP/log" 2>&1 &
job=$!
until grep -qE '^xsite-run: store [0-9.]+:[0-9]+' "$TMP/log" 2>/dev/null; do
  kill -0 "$job" 2>/dev/null || { cat "$TMP/log" >&2; exit 1; }
  sleep 0.1
done
sport="$(grep -m1 -oE '^xsite-run: store [0-9.]+:[0-9]+' "$TMP/log" | grep -oE '[0-9]+$')"
ns="xs$job-s0d0"
# the transfer begins once the receiver listens (its handle file) and the sender connected
until [ -s "$TMP/handle" ]; do kill -0 "$job" 2>/dev/null || break; sleep 0.05; done
sleep "$AFTER"
hit=0
for i in $(seq 1 "$RESETS"); do
  line="$(ip netns exec "$ns" ss -Htn state established dst 10.200.1.0/24 2>/dev/null |
    awk -v sp=":$sport" '{l=""; p=""; for (i = 1; i <= NF; i++) if ($i ~ /^10\.200\./) { if (l == "") l = $i; else p = $i }
                          if (p != "" && substr(p, length(p) - length(sp) + 1) != sp) print l, p}' | shuf -n 1)" || true
  if [ -n "$line" ]; then
    loc="${line% *}" peer="${line#* }"
    if ip netns exec "$ns" ss -HKtn state established src "${loc%:*}" sport = ":${loc##*:}" \
         dst "${peer%:*}" dport = ":${peer##*:}" 2>/dev/null | grep -q .; then
      hit=$((hit + 1)); echo "reset $i: $loc -> $peer (at $(date +%T.%N | cut -c1-12))"
    fi
  else
    echo "reset $i: no established WAN stream in $ns (the transfer ended?)"
  fi
  sleep 0.5
done
rc=0; wait "$job" || rc=$?
job=""
grep -E '^\[1\] +(iter|[0-9]+|all) ' "$TMP/log" | sed 's/^\[1\] //' || true
grep -E 'checked [0-9]+ bytes' "$TMP/log" | sed 's/^\[1\] //' || true
grep -E 'WAN stream [0-9]+ (broke|healed)|could not|refuses' "$TMP/log" | sed -E 's/^\[[0-9]\] //' | cut -c1-220 || true
if [ "$rc" != 0 ] || ! grep -q 'all correct' "$TMP/log" || [ "$hit" = 0 ]; then
  echo "net_plugin_reset.sh: FAILED (exit $rc, $hit reset(s) hit a stream)" >&2
  grep -iE 'error|fail' "$TMP/log" | tail -20 >&2 || tail -30 "$TMP/log" >&2
  exit 1
fi
echo "ok: $hit reset(s) survived, every byte correct"
