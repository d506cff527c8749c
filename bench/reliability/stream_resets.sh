#!/usr/bin/env bash
# WAN stream resets under load: runs 2x2x2 jobs (--sites 2 --domains 2 --ranks-per-domain 2) of the
# hierarchical all-reduce with every-element checks (-c 1 -A hier) while a background loop resets
# a random WAN stream socket (established TCP, site-0 rank IP <-> site-1 rank IP, not the store
# connection) in a random site-0 domain namespace every 0.2-1.5 s, with `ip netns exec NS ss -K`
# and an exact filter (src/sport, dst/dport). Jobs repeat until --resets resets hit a socket.
# Prints the emulated link, one line per job (resets, of them after rank 0's last result row, i.e.
# in the job's teardown; exit status, #wrong, "WAN stream N broke" / "healed" log lines with
# XSITE_DEBUG=INFO, wall time) and a final "resets: N injected, M survived (jobs: J of K correct)";
# exits 1 if a job failed (non-zero exit or wrong elements), with its log's errors on stderr.
#
# Usage: bench/reliability/stream_resets.sh [--resets 100] [--per-run 20] [--preset default]
#                                            [--min 1M] [--max 32M] [--iters 20] [--check 1]
#                                            [--perf PATH] [--keep-logs DIR]
#
# Resets start once rank 0 printed its first result row (the WAN links are up) and go on until
# the job exits. XSITE_RESETS_TRACE=1 traces each reset on stderr. Needs
# build/bin/xsite_allreduce_perf; run as root (netns mode).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PERF="$ROOT/build/bin/xsite_allreduce_perf"
RESETS=100 PER_RUN=20 PRESET=default MIN=1M MAX=32M ITERS=20 CHECK=1 KEEP=""
usage() { sed -n '2,18s/^# \{0,1\}//p' "$0"; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --resets) RESETS="$2"; shift 2 ;;
    --per-run) PER_RUN="$2"; shift 2 ;;
    --preset) PRESET="$2"; shift 2 ;;
    --min) MIN="$2"; shift 2 ;;
    --max) MAX="$2"; shift 2 ;;
    --iters) ITERS="$2"; shift 2 ;;
    --check) CHECK="$2"; shift 2 ;;
    --perf) PERF="$2"; shift 2 ;;
    --keep-logs) KEEP="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "stream_resets.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -x "$PERF" ] || { echo "stream_resets.sh: $PERF not built" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "stream_resets.sh: needs root (network namespaces)" >&2; exit 2; }
LAST_BYTES="$(numfmt --from=iec "$MAX")"
work="$(mktemp -d)"
job=""
cleanup() {
  if [ -n "$job" ] && kill -0 "$job" 2>/dev/null; then kill -TERM "$job" 2>/dev/null || true; wait "$job" 2>/dev/null || true; fi
  if [ -n "$KEEP" ]; then mkdir -p "$KEEP" && cp "$work"/job*.log "$KEEP"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for FILE REGEX PID: until REGEX appears in FILE (0) or PID exits (1)
wait_for() {
  until grep -qE "$2" "$1" 2>/dev/null; do kill -0 "$3" 2>/dev/null || return 1; sleep 0.1; done
}

# inject LOG PID STOREPORT MAX COUNTFILE: reset random WAN streams while the job PID runs
inject() {
  local log="$1" pid="$2" sport="$3" max="$4" out="$5" n=0 late=0 ns socks line loc peer when
  echo 0 0 > "$out"
  wait_for "$log" '^\[0\] +[0-9]+ +[0-9]+ +[a-z0-9]+ +[a-z]+ ' "$pid" || return 0
  while [ "$n" -lt "$max" ] && kill -0 "$pid" 2>/dev/null; do
    sleep "$(awk -v r="$RANDOM" 'BEGIN{printf "%.2f", 0.2 + 1.3 * r / 32767}')"
    ns="xs$pid-s0d$((RANDOM % 2))"
    # established sockets to site 1 that are not the store's (rank 0 serves it on $sport)
    socks="$(ip netns exec "$ns" ss -Htn state established dst 10.200.1.0/24 2>/dev/null |
      awk -v sp=":$sport" '{l=""; p=""; for (i = 1; i <= NF; i++) if ($i ~ /^10\.200\./) { if (l == "") l = $i; else p = $i }
                            if (p != "" && substr(l, length(l) - length(sp) + 1) != sp) print l, p}')" || true
    [ -n "$socks" ] || { [ -z "${XSITE_RESETS_TRACE:-}" ] || echo "  $(date +%T) no sockets in $ns" >&2; continue; }
    line="$(printf '%s\n' "$socks" | shuf -n 1)"
    loc="${line% *}" peer="${line#* }"
    if ip netns exec "$ns" ss -HKtn state established src "${loc%:*}" sport = ":${loc##*:}" \
         dst "${peer%:*}" dport = ":${peer##*:}" 2>/dev/null | grep -q .; then
      n=$((n + 1)) when=""
      # after rank 0's last result row: the job is tearing down (draining and closing its links)
      if grep -qE "^\[0\] +$LAST_BYTES " "$log"; then late=$((late + 1)) when=" (after the last row)"; fi
      echo "$n $late" > "$out"
      [ -z "${XSITE_RESETS_TRACE:-}" ] || echo "  $(date +%T.%N | cut -c1-12) reset $n: $ns $loc -> $peer$when" >&2
    else
      [ -z "${XSITE_RESETS_TRACE:-}" ] || echo "  $(date +%T.%N | cut -c1-12) missed: $ns $loc -> $peer" >&2
    fi
  done
}

printf '# stream resets: 2x2x2 ranks, all-reduce -A hier -c %s, %s..%s x2, %s iters, up to %s resets per job, %s in all\n' \
  "$CHECK" "$MIN" "$MAX" "$ITERS" "$PER_RUN" "$RESETS"
injected=0 survived=0 jobs=0 good=0 shown=0
while [ "$injected" -lt "$RESETS" ]; do
  jobs=$((jobs + 1))
  log="$work/job$jobs.log"
  want=$((RESETS - injected)); [ "$want" -gt "$PER_RUN" ] && want="$PER_RUN"
  t0="$(date +%s.%N)"
  XSITE_DEBUG=INFO "$ROOT/tools/xsite-run" -v --sites 2 --domains 2 --ranks-per-domain 2 \
    --preset "$PRESET" --timeout 900 -- \
    "$PERF" -b "$MIN" -e "$MAX" -f 2 -n "$ITERS" -w 1 -c "$CHECK" -A hier > "$log" 2>&1 &
  job=$!
  if ! wait_for "$log" '^xsite-run: store [0-9.]+:[0-9]+' "$job"; then
    wait "$job" || true; echo "stream_resets.sh: job $jobs did not start:" >&2; tail -20 "$log" >&2; exit 1
  fi
  if [ "$shown" = 0 ]; then grep -E '^  [0-9]+ WAN link|^xsite-run: emulated' "$log" | sed 's/^/# /'; shown=1; fi
  sport="$(grep -m1 -oE '^xsite-run: store [0-9.]+:[0-9]+' "$log" | grep -oE '[0-9]+$')"
  inject "$log" "$job" "$sport" "$want" "$work/count" &
  inj=$!
  rc=0; wait "$job" || rc=$?
  job=""
  wait "$inj" || true
  t1="$(date +%s.%N)"
  read -r n late < "$work/count" || { n=0 late=0; }
  # #wrong: rank 0's columns 10 (out-of-place) and 14 (in-place), summed over ranks by the harness
  wrong="$(grep -E '^\[0\] +[0-9]+ +[0-9]+ +[a-z0-9]+ +[a-z]+ ' "$log" | awk '{w += $10 + $14} END {print NR ? w : "?"}' || true)"
  oob="$(grep -m1 -oE 'Out of bounds values : [0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')"
  broke="$(grep -cE 'WAN stream [0-9]+ broke' "$log" || true)"
  healed="$(grep -cE 'WAN stream [0-9]+ healed' "$log" || true)"
  injected=$((injected + n))
  ok=no
  if [ "$rc" = 0 ] && [ "$wrong" = 0 ] && [ "$oob" = 0 ]; then ok=yes good=$((good + 1)) survived=$((survived + n)); fi
  printf 'job %d: resets %d (%d after the last row), exit %d, wrong %s (out of bounds %s), broke %s, healed %s, wall %.1f s, ok %s\n' \
    "$jobs" "$n" "$late" "$rc" "$wrong" "$oob" "$broke" "$healed" "$(echo "$t1 - $t0" | bc)" "$ok"
  if [ "$ok" = no ]; then
    echo "stream_resets.sh: job $jobs failed; errors in its log:" >&2
    grep -iE 'error|fail|broke|abort|timed out|xsite-run: rank' "$log" | grep -v ' INFO ' | tail -30 >&2 || tail -20 "$log" >&2
  fi
  if [ "$n" = 0 ] && [ "$ok" = yes ]; then
    echo "stream_resets.sh: job $jobs ended before any reset; use larger --max or --iters" >&2; break
  fi
done
echo "resets: $injected injected, $survived survived (jobs: $good of $jobs correct)"
[ "$good" = "$jobs" ] && [ "$injected" -ge "$RESETS" ]
