#!/usr/bin/env bash
# Compare the all-reduce time of xsite (flat ring, hierarchical) with Open MPI
# and Gloo on the emulated superfactory (tools/xsite-run, default 2x2x2), all
# of them across the same emulated WAN link (--preset, default "default").
#
# Usage: bench/compare.sh [--size 64M] [--iters 10] [--warmup 2]
#                         [--timeout SEC] [--baselines-only] [--keep-logs]
#                         [--perf PATH] [--preset NAME]
#
# Needs: build/bin/xsite_allreduce_perf (built by CMake; this script builds
# nothing else), Open MPI (mpirun, mpicc: bench/baselines/mpi_allreduce.c is
# compiled into build/baselines/ when missing or stale), and Debian's
# python3-torch for /usr/bin/python3. Run as root for the netns topology;
# otherwise every rank runs on loopback and the table says so.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="$ROOT/tools/xsite-run"
PERF="$ROOT/build/bin/xsite_allreduce_perf"
MPI_SRC="$ROOT/bench/baselines/mpi_allreduce.c"
MPI_BIN="$ROOT/build/baselines/mpi_allreduce"
GLOO="$ROOT/bench/baselines/gloo_allreduce.py"
TORCH_PY=/usr/bin/python3

SIZE=64M ITERS=10 WARMUP=2 TIMEOUT=300 BASELINES_ONLY=0 KEEP_LOGS=0 PRESET=default
usage() { sed -n '2,15s/^# \{0,1\}//p' "$0"; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE="$2"; shift 2 ;;
    --iters) ITERS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --baselines-only) BASELINES_ONLY=1; shift ;;
    --keep-logs) KEEP_LOGS=1; shift ;;
    --perf) PERF="$2"; shift 2 ;;
    --preset) PRESET="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "compare.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ "$SIZE" =~ ^[0-9]+[KMGkmg]?$ ]] || { echo "compare.sh: bad --size '$SIZE' (e.g. 64M)" >&2; exit 2; }
[[ "$ITERS" =~ ^[1-9][0-9]*$ && "$WARMUP" =~ ^[0-9]+$ ]] || { echo "compare.sh: bad --iters/--warmup" >&2; exit 2; }

if [ "$BASELINES_ONLY" = 0 ] && [ ! -x "$PERF" ]; then
  echo "compare.sh: $PERF not found; build it first (cmake -S . -B build && cmake --build build)," >&2
  echo "            or pass --baselines-only to measure Open MPI and Gloo alone" >&2
  exit 1
fi

LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/xsite-compare.XXXXXX")"
[ "$KEEP_LOGS" = 1 ] || trap 'rm -rf "$LOGDIR"' EXIT

MODE="netns"
[ "$(id -u)" = 0 ] || MODE="loopback"
LINK=$("$RUN" --preset "$PRESET" --print-wan) || exit 2
[ "$MODE" = netns ] || LINK="none: loopback mode has no WAN emulation"
echo "compare.sh: all-reduce sum float32, size $SIZE, $ITERS iters after $WARMUP warmup," \
     "2 sites x 2 domains x 2 ranks ($MODE mode), WAN link: $LINK, $(nproc) cores, $(uname -r)" >&2

declare -A TIME_US STATUS

# record NAME LOGFILE RC US: stores a result (US empty when none was parsed)
record() {
  if [ "$3" = 0 ] && [ -n "$4" ]; then
    TIME_US[$1]="$4"; STATUS[$1]=ok
  else
    STATUS[$1]="FAILED (rc $3, log: $2)"
    echo "compare.sh: $1 failed (rc $3); last lines of $2:" >&2
    tail -n 15 "$2" | sed 's/^/    /' >&2
    KEEP_LOGS=1; trap - EXIT
  fi
}

# RESULT lines of the baselines: "RESULT impl=X bytes=B ... avg_us=T ..."
result_us() { sed -n 's/.*RESULT impl=.* avg_us=\([0-9.]*\).*/\1/p' "$1" | tail -n 1; }

run_xsite() {  # $1 = algorithm (ring|hier)
  local name="xsite-$1" log="$LOGDIR/xsite-$1.log" rc us
  echo "compare.sh: running $name ..." >&2
  "$RUN" --preset "$PRESET" --timeout "$TIMEOUT" -- "$PERF" -b "$SIZE" -e "$SIZE" -n "$ITERS" -w "$WARMUP" \
    -c 0 -d float -A "$1" >"$log" 2>&1
  rc=$?
  # nccl-tests row from rank 0: size count type redop root time algbw busbw #wrong ...
  # (times of 10 s and more come as 1e+07: the column is 7 characters wide)
  us=$(awk '$1 == "[0]" && $2 ~ /^[0-9]+$/ && NF >= 7 && $7 ~ /^[0-9.]+(e[+-]?[0-9]+)?$/ { t = $7 + 0 }
            END { if (t != "") print t }' "$log")
  record "$name" "$log" "$rc" "$us"
}

run_openmpi() {
  local log="$LOGDIR/openmpi.log" rc
  if ! command -v mpirun >/dev/null || ! command -v mpicc >/dev/null; then
    echo "compare.sh: Open MPI not installed (apt-get install openmpi-bin libopenmpi-dev)" >log
    record openmpi "$log" 127 ""; return
  fi
  if [ ! -x "$MPI_BIN" ] || [ "$MPI_SRC" -nt "$MPI_BIN" ]; then
    mkdir -p "$(dirname "$MPI_BIN")"
    mpicc -O2 -o "$MPI_BIN" "$MPI_SRC" >"$log" 2>&1 || { record openmpi "$log" 1 ""; return; }
  fi
  echo "compare.sh: running openmpi ..." >&2
  # Shared memory off so traffic crosses the emulated links; TCP pinned to the
  # domain's eth0; mpirun runs in rank 0's namespace and starts its daemons in
  # the others through xsite-netns-rsh. 8 ranks share few cores, so ranks
  # yield when idle instead of busy-polling each other off the CPU. Daemons talk directly
  # (routed=direct): the default tree routing sometimes fails to reach a daemon in time.
  "$RUN" --preset "$PRESET" --exec-once --timeout "$TIMEOUT" -- env PMIX_MCA_ptl_tcp_remote_connections=1 \
    sh -c 'exec mpirun --allow-run-as-root --oversubscribe --bind-to none \
      --hostfile "$XSITE_HOSTFILE" --mca plm_rsh_agent "$XSITE_NETNS_RSH" \
      --mca btl self,tcp --mca btl_tcp_if_include "$XSITE_IFNAME" \
      --mca oob_tcp_if_include "$XSITE_IFNAME" --mca mpi_yield_when_idle 1 --mca routed direct \
      -np "$XSITE_WORLD_SIZE" "$@"' mpirun "$MPI_BIN" "$SIZE" "$ITERS" "$WARMUP" >"$log" 2>&1
  rc=$?
  record openmpi "$log" "$rc" "$(result_us "$log")"
}

run_gloo() {
  local log="$LOGDIR/gloo.log" rc
  if ! "$TORCH_PY" -c 'import torch.distributed' >/dev/null 2>&1; then
    echo "compare.sh: torch not importable by $TORCH_PY (apt-get install python3-torch)" >"$log"
    record gloo "$log" 127 ""; return
  fi
  echo "compare.sh: running gloo ..." >&2
  "$RUN" --preset "$PRESET" --timeout "$TIMEOUT" -- "$TORCH_PY" "$GLOO" "$SIZE" "$ITERS" "$WARMUP" >"$log" 2>&1
  rc=$?
  record gloo "$log" "$rc" "$(result_us "$log")"
}

IMPLS=()
if [ "$BASELINES_ONLY" = 0 ]; then
  run_xsite ring; run_xsite hier; IMPLS+=(xsite-ring xsite-hier)
fi
run_openmpi; run_gloo; IMPLS+=(openmpi gloo)

REF="${TIME_US[openmpi]:-}"
echo
printf "%-12s %12s %14s\n" impl "time (ms)" "vs Open MPI"
FAILED=0
for i in "${IMPLS[@]}"; do
  if [ "${STATUS[$i]}" = ok ]; then
    us="${TIME_US[$i]}"
    ratio="-"
    [ -n "$REF" ] && ratio=$(awk -v a="$us" -v b="$REF" 'BEGIN { printf "%.2fx", a / b }')
    printf "%-12s %12s %14s\n" "$i" "$(awk -v a="$us" 'BEGIN { printf "%.2f", a / 1000 }')" "$ratio"
  else
    printf "%-12s %s\n" "$i" "${STATUS[$i]}"
    FAILED=1
  fi
done
[ "$KEEP_LOGS" = 1 ] && echo "logs: $LOGDIR" >&2
exit $FAILED
