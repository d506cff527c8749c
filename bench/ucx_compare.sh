#!/usr/bin/env bash
# bench/ucx_compare.sh: xsite's UCX site transport against raw UCX, and the site collectives over
# UCX against xsite's TCP backend, in one run (issue 5's figures; docs/ucx.md quotes them).
#
# Usage: sudo bench/ucx_compare.sh [BUILD_DIR]        (default BUILD_DIR: build)
#   REPS=3        rounds; each round runs every row once, interleaved, and the table shows the
#                 median (and the range) per row, so a busy machine skews all rows alike
#   SIZE=4194304  point-to-point message size; ITERS=300 messages per measurement
#   COLL_SIZE=64M reduce-scatter / all-gather size (whole buffer); DOMAINS=4
#   UCX_TLS=tcp   UCX's transports (the default here: two namespaces on one host look like one
#                 node to UCX, which would otherwise pick shared memory; set UCX_TLS where you mean
#                 separate hosts). Every other UCX_* variable reaches UCX untouched.
#
# Point to point: two domains of one site, each in its own network namespace (xsite-run
# --sites 1 --domains 2), so every byte crosses the veth pair and the site bridge:
#   raw:   ucx_perftest -t tag_bw (UCP tagged messages, as xsite uses them)
#   xsite: xsite_wan_perf -t ucx (one xsite Connection over the UCX backend)
# Collectives: xsite_reduce_scatter_perf / xsite_all_gather_perf on one site of DOMAINS domains
# x 1 rank (every link is a site link) with XSITE_SITE_TRANSPORT=ucx, then =tcp.
# In every namespace UCX_NET_DEVICES is the domain's interface ($XSITE_IFNAME), so that UCX does not
# take each namespace's own loopback for the peer's.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd) || { echo "ucx_compare.sh: no build directory" >&2; exit 2; }
RUN="$ROOT/tools/xsite-run"
REPS=${REPS:-3}
SIZE=${SIZE:-4194304}
ITERS=${ITERS:-300}
COLL_SIZE=${COLL_SIZE:-64M}
DOMAINS=${DOMAINS:-4}
export UCX_TLS=${UCX_TLS:-tcp}
PORT=$((20000 + $$ % 20000))

[ "$(id -u)" = 0 ] || { echo "ucx_compare.sh: run as root (network namespaces)" >&2; exit 2; }
command -v ucx_perftest >/dev/null || { echo "ucx_compare.sh: ucx_perftest missing (apt-get install ucx-utils)" >&2; exit 2; }
for b in xsite_wan_perf xsite_reduce_scatter_perf xsite_all_gather_perf; do
  [ -x "$BUILD/bin/$b" ] || { echo "ucx_compare.sh: $BUILD/bin/$b not built" >&2; exit 2; }
done

LOGDIR=$(mktemp -d /tmp/ucx_compare.XXXXXX)
WRAP="$LOGDIR/in_domain.sh"
cat >"$WRAP" <<'EOF'
#!/bin/sh
# Runs in a domain's namespace: UCX's TCP on the domain's interface only.
export UCX_NET_DEVICES="${UCX_NET_DEVICES:-$XSITE_IFNAME}"
exec "$@"
EOF
RAW="$LOGDIR/raw_perftest.sh"
cat >"$RAW" <<EOF
#!/bin/sh
# Rank 1 serves, rank 0 (10.200.0.1) measures against rank 1 (10.200.0.2, see xsite-run).
export UCX_NET_DEVICES="\${UCX_NET_DEVICES:-\$XSITE_IFNAME}"
if [ "\$XSITE_RANK" = 1 ]; then exec ucx_perftest -p $PORT; fi
sleep 1
exec ucx_perftest 10.200.0.2 -p $PORT -t tag_bw -s $SIZE -n $ITERS -w 30
EOF
chmod +x "$WRAP" "$RAW"

# Each measurement appends its figure (Mbit/s for p2p, GB/s busbw for collectives) to a row.
declare -A VALUES
add() { VALUES[$1]="${VALUES[$1]:-} $2"; }
fail() { echo "ucx_compare.sh: $1 failed; last lines of $2:" >&2; tail -n 15 "$2" | sed 's/^/    /' >&2; }

raw_p2p() {
  local log="$LOGDIR/raw.$1.log"
  timeout 300 "$RUN" --sites 1 --domains 2 --ranks-per-domain 1 --timeout 240 -- "$RAW" >"$log" 2>&1
  # "[0] Final: iters p50 avg overall bw-avg bw-overall ..." with bandwidth in MB/s (2^20 bytes)
  local v
  v=$(awk '$1 == "[0]" && $2 == "Final:" { printf "%.0f", $8 * 1048576 * 8 / 1e6 }' "$log")
  [ -n "$v" ] && add raw "$v" || fail "raw ucx_perftest" "$log"
}

xsite_p2p() {
  local log="$LOGDIR/xsite.$1.log"
  timeout 300 "$RUN" --sites 1 --domains 2 --ranks-per-domain 1 --timeout 240 -- \
    "$WRAP" "$BUILD/bin/xsite_wan_perf" -t ucx -b "$SIZE" -e "$SIZE" -n "$ITERS" -w 30 >"$log" 2>&1
  # "[0]  size  messages  time(ms)  goodput(Mb/s)  %"
  local v
  v=$(awk -v s="$SIZE" '$1 == "[0]" && $2 == s { printf "%.0f", $5 }' "$log")
  [ -n "$v" ] && add xsite "$v" || fail "xsite_wan_perf -t ucx" "$log"
}

coll() {  # $1 = reduce_scatter|all_gather, $2 = ucx|tcp, $3 = round
  local log="$LOGDIR/$1.$2.$3.log"
  timeout 300 "$RUN" --sites 1 --domains "$DOMAINS" --ranks-per-domain 1 --timeout 240 -- \
    env XSITE_SITE_TRANSPORT="$2" XSITE_DEBUG=INFO "$WRAP" "$BUILD/bin/xsite_$1_perf" \
    -b "$COLL_SIZE" -e "$COLL_SIZE" -n 10 -w 2 -c 0 -d float >"$log" 2>&1
  # nccl-tests row from rank 0: size count type redop root time algbw busbw ... (out of place)
  local v
  v=$(awk '$1 == "[0]" && $2 ~ /^[0-9]+$/ && NF >= 9 { b = $9 } END { if (b != "") print b }' "$log")
  [ -n "$v" ] && add "$1-$2" "$v" || fail "xsite_$1_perf over $2" "$log"
  grep -q "site transport (between domains): $2" "$log" ||
    echo "ucx_compare.sh: warning: $log does not say that the site transport was $2" >&2
}

echo "ucx_compare.sh: $REPS rounds, UCX_TLS=$UCX_TLS, logs in $LOGDIR" >&2
for r in $(seq 1 "$REPS"); do
  echo "ucx_compare.sh: round $r/$REPS" >&2
  raw_p2p "$r"
  xsite_p2p "$r"
  for c in reduce_scatter all_gather; do
    coll "$c" ucx "$r"
    coll "$c" tcp "$r"
  done
done

# median and range of a row
stats() {
  tr ' ' '\n' <<<"${VALUES[$1]:-}" | sed '/^$/d' | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - -"; exit }
         m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }'
}

read -r rawM rawLo rawHi <<<"$(stats raw)"
read -r xsM xsLo xsHi <<<"$(stats xsite)"
echo
echo "# $(uname -n): $(nproc) cores; UCX $(ucx_info -v | sed -n 's/^# Version //p'), UCX_TLS=$UCX_TLS;"
echo "# two network namespaces (veth + bridge), $REPS interleaved rounds, median [min..max]"
echo "#"
echo "# point to point, $SIZE-byte messages, $ITERS per measurement (Mbit/s)"
printf "%-34s %10s   %s\n" "raw UCX (ucx_perftest tag_bw)" "$rawM" "[$rawLo..$rawHi]"
printf "%-34s %10s   %s\n" "xsite UCX backend (xsite_wan_perf)" "$xsM" "[$xsLo..$xsHi]"
if [ "$rawM" != - ] && [ "$xsM" != - ]; then
  awk -v x="$xsM" -v r="$rawM" 'BEGIN { printf "%-34s %9.1f%%   (goal: at least 85%%)\n", "xsite / raw", 100 * x / r }'
fi
echo "#"
echo "# one site, $DOMAINS domains x 1 rank, $COLL_SIZE float32, out-of-place busbw (GB/s)"
printf "%-34s %10s %10s %10s\n" "" "ucx" "tcp" "ucx/tcp"
for c in reduce_scatter all_gather; do
  read -r u uLo uHi <<<"$(stats "$c-ucx")"
  read -r t tLo tHi <<<"$(stats "$c-tcp")"
  ratio=$(awk -v u="$u" -v t="$t" 'BEGIN { if (t + 0 > 0) printf "%.2fx", u / t; else print "-" }')
  printf "%-34s %10s %10s %10s   ucx [%s..%s] tcp [%s..%s]\n" "$c" "$u" "$t" "$ratio" "$uLo" "$uHi" "$tLo" "$tHi"
done
