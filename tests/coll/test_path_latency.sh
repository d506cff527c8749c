#!/usr/bin/env bash
# The planner takes the WAN's latency from the path when it is longer than the setting
# (XSITE_WAN_LATENCY_US is a hint): under xsite-run, 2 sites x 1 x 1, real namespaces and the
# emulated link, a 16 MiB hierarchical all-reduce must plan its cross-site lanes from the
# measured 20 ms (4 lanes), not from the default 5.5 ms (1 lane); a longer hint wins (8 lanes);
# a link shorter than the hint keeps the hint. Every rank must agree, and the result is checked.
# Root only (exit 77 = skipped otherwise). About 15 s.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN="$ROOT/tools/xsite-run"
PERF="${XSITE_ALLREDUCE_PERF:-$ROOT/build/bin/xsite_allreduce_perf}"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespaces)"; exit 77; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; cat "$TMP/out" >&2; exit 1; }

# plan LAUNCHER_FLAGS -- ENV...: one checked 16 MiB all-reduce; output in $TMP/out
plan() {
  local flags=()
  while [ "$1" != -- ]; do flags+=("$1"); shift; done
  shift
  "$RUN" --sites 2 --domains 1 --ranks-per-domain 1 --timeout 60 "${flags[@]}" -- \
    env -u XSITE_WAN_LATENCY_US -u XSITE_WAN_RATE_MBIT XSITE_DEBUG=DEBUG XSITE_DEBUG_SUBSYS=COLL \
    "$@" "$PERF" -A hier -b 16M -e 16M -n 1 -w 0 -c 1 -d float >"$TMP/out" 2>&1 ||
    fail "run ${flags[*]} $*: exit code $?"
  awk '$1 == "[0]" && $2 == 16777216 && $10 == 0 && $14 == 0 { ok = 1 } END { exit !ok }' \
    "$TMP/out" || fail "run ${flags[*]} $*: no result row with 0 wrong elements"
}
# lanes N WHAT: every call of both ranks planned N lanes
lanes() {
  local got
  got=$(sed -n 's/.*cross-site stage on \([0-9]*\) lanes.*/\1/p' "$TMP/out" | sort -u | tr '\n' ' ')
  [ "$got" = "$1 " ] || fail "$2: lanes '$got', expected $1"
}
measured() {  # the one-way latencies the ranks logged, sorted, unique
  sed -n 's/.*WAN path measured at \([0-9.]*\) ms one way.*/\1/p' "$TMP/out" | sort -u | tr '\n' ' '
}

plan --wan-delay 20 --
m=$(measured)
[ "$(echo $m | wc -w)" = 1 ] || fail "20 ms link: the ranks logged '$m', expected one agreed value"
awk -v m="$m" 'BEGIN { exit !(m >= 20 && m <= 21) }' || fail "20 ms link: measured '$m' ms"
[ "$(grep -c 'WAN path measured' "$TMP/out")" = 2 ] || fail "20 ms link: not both ranks logged it"
lanes 4 "20 ms link, no hint"
echo "ok   20 ms link without a hint: measured $m ms one way, 4 lanes"

plan --wan-delay 20 -- XSITE_WAN_LATENCY_US=40000
[ -z "$(measured)" ] || fail "20 ms link, 40 ms hint: the shorter path replaced the hint"
lanes 8 "20 ms link, 40 ms hint"
echo "ok   20 ms link with a 40 ms hint: the hint stands, 8 lanes"

plan --wan-delay 1 --
[ -z "$(measured)" ] || fail "1 ms link: the path replaced the longer default hint"
lanes 1 "1 ms link, no hint"
echo "ok   1 ms link without a hint: the default 5.5 ms stands, 1 lane"
echo "PASS"
