#!/usr/bin/env bash
# Ranks whose only interface is a TUN device (xsite-run --nic tun: tun0, point-to-point, operstate
# "unknown", the way a WireGuard, GRE or IPsec tunnel between sites appears to a host), joined to
# the other site through the emulated WAN. Checks, each across sites:
#   - the ranks' namespaces hold a real TUN device and no veth;
#   - the library (xsite_allreduce_perf, every element checked) with no interface setting, with
#     NCCL_SOCKET_IFNAME=tun0 and with XSITE_NICS='^lo,docker' (NCCL's exclusion habit);
#   - the NCCL net plugin (xsite_net_plugin_perf: NCCL's proxy through the net table) likewise;
#   - a rank told to use loopback (NCCL_SOCKET_IFNAME=lo) fails at once, every rank naming it and
#     the rank itself naming the interfaces it saw; the plugin's loopback handle is refused at once;
#   - IPv6 end to end (xsite-run --ipv6): the library's store and data, the plugin's handles under
#     NCCL_SOCKET_FAMILY=AF_INET6 (AF_INET on the same dual-stack hosts); NCCL_SOCKET_FAMILY
#     without addresses of that family, or unknown, fails naming why.
# Needs root (exit 77 = skipped otherwise). About 40 s.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${XSITE_BIN:-$ROOT/build/bin}"
RUN="$BIN/xsite-run"
ALLREDUCE="$BIN/xsite_allreduce_perf"
NETPERF="$BIN/xsite_net_plugin_perf"
SKIP=77

[ "$(id -u)" = 0 ] || { echo "SKIP: TUN interfaces in network namespaces need root"; exit $SKIP; }
for b in "$RUN" "$ALLREDUCE" "$NETPERF" "$BIN/xsite-wanem"; do
  [ -x "$b" ] || { echo "FAIL: $b not built"; exit 1; }
done
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
PASSED=0
fail() { echo "FAIL: $*" >&2; echo "--- output" >&2; cat "$TMP/out" >&2; exit 1; }
pass() { PASSED=$((PASSED + 1)); echo "ok   $*"; }

# tun SITES RANKS_PER_DOMAIN CMD...: 1 domain per site, every rank on tun0; output -> $TMP/out
# ($IPV6, e.g. --ipv6, goes to xsite-run too)
tun() {
  local s=$1 l=$2; shift 2
  "$RUN" --nic tun ${IPV6:-} --sites "$s" --domains 1 --ranks-per-domain "$l" --timeout 90 --grace 2 -- "$@" \
    >"$TMP/out" 2>&1
  RC=$?
}

tun 2 1 sh -c 'ls /sys/class/net; cat /sys/class/net/tun0/tun_flags; ip -o link show tun0'
[ $RC = 0 ] || fail "interfaces: exit $RC"
flags=$(sed -n 's/^\[1\] \(0x[0-9a-f]*\)$/\1/p' "$TMP/out")
[ -n "$flags" ] && [ $((flags & 1)) = 1 ] && grep -q 'POINTOPOINT' "$TMP/out" ||
  fail "tun0 is not a point-to-point TUN device (IFF_TUN in tun_flags)"
! grep -Eq '^\[[01]\] (eth|veth)' "$TMP/out" || fail "a rank has an Ethernet or veth interface"
pass "every rank's only interface is tun0, a TUN device"

for setting in "" NCCL_SOCKET_IFNAME=tun0 "XSITE_NICS=^lo,docker"; do
  tun 2 2 env $setting "$ALLREDUCE" -b 8 -e 1M -f 16 -n 2 -c 1
  [ $RC = 0 ] || fail "library across the TUN NICs (${setting:-no setting}): exit $RC"
  grep -q "Out of bounds values : 0 OK" "$TMP/out" || fail "library: results not checked OK"
  ! grep -q "WARN" "$TMP/out" || fail "library (${setting:-no setting}) warned"
  pass "library: 4 ranks over 2 sites on tun0 (${setting:-no interface setting})"

  tun 2 1 env $setting "$NETPERF" -f "$TMP/handle.$RANDOM" -b 8M -n 1
  [ $RC = 0 ] || fail "net plugin across the TUN NICs (${setting:-no setting}): exit $RC"
  grep -q '^\[1\] all ' "$TMP/out" || fail "net plugin: no goodput line from the receiver"
  ! grep -q "loopback" "$TMP/out" || fail "net plugin fell back to loopback"
  pass "net plugin: NCCL's proxy across sites on tun0 (${setting:-no interface setting})"
done

T0=$SECONDS
tun 2 2 env NCCL_SOCKET_IFNAME=lo "$ALLREDUCE" -b 1M -e 1M -n 2
[ $RC != 0 ] || fail "library on loopback across sites succeeded"
[ $((SECONDS - T0)) -lt 30 ] || fail "library on loopback: failed only after $((SECONDS - T0)) s"
for r in 0 1 2 3; do
  grep -q "^\[$r\] .*listens on loopback, which rank .* cannot reach" "$TMP/out" ||
    fail "rank $r did not name the rank on loopback"
done
grep -q "interfaces rank 0 saw: tun0 10.200.0.1 (not selected by NCCL_SOCKET_IFNAME='lo')" \
  "$TMP/out" || fail "rank 0 did not name the interfaces it saw and why each was refused"
pass "library: NCCL_SOCKET_IFNAME=lo across sites fails at once ($((SECONDS - T0)) s), naming tun0"

T0=$SECONDS
tun 2 1 env NCCL_SOCKET_IFNAME=lo "$NETPERF" -f "$TMP/handle.$RANDOM" -b 1M -n 1
[ $RC != 0 ] || fail "net plugin on loopback across sites succeeded"
[ $((SECONDS - T0)) -lt 30 ] || fail "net plugin on loopback: failed only after $((SECONDS - T0)) s"
grep -q "tun0 10.200.[01].1 (not selected by NCCL_SOCKET_IFNAME='lo')" "$TMP/out" ||
  fail "the plugin's loopback warning did not name tun0 and why it was refused"
grep -q "^\[1\] .*loopback" "$TMP/out" || fail "the receiver did not refuse the loopback handle"
pass "net plugin: NCCL_SOCKET_IFNAME=lo across sites fails at once ($((SECONDS - T0)) s), naming tun0"

# IPv6 end to end: xsite-run --ipv6 gives every interface an fd00:200:<s>::<d+1> address too and
# the ranks the store's IPv6 address.
IPV6=--ipv6 tun 2 2 env XSITE_DEBUG=INFO XSITE_DEBUG_SUBSYS=INIT "$ALLREDUCE" -b 8 -e 1M -f 16 -n 2 -c 1
[ $RC = 0 ] || fail "library over IPv6: exit $RC"
grep -q "Out of bounds values : 0 OK" "$TMP/out" || fail "library over IPv6: results not checked OK"
[ "$(grep -c 'listening on fd00:200:' "$TMP/out")" = 4 ] || fail "a rank did not listen on its IPv6 address"
pass "library: 4 ranks over 2 sites, store and data over IPv6"

for fam in AF_INET6 AF_INET; do
  IPV6=--ipv6 tun 2 1 env NCCL_SOCKET_FAMILY=$fam "$NETPERF" -f "$TMP/handle.$fam" -b 8M -n 1
  [ $RC = 0 ] || fail "net plugin with NCCL_SOCKET_FAMILY=$fam: exit $RC"
  # The connect handle's address family (bytes 8-9: AF_INET6 = 10, AF_INET = 2).
  got=$(od -An -tu2 -j8 -N2 "$TMP/handle.$fam" | tr -d ' ')
  want=2; [ $fam = AF_INET6 ] && want=10
  [ "$got" = "$want" ] || fail "NCCL_SOCKET_FAMILY=$fam: the handle's family is $got, not $want"
  pass "net plugin: NCCL_SOCKET_FAMILY=$fam across sites, the handle's address of that family"
done

tun 2 2 env NCCL_SOCKET_FAMILY=AF_INET6 "$ALLREDUCE" -b 1M -e 1M -n 2
[ $RC != 0 ] || fail "NCCL_SOCKET_FAMILY=AF_INET6 without IPv6 addresses succeeded"
grep -q "tun0 (no global IPv6 address (NCCL_SOCKET_FAMILY))" "$TMP/out" ||
  fail "NCCL_SOCKET_FAMILY=AF_INET6 without IPv6 addresses: the error does not say why tun0 was refused"
tun 2 1 env NCCL_SOCKET_FAMILY=IPX "$ALLREDUCE" -b 1M -e 1M -n 2
[ $RC != 0 ] && grep -q "NCCL_SOCKET_FAMILY='IPX' is not AF_INET or AF_INET6" "$TMP/out" ||
  fail "a bad NCCL_SOCKET_FAMILY was not refused by name"
pass "NCCL_SOCKET_FAMILY: no address of that family, or no such family, fails naming it"

echo "$PASSED checks passed"
