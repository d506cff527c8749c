"""xsite-run's command line: the arguments, the banner of the emulated superfactory, and
main, one launch from the network's set-up to its removal."""

import argparse
import os
import signal
import sys
import time

from .common import (LAUNCHER_DIR, PROG, Interrupted, LauncherError, check_interrupted, log,
                     on_signal)
from .launch import free_ports, rank_env, spawn, stop_ranks, supervise
from .netns import Network, netns_usable, remove_stale_namespaces
from .relay import LESS_FAITHFUL, Relay
from .topology import NIC_NAME, Topology, site_loopback_ip, write_hostfile
from .wan import PRESETS, WANRELAY, queue_arg, wan_params

NETNS_RSH = os.path.join(LAUNCHER_DIR, "xsite-netns-rsh")


def topology_summary(topo, wan, relay=False):
    """What the job runs on: sites, domains, ranks, the WAN links (always printed)."""
    t = topo
    per_site = t.domains * t.local_size
    lines = ["emulated superfactory:"]
    for s in range(t.sites):
        lines.append("  site %d: domains %d-%d, ranks %d-%d"
                     % (s, s * t.domains, (s + 1) * t.domains - 1, s * per_site,
                        (s + 1) * per_site - 1))
    n = t.sites * (t.sites - 1) // 2
    if n and relay:
        for s in range(t.sites):
            lines[1 + s] += ", listening on %s" % site_loopback_ip(s)
        lines.append("  %d WAN link%s (one per pair of sites) through %s, each: %s"
                     % (n, "" if n == 1 else "s", WANRELAY, wan.summary()))
        lines.append("  note: " + LESS_FAITHFUL)
    elif n:
        lines.append("  %d WAN link%s (one per pair of sites), each: %s"
                     % (n, "" if n == 1 else "s", wan.summary()))
    return "\n".join(lines)


def parse_args(argv):
    if "--" in argv:
        i = argv.index("--")
        opts, cmd = argv[:i], argv[i + 1:]
    else:
        opts, cmd = argv, []
    ap = argparse.ArgumentParser(
        prog=PROG,
        usage="%(prog)s [options] -- CMD ARGS...",
        description="Start S*D*L ranks of CMD as an emulated superfactory on this machine.")
    ap.add_argument("--sites", type=int, default=2, metavar="S", help="sites (default 2)")
    ap.add_argument("--domains", type=int, default=2, metavar="D",
                    help="domains per site (default 2)")
    ap.add_argument("--ranks-per-domain", type=int, default=2, metavar="L",
                    help="ranks per domain (default 2)")
    ap.add_argument("--no-netns", action="store_true",
                    help="run every rank on 127.0.0.1 (default when not root)")
    ap.add_argument("--timeout", type=float, default=0, metavar="SEC",
                    help="kill everything after SEC seconds and exit 124 (0: none)")
    ap.add_argument("--grace", type=float, default=10.0, metavar="SEC",
                    help="after a rank fails, kill the others after SEC (default 10)")
    ap.add_argument("--exec-once", action="store_true",
                    help="build the network, run CMD once in rank 0's namespace "
                         "(for mpirun: see XSITE_HOSTFILE, XSITE_NETNS_RSH)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="default",
                    help="WAN link between every pair of sites: default (5.5 ms one way, "
                         "1000 Mbit/s), thin (5.5 ms, 200 Mbit/s), transatlantic (40 ms, "
                         "1000 Mbit/s, 0.1%% loss), none (plain veth, no emulation)")
    ap.add_argument("--wan-delay", type=float, metavar="MS", help="one-way delay, ms")
    ap.add_argument("--wan-rate", type=float, metavar="MBIT",
                    help="rate per direction, Mbit/s (0: unlimited)")
    ap.add_argument("--wan-loss", type=float, metavar="PCT",
                    help="random loss per segment, percent (each segment of a GSO super-packet "
                         "on its own, as on a wire)")
    ap.add_argument("--wan-whole-packet-loss", action="store_true",
                    help="a lost segment takes its whole GSO super-packet (up to 64 KB) with it, "
                         "as netem does on a sending host with TSO: loss in bursts")
    ap.add_argument("--wan-jitter", type=float, metavar="MS",
                    help="random extra delay in [0, MS), never reordering")
    ap.add_argument("--wan-queue", type=queue_arg, metavar="KB|Nbdp",
                    help="drop-tail queue per direction, KB, or a multiple of the link's "
                         "bandwidth-delay product, e.g. 0.5bdp, 1bdp (shallow queues) "
                         "(default: 2 x bandwidth-delay product, at least 1000 KB)")
    ap.add_argument("--nic", choices=sorted(NIC_NAME), default="veth",
                    help="what each domain's network interface is: veth (eth0, a veth pair "
                         "bridged in the site's router; default) or tun (tun0, a point-to-point "
                         "TUN device routed by the site's router, as a WireGuard, GRE or IPsec "
                         "tunnel appears; netns mode only)")
    ap.add_argument("--ipv6", action="store_true",
                    help="give every interface an IPv6 address too (fd00:200:<s>::<d+1>) and "
                         "hand the ranks the store's IPv6 address (XSITE_STORE_ADDR); netns "
                         "mode only")
    ap.add_argument("--print-wan", action="store_true",
                    help="print the WAN link these flags give, and exit (no command needed)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the topology")
    a = ap.parse_args(opts)
    a.wan = wan_params(a, ap)
    if a.print_wan:
        print(a.wan.summary())
        sys.exit(0)
    if not cmd:
        ap.error("missing command after '--'")
    if a.sites < 1 or a.domains < 1 or a.ranks_per_domain < 1:
        ap.error("--sites, --domains and --ranks-per-domain must be >= 1")
    if a.sites > 250 or a.domains > 253:
        ap.error("at most 250 sites and 253 domains per site")
    if a.timeout < 0 or a.grace < 0:
        ap.error("--timeout and --grace must be >= 0")
    return a, cmd


def main(argv):
    args, cmd = parse_args(argv)
    topo = Topology(args.sites, args.domains, args.ranks_per_domain)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    use_netns = not args.no_netns
    if use_netns:
        ok, why = netns_usable()
        if not ok:
            log("%s: falling back to loopback mode (all ranks on 127.0.0.1)" % why)
            use_netns = False
    elif args.no_netns:
        log("--no-netns: loopback mode (all ranks on 127.0.0.1)")

    if not use_netns and (args.nic != "veth" or args.ipv6):
        log("error: --%s needs netns mode (run as root, without --no-netns)"
            % ("ipv6" if args.ipv6 else "nic " + args.nic))
        return 2
    mode = "netns mode" if use_netns else "loopback mode"
    log("%d sites x %d domains x %d ranks = %d ranks (%s)"
        % (topo.sites, topo.domains, topo.local_size, topo.world_size, mode))
    wan = args.wan if use_netns else None
    use_relay = (not use_netns and args.wan.emulated and topo.sites > 1
                 and not args.exec_once)
    if not use_netns and not use_relay and args.wan.emulated and topo.sites > 1:
        log("warning: loopback mode with --exec-once has no WAN emulation: the %s link (%s) "
            "is NOT applied (the relay needs the launcher to start the ranks)"
            % (args.wan.preset, args.wan.summary()))

    net = None
    relay = None
    hostfile = None
    procs = []
    try:
        if use_netns:
            remove_stale_namespaces()
            net = Network(topo, args.verbose, wan, args.nic, args.ipv6)
            t0 = time.time()
            net.setup()
            log(topology_summary(topo, wan))
            if args.verbose:
                log(net.describe())
                log("network ready in %.2fs" % (time.time() - t0))
        elif args.verbose:
            log("topology (loopback mode): %s" % ", ".join(
                "rank %d site %d domain %d local %d" % (r.rank, r.site, r.domain, r.local_rank)
                for r in topo.ranks))
        store_port, master_port = free_ports(2)
        r0 = topo.ranks[0]
        store = (r0.ip6 or r0.ip, store_port)
        if use_relay:
            relay = Relay(topo, args.wan, store, args.verbose)
            wan = args.wan
            log(topology_summary(topo, wan, relay=True))
        if args.verbose:
            log("store %s port %d, MASTER_ADDR %s MASTER_PORT %d"
                % (store[0], store[1], r0.ip, master_port))

        if args.exec_once:
            env = rank_env(topo, r0, store, master_port, wan)
            for k in ("XSITE_RANK", "XSITE_SITE", "XSITE_DOMAIN", "XSITE_LOCAL_RANK",
                      "RANK", "LOCAL_RANK", "GROUP_RANK"):
                del env[k]   # would leak into ranks that mpirun starts locally
            hostfile = write_hostfile(topo, net.domain_ns if net is not None else None)
            env["XSITE_HOSTFILE"] = hostfile
            env["XSITE_NETNS_RSH"] = NETNS_RSH
            argv = (["ip", "netns", "exec", r0.netns] if net else []) + cmd
            check_interrupted()
            procs.append(spawn(argv, env, 0, prefix_output=False))
        else:
            for rk in topo.ranks:
                check_interrupted()
                argv = (["ip", "netns", "exec", rk.netns] if net else []) + cmd
                procs.append(spawn(argv, rank_env(topo, rk, store, master_port, wan, relay),
                                   rk.rank, prefix_output=True))
        emulators = net.emulators if net is not None else ()
        if relay is not None:
            emulators = [("%s (loopback mode)" % WANRELAY, relay.proc)]
        return supervise(procs, args.timeout, args.grace, emulators)
    except Interrupted as e:
        log("interrupted during setup")
        return 128 + e.signum
    except LauncherError as e:
        log("error: %s" % e)
        return 2
    finally:
        stop_ranks(procs)  # first: they may still run if we got here by an exception
        if net is not None:
            net.cleanup()
        if relay is not None:
            relay.stop()
        if hostfile:
            try:
                os.unlink(hostfile)
            except OSError:
                pass

