#!/usr/bin/env bash
# A WAN blackout under load: runs one 2x2x2 job (--sites 2 --domains 2 --ranks-per-domain 2) of
# the hierarchical all-reduce with every-element checks (-c 1 -A hier) and, shortly after rank 0's
# first result row, silently drops every cross-site packet for --seconds: a `blackhole` root qdisc
# on both ends of the emulated WAN link (the TUN devices w1 in xs<pid>-s0r and w0 in xs<pid>-s1r,
# so both directions, store traffic included, die in the routers with no ICMP and no local error),
# checked with a ping across sites, then removed (also on any exit, via trap). The job must go on
# to exit 0 with 0 wrong elements; the drop must end while the job still runs.
# (This kernel has no matchall classifier, gact action or netem, so tc filter ... action drop and
# netem loss 100% are not available; the blackhole qdisc is.)
#
# Usage: bench/reliability/blackhole.sh [--seconds 60] [--after 2] [--preset default]
#                                        [--min 1M] [--max 16M] [--iters 100] [--perf PATH]
#                                        [--keep-log FILE]
#
# Prints the emulated link, the blackhole's measured duration, whether the job still ran when it
# ended, the job's wall time, exit status, #wrong, and its "WAN stream N broke" / "healed" log
# lines (XSITE_DEBUG=INFO); exits 1 if the job failed or ended before the drop was lifted.
# Needs build/bin/xsite_allreduce_perf; run as root (network namespaces).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PERF="$ROOT/build/bin/xsite_allreduce_perf"
SECONDS_OFF=60 AFTER=2 PRESET=default MIN=1M MAX=16M ITERS=100 KEEP=""
usage() { sed -n '2,19s/^# \{0,1\}//p' "$0"; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_OFF="$2"; shift 2 ;;
    --after) AFTER="$2"; shift 2 ;;
    --preset) PRESET="$2"; shift 2 ;;
    --min) MIN="$2"; shift 2 ;;
    --max) MAX="$2"; shift 2 ;;
    --iters) ITERS="$2"; shift 2 ;;
    --perf) PERF="$2"; shift 2 ;;
    --keep-log) KEEP="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "blackhole.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -x "$PERF" ] || { echo "blackhole.sh: $PERF not built" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "blackhole.sh: needs root (network namespaces)" >&2; exit 2; }
log="$(mktemp)"
job="" holes=()
lift() {  # remove the blackhole qdiscs (the devices fall back to their default qdisc)
  local h
  for h in "${holes[@]}"; do ip netns exec "${h% *}" tc qdisc del dev "${h#* }" root 2>/dev/null || true; done
  holes=()
}
cleanup() {
  lift
  if [ -n "$job" ] && kill -0 "$job" 2>/dev/null; then kill -TERM "$job" 2>/dev/null || true; wait "$job" 2>/dev/null || true; fi
  if [ -n "$KEEP" ]; then cp "$log" "$KEEP" || true; fi
  rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }
wait_for() {  # wait_for REGEX: until it is in the log (0) or the job exits (1)
  until grep -qE "$1" "$log" 2>/dev/null; do kill -0 "$job" 2>/dev/null || return 1; sleep 0.1; done
}

t0="$(now)"
XSITE_DEBUG=INFO "$ROOT/tools/xsite-run" -v --sites 2 --domains 2 --ranks-per-domain 2 \
  --preset "$PRESET" --timeout 1800 -- \
  "$PERF" -b "$MIN" -e "$MAX" -f 2 -n "$ITERS" -w 1 -c 1 -A hier > "$log" 2>&1 &
job=$!
fail() { echo "blackhole.sh: $*" >&2; tail -30 "$log" >&2; exit 1; }
wait_for '^xsite-run: store [0-9.]+:[0-9]+' || fail "the job did not start"
grep -E '^  [0-9]+ WAN link' "$log" | sed 's/^ */# emulated link: /'
wait_for '^\[0\] +[0-9]+ +[0-9]+ +[a-z0-9]+ +[a-z]+ ' || fail "the job ended before its first result row"
sleep "$AFTER"
kill -0 "$job" 2>/dev/null || fail "the job ended before the blackhole"
tb="$(now)"
for h in "xs$job-s0r w1" "xs$job-s1r w0"; do
  holes+=("$h")
  ip netns exec "${h% *}" tc qdisc replace dev "${h#* }" root blackhole
done
printf '# blackhole on: %s\n' "$(for h in "${holes[@]}"; do printf '%s:%s=[%s] ' "${h% *}" "${h#* }" \
  "$(ip netns exec "${h% *}" tc qdisc show dev "${h#* }" root | awk '{print $2}')"; done)"
if ip netns exec "xs$job-s0d0" ping -c 2 -W 1 -q 10.200.1.1 > /dev/null 2>&1; then
  fail "a ping from site 0 to site 1 still got through the blackhole"
fi
echo "# ping 10.200.0.1 -> 10.200.1.1 during the blackhole: no reply (dropped)"
sleep "$(echo "$SECONDS_OFF - ($(now) - $tb)" | bc | sed 's/^-.*/0/')"
lift
te="$(now)"
running=no; kill -0 "$job" 2>/dev/null && running=yes
rows_before="$(grep -cE '^\[0\] +[0-9]+ +[0-9]+ +[a-z0-9]+ +[a-z]+ ' "$log" || true)"
rc=0; wait "$job" || rc=$?
job=""
t1="$(now)"
wrong="$(grep -E '^\[0\] +[0-9]+ +[0-9]+ +[a-z0-9]+ +[a-z]+ ' "$log" | awk '{w += $10 + $14} END {print NR ? w : "?"}' || true)"
oob="$(grep -m1 -oE 'Out of bounds values : [0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')"
broke="$(grep -cE 'WAN stream [0-9]+ broke' "$log" || true)"
healed="$(grep -cE 'WAN stream [0-9]+ healed' "$log" || true)"
slowest="$(grep -oE 'healed after [0-9.]+ s' "$log" | awk '{if ($3 > m) m = $3} END {print NR ? m " s" : "-"}' || true)"
rows="$(grep -cE '^\[0\] +[0-9]+ +[0-9]+ +[a-z0-9]+ +[a-z]+ ' "$log" || true)"
printf 'blackhole: %.1f s (from %.1f s into the job); job still running when it ended: %s (%s of %s result rows printed by then)\n' \
  "$(elapsed "$tb" "$te")" "$(elapsed "$t0" "$tb")" "$running" "$rows_before" "$rows"
printf 'job: wall %.1f s, exit %d, wrong %s (out of bounds %s), broke %s, healed %s (slowest heal %s)\n' \
  "$(elapsed "$t0" "$t1")" "$rc" "$wrong" "$oob" "$broke" "$healed" "$slowest"
if [ "$rc" != 0 ] || [ "$wrong" != 0 ] || [ "$oob" != 0 ] || [ "$running" != yes ]; then
  echo "blackhole.sh: FAILED; errors in the job's log:" >&2
  grep -iE 'error|fail|abort|timed out|xsite-run: rank' "$log" | grep -v ' INFO ' | tail -30 >&2 || tail -20 "$log" >&2
  exit 1
fi
echo "blackhole: survived"
