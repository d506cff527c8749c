#!/usr/bin/env bash
# Tests for tools/xsite-run and tools/xsite-netns-rsh.
# Loopback mode always; network-namespace mode only as root (skipped otherwise); there the
# WAN links run xsite-wanem ($XSITE_WANEM, else build/bin), whose processes must not outlive
# the launcher on any exit path.
# Exits non-zero on the first failure. Runs in well under 60 s.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN="$ROOT/tools/xsite-run"
RSH="$ROOT/tools/xsite-netns-rsh"
ALLPAIRS="$ROOT/tests/launcher/allpairs.py"
PY="$(command -v python3)"
TMP="$(mktemp -d)"
# Launchers started in the background: if a check fails before one is waited for, the EXIT trap
# stops it (SIGTERM: xsite-run stops its ranks and removes its namespaces; SIGKILL after 15 s),
# so that a failing test leaves nothing running.
BG=()
cleanup() {
  local p t
  for p in ${BG[@]+"${BG[@]}"}; do kill -TERM "$p" 2>/dev/null; done
  for p in ${BG[@]+"${BG[@]}"}; do
    for t in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
PASSED=0

fail() { echo "FAIL: $*" >&2; echo "--- stdout" >&2; cat "$TMP/out" >&2 2>/dev/null;
         echo "--- stderr" >&2; cat "$TMP/err" >&2 2>/dev/null; exit 1; }
pass() { PASSED=$((PASSED + 1)); echo "ok   $*"; }

# run ARGS...: runs the launcher, stdout -> $TMP/out, stderr -> $TMP/err, rc -> $RC
run() { "$RUN" "$@" >"$TMP/out" 2>"$TMP/err"; RC=$?; }

expect_rc() { [ "$RC" = "$1" ] || fail "$2: exit code $RC, expected $1"; }

# Processes whose command line holds MARK (a unique number) still alive?
no_leftovers() { ! pgrep -f "$1" >/dev/null || fail "$2: processes left: $(pgrep -af "$1")"; }

# wait_for REGEX N WHAT: waits (30 s at most) until N processes whose whole command line matches
# REGEX run: the ranks themselves, not the launcher, whose own command line holds theirs. On a
# loaded machine the launcher may take seconds to start them all; a signal sent before it has
# installed its handlers is lost (a background job of a script starts with SIGINT ignored), and
# one sent while it still starts ranks interrupts the set-up instead of being forwarded.
wait_for() {
  local t
  for t in $(seq 300); do [ "$(pgrep -fc "^$1\$")" -ge "$2" ] && return 0; sleep 0.1; done
  fail "$3: $2 processes '$1' never ran"
}

# WAN emulators (xsite-wanem) whose launcher, the pid in their namespace names, is gone?
no_orphan_wanem() {
  local p l
  for p in $(pgrep -f "xsite-wanem --a xs[0-9]*-"); do
    l=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | sed -n 's/.*--a xs\([0-9]*\)-.*/\1/p')
    [ -z "$l" ] || kill -0 "$l" 2>/dev/null || fail "$1: emulator $p of the dead launcher $l left"
  done
}

# ---------------------------------------------------------------- loopback mode
mode_tests() {
  local M="$1"; shift   # mode name; remaining args: extra launcher flags
  local X=("$@")

  # env variables and rank numbering, site-major: rank = (s*D + d)*L + l
  run "${X[@]}" --sites 2 --domains 3 --ranks-per-domain 2 -- sh -c \
    'echo "ENV $XSITE_RANK $XSITE_WORLD_SIZE $XSITE_SITE $XSITE_DOMAIN $XSITE_LOCAL_RANK $XSITE_LOCAL_SIZE $RANK $WORLD_SIZE $LOCAL_RANK $LOCAL_WORLD_SIZE $GROUP_RANK $XSITE_STORE_ADDR $MASTER_ADDR $MASTER_PORT $XSITE_IFNAME ${XSITE_NETNS:--}"'
  expect_rc 0 "$M env"
  [ "$(grep -c '^\[[0-9]*\] ENV ' "$TMP/out")" = 12 ] || fail "$M env: expected 12 ranks"
  "$PY" - "$TMP/out" "$M" <<'EOF' || fail "$M env: wrong values"
import sys
S, D, L = 2, 3, 2
lines = [l.split() for l in open(sys.argv[1]) if " ENV " in l]
mode = sys.argv[2]
stores, masters = set(), set()
for f in lines:
    prefix, _, r, ws, s, dom, l, ls, R, W, LR, LW, G, store, maddr, mport, ifname, ns = f
    r = int(r)
    assert prefix == "[%d]" % r, f
    site, rem = divmod(r, D * L)
    d, lr = divmod(rem, L)
    assert (int(s), int(dom), int(l)) == (site, site * D + d, lr), f
    assert (ws, ls, R, W, LR, LW, G) == ("12", "2", str(r), "12", str(lr), "2", str(site * D + d)), f
    host, port = store.rsplit(":", 1)
    assert host == maddr and port != mport, f
    stores.add(store); masters.add(mport)
    if mode == "loopback":
        assert (host, ifname, ns) == ("127.0.0.1", "lo", "-"), f
    else:
        assert host == "10.200.0.1" and ifname == "eth0", f
        assert ns.endswith("-s%dd%d" % (site, d)), f
assert sorted(int(f[2]) for f in lines) == list(range(12))
# loopback mode: site 1 reaches the store through the WAN relay's gateway (docs/launcher.md)
assert len(stores) == (2 if mode == "loopback" else 1) and len(masters) == 1
EOF
  grep -q "2 sites x 3 domains x 2 ranks = 12 ranks ($M mode)" "$TMP/err" || fail "$M: banner line"
  pass "$M: env variables, site-major numbering, banner"

  # stdout stays stdout, stderr stays stderr, every line prefixed, partial line kept
  run "${X[@]}" --sites 1 --domains 1 --ranks-per-domain 3 -- sh -c \
    'echo out$XSITE_RANK; echo err$XSITE_RANK >&2; printf "tail$XSITE_RANK"'
  expect_rc 0 "$M streams"
  for r in 0 1 2; do
    grep -qx "\[$r\] out$r" "$TMP/out" || fail "$M streams: stdout of rank $r"
    grep -qx "\[$r\] tail$r" "$TMP/out" || fail "$M streams: partial line of rank $r"
    grep -qx "\[$r\] err$r" "$TMP/err" || fail "$M streams: stderr of rank $r"
  done
  ! grep -q err "$TMP/out" && ! grep -q out "$TMP/err" || fail "$M streams: mixed"
  pass "$M: [rank] prefixes, stdout/stderr kept apart"

  # worst exit code; killed by a signal counts as 128+sig
  run "${X[@]}" -- sh -c '[ $XSITE_RANK = 3 ] && exit 7; [ $XSITE_RANK = 5 ] && exit 2; exit 0'
  expect_rc 7 "$M max exit code"
  run "${X[@]}" -- sh -c '[ $XSITE_RANK = 2 ] && kill -9 $$; exit 0'
  expect_rc 137 "$M signal exit code"
  pass "$M: exit code is the worst rank's (137 for SIGKILL)"

  # a failing rank stops the others after --grace; grandchildren die too
  local MARK=$((RANDOM + 40000))
  local t0=$SECONDS
  run "${X[@]}" --grace 1 -- sh -c \
    "if [ \$XSITE_RANK = 1 ]; then exit 3; fi; sleep $MARK & sleep $MARK.5; exit 0"
  expect_rc 3 "$M failing rank"
  [ $((SECONDS - t0)) -lt 15 ] || fail "$M failing rank: took $((SECONDS - t0)) s"
  no_leftovers "sleep $MARK" "$M failing rank"
  no_orphan_wanem "$M failing rank"
  pass "$M: failing rank stops the others (--grace), no leftovers"

  # --timeout kills everything and exits 124
  t0=$SECONDS
  run "${X[@]}" --timeout 1 -- sh -c "sleep $MARK & sleep $MARK.25"
  expect_rc 124 "$M timeout"
  [ $((SECONDS - t0)) -lt 15 ] || fail "$M timeout: took $((SECONDS - t0)) s"
  no_leftovers "sleep $MARK" "$M timeout"
  no_orphan_wanem "$M timeout"
  pass "$M: --timeout exits 124, no leftovers"

  # SIGINT (Ctrl-C) to the launcher: forwarded, everything gone, exit 130
  "$RUN" "${X[@]}" -- sh -c "sleep $MARK & sleep $MARK.75" >"$TMP/out" 2>"$TMP/err" &
  local LPID=$!
  BG+=("$LPID")
  wait_for "sleep $MARK\.75" 8 "$M SIGINT: the ranks"
  if [ "$M" = netns ]; then
    pgrep -f "xsite-wanem --a xs$LPID-" >/dev/null || fail "netns: no WAN emulator running"
  fi
  kill -INT $LPID
  wait $LPID; RC=$?
  expect_rc 130 "$M SIGINT"
  no_leftovers "sleep $MARK" "$M SIGINT"
  no_leftovers "xsite-wanem --a xs$LPID-" "$M SIGINT (WAN emulator)"
  if [ "$M" = netns ]; then
    ! ip netns list | grep -q "^xs$LPID-" || fail "netns SIGINT: namespaces left"
    [ ! -e "/etc/netns/xs$LPID-s0r" ] || fail "netns SIGINT: /etc/netns entries left"
  fi
  grep -q "got signal 2" "$TMP/err" || fail "$M SIGINT: no message"
  pass "$M: SIGINT forwarded, exit 130, nothing left"

  # SIGTERM likewise
  "$RUN" "${X[@]}" -- sh -c "sleep $MARK" >"$TMP/out" 2>"$TMP/err" &
  LPID=$!
  BG+=("$LPID")
  wait_for "sleep $MARK" 8 "$M SIGTERM: the ranks"
  kill -TERM $LPID
  wait $LPID; RC=$?
  expect_rc 143 "$M SIGTERM"
  no_leftovers "sleep $MARK" "$M SIGTERM"
  no_leftovers "xsite-wanem --a xs$LPID-" "$M SIGTERM (WAN emulator)"
  if [ "$M" = netns ]; then
    ! ip netns list | grep -q "^xs$LPID-" || fail "netns SIGTERM: namespaces left"
  fi
  pass "$M: SIGTERM forwarded, exit 143, nothing left"

  # every rank reaches the store at rank 0 and every other rank over TCP
  run "${X[@]}" --timeout 40 -- "$PY" "$ALLPAIRS"
  expect_rc 0 "$M allpairs"
  [ "$(grep -c 'allpairs ok' "$TMP/out")" = 8 ] || fail "$M allpairs: not all ranks ok"
  pass "$M: all-pairs TCP connectivity (2x2x2)"

  # --exec-once: runs once, hostfile and rsh agent in the environment
  run "${X[@]}" --exec-once -- sh -c \
    'echo "ONCE ${XSITE_NETNS:--} ${RANK:-unset}"; cat "$XSITE_HOSTFILE"; test -x "$XSITE_NETNS_RSH" && echo RSH'
  expect_rc 0 "$M exec-once"
  [ "$(grep -c '^ONCE' "$TMP/out")" = 1 ] || fail "$M exec-once: not exactly once"
  grep -q "^ONCE .* unset$" "$TMP/out" || fail "$M exec-once: RANK must not be set"
  grep -qx RSH "$TMP/out" || fail "$M exec-once: XSITE_NETNS_RSH"
  if [ "$M" = loopback ]; then
    grep -qx "localhost slots=8" "$TMP/out" || fail "loopback exec-once: hostfile"
  else
    [ "$(grep -Ec '^xs[0-9]+-s[01]d[01] slots=2$' "$TMP/out")" = 4 ] || fail "netns exec-once: hostfile"
    grep -q "^ONCE xs[0-9]*-s0d0 " "$TMP/out" || fail "netns exec-once: not in rank 0's namespace"
  fi
  pass "$M: --exec-once, XSITE_HOSTFILE, XSITE_NETNS_RSH"
}

# bad usage is an error, not a hang
"$RUN" --sites 0 -- true >/dev/null 2>&1 && fail "--sites 0 accepted"
"$RUN" --sites 2 >/dev/null 2>&1 && fail "missing command accepted"
pass "usage errors"

mode_tests loopback --no-netns
grep -q "loopback" "$TMP/err" || fail "loopback mode not announced"
run --no-netns --sites 2 --domains 1 --ranks-per-domain 1 -- true
expect_rc 0 "loopback relay"
grep -q "through xsite-wanrelay" "$TMP/err" || fail "loopback: the WAN relay not announced"
grep -q "less faithful" "$TMP/err" || fail "loopback: no 'less faithful' note"

# ---------------------------------------------------------------- netns mode
if [ "$(id -u)" != 0 ]; then
  echo "SKIP netns-mode tests: not root (xsite-run falls back to loopback mode)"
elif ! command -v ip >/dev/null; then
  echo "SKIP netns-mode tests: iproute2 'ip' not found"
else
  mode_tests netns

  # cross-site routing with 3 sites (a WAN link per site pair)
  run --sites 3 --domains 2 --ranks-per-domain 1 --timeout 40 -v -- "$PY" "$ALLPAIRS"
  expect_rc 0 "netns 3 sites"
  [ "$(grep -c 'allpairs ok' "$TMP/out")" = 6 ] || fail "netns 3 sites: not all ranks ok"
  [ "$(grep -c 'WAN site' "$TMP/err")" = 3 ] || fail "netns 3 sites: expected 3 WAN links in -v"
  [ "$(grep -c 'WAN site.*emulated: 5.5 ms one way, 1000 Mbit/s' "$TMP/err")" = 3 ] ||
    fail "netns 3 sites: expected 3 emulated links (preset default)"
  grep -q "3 WAN links (one per pair of sites)" "$TMP/err" || fail "netns 3 sites: topology banner"
  no_orphan_wanem "netns 3 sites"
  pass "netns: 3 sites, all-pairs TCP across routed WAN links"

  # SIGINT while the network is being built (20 sites: 190 WAN links)
  MARK=$((RANDOM + 40000))
  "$RUN" --sites 20 --domains 1 --ranks-per-domain 1 -- sleep $MARK >"$TMP/out" 2>"$TMP/err" &
  LPID=$!
  BG+=("$LPID")
  for t in $(seq 300); do ip netns list | grep -q "^xs$LPID-" && break; sleep 0.1; done  # building
  ip netns list | grep -q "^xs$LPID-" || fail "netns SIGINT during setup: no namespace made in 30 s"
  kill -INT $LPID
  wait $LPID; RC=$?
  expect_rc 130 "netns SIGINT during setup"
  no_leftovers "sleep $MARK" "netns SIGINT during setup"
  ! ip netns list | grep -q "^xs$LPID-" || fail "netns SIGINT during setup: namespaces left"
  ! ls /etc/netns 2>/dev/null | grep -q "^xs$LPID-" || fail "netns SIGINT during setup: /etc/netns left"
  no_leftovers "xsite-wanem --a xs$LPID-" "netns SIGINT during setup (WAN emulators)"
  pass "netns: SIGINT during network setup, nothing left"

  # the rsh agent runs commands in another namespace, ignoring ssh options;
  # names resolve through the per-namespace /etc/hosts
  run --exec-once -- sh -c \
    'ns=$(sed -n 4p "$XSITE_HOSTFILE" | cut -d" " -f1);
     "$XSITE_NETNS_RSH" -x -o StrictHostKeyChecking=no -p 22 "$ns" ip -4 -o addr show dev eth0;
     getent hosts "$ns"'
  expect_rc 0 "netns rsh agent"
  grep -q "inet 10.200.1.2/24" "$TMP/out" || fail "netns rsh agent: wrong namespace"
  grep -q "^10.200.1.2 " "$TMP/out" || fail "netns rsh agent: namespace name does not resolve"
  pass "netns: xsite-netns-rsh and namespace names in /etc/hosts"

  # each namespace is a host with its own TMPDIR (Open MPI's session directories would collide
  # on a shared /tmp), removed with the namespace
  run --exec-once -- sh -c \
    'for ns in $(cut -d" " -f1 "$XSITE_HOSTFILE"); do
       "$XSITE_NETNS_RSH" "$ns" "echo tmpdir \$TMPDIR; touch \$TMPDIR/mark"; done'
  expect_rc 0 "netns rsh TMPDIR"
  [ "$(grep -c '^tmpdir /.*/xs[0-9]*-s[0-9]*d[0-9]*\.tmp$' "$TMP/out")" = 4 ] ||
    fail "netns rsh TMPDIR: not one per namespace: $(cat "$TMP/out")"
  [ "$(grep '^tmpdir ' "$TMP/out" | sort -u | wc -l)" = 4 ] || fail "netns rsh TMPDIR: shared"
  for d in $(sed -n 's/^tmpdir //p' "$TMP/out"); do
    [ ! -e "$d" ] || fail "netns rsh TMPDIR: $d left after the run"
  done
  pass "netns: xsite-netns-rsh gives every namespace its own TMPDIR"

  # Open MPI across namespaces (only if installed): ranks land in their domains
  if command -v mpirun >/dev/null; then
    run --exec-once --timeout 40 -- sh -c \
      'PMIX_MCA_ptl_tcp_remote_connections=1 mpirun --allow-run-as-root --oversubscribe --bind-to none \
        --hostfile "$XSITE_HOSTFILE" --mca plm_rsh_agent "$XSITE_NETNS_RSH" \
        --mca btl self,tcp --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 \
        -np 8 sh -c "echo MPI \$OMPI_COMM_WORLD_RANK \$(ip -4 -o addr show dev eth0 | cut -d\" \" -f7)"'
    expect_rc 0 "netns mpirun"
    for r in 0 1 2 3 4 5 6 7; do
      s=$((r / 4)); d=$(((r / 2) % 2 + 1))
      grep -qx "MPI $r 10.200.$s.$d/24" "$TMP/out" || fail "netns mpirun: rank $r not in 10.200.$s.$d"
    done
    pass "netns: mpirun starts 8 ranks in their namespaces"
  else
    echo "SKIP mpirun test: Open MPI not installed"
  fi

  mine=$(for p in $(ip netns list | sed -n 's/^xs\([0-9]*\)-.*/\1/p' | sort -u); do
           kill -0 "$p" 2>/dev/null || echo "$p"; done)
  [ -z "$mine" ] || fail "namespaces of dead launchers left: $(ip netns list)"
fi

echo "PASS: $PASSED checks"
