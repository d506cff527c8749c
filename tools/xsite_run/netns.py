"""Netns mode (root): a network namespace per domain, a router namespace per site (a bridge,
or TUN devices with --nic tun), the WAN links between the routers with their xsite-wanem
processes, name resolution inside the namespaces; and the removal of it all, also of what
launchers killed by SIGKILL left behind."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

from .common import LauncherError, check_interrupted, log
from .topology import NIC_NAME, domain_ip, gateway_ip, site_subnet, wan_addrs
from .wan import WANEM, find_emulator, start_until_ready, stop_process

ETC_NETNS = "/etc/netns"
NS_PREFIX = "xs"            # every namespace we create is named xs<pid>-...
WAN_TXQUEUELEN = 5000       # TUN qdisc: never the bottleneck, the emulator's queue is


class Network:
    """Creates the namespaces and links of one launch and removes them again."""

    def __init__(self, topo, verbose, wan, nic="veth", ipv6=False):
        self.topo = topo
        self.verbose = verbose
        self.wan = wan
        self.nic = nic            # what a domain's NIC is: "veth" (bridged) or "tun"
        self.ipv6 = ipv6          # every interface gets an IPv6 address too
        self.wanem = find_emulator() if wan.emulated or nic == "tun" else None
        self.tag = "%s%d" % (NS_PREFIX, os.getpid())
        self.namespaces = []      # every namespace we (try to) create, in order
        self.links = []           # descriptions, for -v
        self.wan_cleanups = []    # callables undoing non-netns WAN state
        self.emulators = []       # (link name, Popen) of every xsite-wanem we started
        self.etc_dirs = []        # /etc/netns/NAME directories we made

    # names -----------------------------------------------------------------
    def router_ns(self, s):
        return "%s-s%dr" % (self.tag, s)

    def domain_ns(self, s, d):
        return "%s-s%dd%d" % (self.tag, s, d)

    # helpers ---------------------------------------------------------------
    def ip(self, *args, ns=None):
        check_interrupted()
        cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        check_interrupted()  # a terminal's Ctrl-C also hits this child
        if p.returncode != 0:
            raise LauncherError("'%s' failed: %s" % (" ".join(cmd), p.stderr.strip()))
        return p.stdout

    def sysctl(self, ns, key, value):
        check_interrupted()
        path = "/proc/sys/" + key.replace(".", "/")
        p = subprocess.run(["ip", "netns", "exec", ns, "sh", "-c",
                            "echo %s > %s" % (value, path)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        check_interrupted()
        if p.returncode != 0:
            raise LauncherError("sysctl %s=%s in %s failed: %s"
                                % (key, value, ns, p.stderr.strip()))

    def add_tun(self, ns, dev):
        """A TUN device for xsite-wanem to attach to (its queue, not the qdisc, is the limit)."""
        self.ip("tuntap", "add", "dev", dev, "mode", "tun", "vnet_hdr", ns=ns)
        self.ip("link", "set", dev, "txqueuelen", str(WAN_TXQUEUELEN), ns=ns)

    def add_ns(self, name):
        self.namespaces.append(name)   # recorded first: cleanup never misses it
        self.ip("netns", "add", name)
        self.ip("link", "set", "lo", "up", ns=name)

    # setup -----------------------------------------------------------------
    def setup(self):
        t = self.topo
        for s in range(t.sites):
            r = self.router_ns(s)
            self.add_ns(r)
            self.sysctl(r, "net.ipv4.ip_forward", 1)
            if self.ipv6:
                self.sysctl(r, "net.ipv6.conf.all.forwarding", 1)
            if self.nic == "veth":
                self.ip("link", "add", "br0", "type", "bridge", ns=r)
                self.ip("addr", "add", gateway_ip(s) + "/24", "dev", "br0", ns=r)
                if self.ipv6:
                    self.ip("addr", "add", gateway_ip(s, v6=True) + "/64", "dev", "br0", "nodad",
                            ns=r)
                self.ip("link", "set", "br0", "up", ns=r)
            for d in range(t.domains):
                dn = self.domain_ns(s, d)
                self.add_ns(dn)
                if self.nic == "veth":
                    self.add_veth_nic(s, d)
                else:
                    self.add_tun_nic(s, d)
        k = 0
        for a in range(t.sites):
            for b in range(a + 1, t.sites):
                self.make_wan_link(a, b, k)
                k += 1
        for rk in t.ranks:
            s, d = rk.site, rk.domain - rk.site * t.domains
            rk.netns = self.domain_ns(s, d)
            rk.ip = domain_ip(s, d)
            rk.ip6 = domain_ip(s, d, v6=True) if self.ipv6 else ""
            rk.ifname = NIC_NAME[self.nic]
        self.write_etc_files()

    def add_veth_nic(self, s, d):
        """The domain's eth0: a veth pair whose router end is a port of the site's bridge."""
        r, dn, port = self.router_ns(s), self.domain_ns(s, d), "d%d" % d
        # Created directly inside the namespaces: no name clashes in the root namespace
        # between concurrent launches.
        self.ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", dn, ns=r)
        self.ip("link", "set", port, "master", "br0", ns=r)
        self.ip("link", "set", port, "up", ns=r)
        self.ip("addr", "add", domain_ip(s, d) + "/24", "dev", "eth0", ns=dn)
        if self.ipv6:
            self.ip("addr", "add", domain_ip(s, d, v6=True) + "/64", "dev", "eth0", "nodad", ns=dn)
        self.ip("link", "set", "eth0", "up", ns=dn)
        self.ip("route", "add", "default", "via", gateway_ip(s), ns=dn)
        if self.ipv6:
            self.ip("-6", "route", "add", "default", "via", gateway_ip(s, v6=True), ns=dn)
        self.links.append("%s:%s <-> %s:eth0 %s (site %d LAN)"
                          % (r, port, dn, domain_ip(s, d), s))

    def add_tun_nic(self, s, d):
        """The domain's tun0: a point-to-point TUN device, the way a WireGuard, GRE or IPsec
        tunnel appears to a host (no L2, no broadcast, operstate "unknown"). An xsite-wanem
        without impairment forwards its packets to a TUN device d<d> of the site router."""
        r, dn, port = self.router_ns(s), self.domain_ns(s, d), "d%d" % d
        for ns, dev, local, peer in ((r, port, gateway_ip(s), domain_ip(s, d)),
                                     (dn, "tun0", domain_ip(s, d), gateway_ip(s))):
            self.add_tun(ns, dev)
            self.ip("addr", "add", local, "peer", peer, "dev", dev, ns=ns)
            self.ip("link", "set", dev, "up", ns=ns)
        if self.ipv6:
            gw6, ip6 = gateway_ip(s, v6=True), domain_ip(s, d, v6=True)
            for ns, dev, local, peer in ((r, port, gw6, ip6), (dn, "tun0", ip6, gw6)):
                self.ip("-6", "addr", "add", local, "peer", peer, "dev", dev, "nodad", ns=ns)
            self.ip("-6", "route", "add", "default", "dev", "tun0", ns=dn)
        self.ip("route", "add", "default", "dev", "tun0", ns=dn)
        self.start_wanem("%s:%s" % (r, port), "%s:tun0" % dn, seed=1, impair=False)
        self.links.append("%s:%s <-> %s:tun0 %s (site %d LAN, TUN, forwarded by %s)"
                          % (r, port, dn, domain_ip(s, d), s, WANEM))

    def write_etc_files(self):
        """Name resolution inside our namespaces, via /etc/netns/NAME/.

        `ip netns exec` bind-mounts these over /etc/hosts and /etc/resolv.conf:
        every domain namespace name resolves to its eth0 address (what
        mpirun's hostfile names), and DNS, unreachable from the namespaces,
        fails at once instead of after resolver timeouts.
        """
        try:
            with open("/etc/hosts") as f:
                base = f.read()
        except OSError:
            base = "127.0.0.1 localhost\n"
        t = self.topo
        extra = "".join("%s %s\n" % (domain_ip(s, d), self.domain_ns(s, d))
                        for s in range(t.sites) for d in range(t.domains))
        hosts = base.rstrip("\n") + "\n# xsite-run %s\n" % self.tag + extra
        for n in self.namespaces:
            check_interrupted()
            d = os.path.join(ETC_NETNS, n)
            self.etc_dirs.append(d)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "hosts"), "w") as f:
                f.write(hosts)
            with open(os.path.join(d, "resolv.conf"), "w") as f:
                f.write("# xsite-run: no DNS inside the emulated superfactory\n"
                        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    def make_wan_link(self, a, b, k):
        """Joins the routers of sites a < b with the k-th WAN link.

        Interface w<b> in router a and w<a> in router b, a /30 between them
        and a route to the other site's /24. Emulated (every preset but
        "none"): two TUN devices with one xsite-wanem process forwarding
        between them; preset "none": a plain veth pair.
        """
        ra, rb = self.router_ns(a), self.router_ns(b)
        ia, ib = "w%d" % b, "w%d" % a
        addr_a, addr_b = wan_addrs(k)
        if self.wan.emulated:
            self.add_tun(ra, ia)
            self.add_tun(rb, ib)
            kind = "emulated: " + self.wan.summary()
        else:
            self.ip("link", "add", ia, "type", "veth", "peer", "name", ib, "netns", rb, ns=ra)
            kind = "veth"
        self.ip("addr", "add", addr_a + "/30", "dev", ia, ns=ra)
        self.ip("addr", "add", addr_b + "/30", "dev", ib, ns=rb)
        self.ip("link", "set", ia, "up", ns=ra)
        self.ip("link", "set", ib, "up", ns=rb)
        self.ip("route", "add", site_subnet(b), "via", addr_b, ns=ra)
        self.ip("route", "add", site_subnet(a), "via", addr_a, ns=rb)
        if self.ipv6:
            a6, b6 = wan_addrs(k, v6=True)
            self.ip("-6", "addr", "add", a6 + "/126", "dev", ia, "nodad", ns=ra)
            self.ip("-6", "addr", "add", b6 + "/126", "dev", ib, "nodad", ns=rb)
            self.ip("-6", "route", "add", site_subnet(b, v6=True), "via", b6, ns=ra)
            self.ip("-6", "route", "add", site_subnet(a, v6=True), "via", a6, ns=rb)
        if self.wan.emulated:
            self.start_wanem("%s:%s" % (ra, ia), "%s:%s" % (rb, ib), seed=k + 1)
        self.links.append("%s:%s %s <-> %s:%s %s (WAN site %d - site %d, %s)"
                          % (ra, ia, addr_a, rb, ib, addr_b, a, b, kind))

    def start_wanem(self, end_a, end_b, seed, impair=True):
        """Starts one emulator between two TUN devices; returns once it has attached.
        impair=False: a plain forwarder (no delay, rate limit or loss)."""
        check_interrupted()
        argv = [self.wanem, "--a", end_a, "--b", end_b, "--seed", str(seed),
                "--die-with-parent"] + (self.wan.wanem_args() if impair else [])
        if self.verbose:
            argv.append("--stats")

        def started(p):
            self.wan_cleanups.append(lambda: stop_process(p))
            self.emulators.append(("%s <-> %s" % (end_a, end_b), p))

        p, ready = start_until_ready(argv, started)
        if ready != b"ready\n":
            code = p.poll()
            raise LauncherError("%s between %s and %s %s (see its message above)"
                                % (WANEM, end_a, end_b,
                                   "exited with code %d" % code if code is not None
                                   else "did not become ready"))

    # cleanup ---------------------------------------------------------------
    def cleanup(self):
        """Kills whatever still runs in our namespaces, then deletes them.

        Never raises; deleting a namespace deletes the veths and bridge in it.
        """
        for fn in reversed(self.wan_cleanups):
            try:
                fn()
            except Exception as e:  # keep going: remove everything we can
                log("WAN cleanup failed: %s" % e)
        existing = set(list_netns())
        mine = [n for n in self.namespaces if n in existing]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = []
            for n in mine:
                pids += netns_pids(n)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            if sig == signal.SIGTERM:
                deadline = time.time() + 1.0
                while time.time() < deadline and any(_alive(p) for p in pids):
                    time.sleep(0.05)
        for n in reversed(mine):
            p = subprocess.run(["ip", "netns", "del", n], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                log("could not delete namespace %s: %s" % (n, p.stderr.strip()))
        for d in self.etc_dirs:
            shutil.rmtree(d, ignore_errors=True)
        for n in self.namespaces:  # xsite-netns-rsh's per-namespace TMPDIR
            shutil.rmtree(netns_tmpdir(n), ignore_errors=True)

    def describe(self):
        t = self.topo
        lines = ["topology (netns mode):"]
        for s in range(t.sites):
            lan = ("bridge br0 %s/24" % gateway_ip(s) if self.nic == "veth"
                   else "TUN d0..d%d %s" % (t.domains - 1, gateway_ip(s)))
            lines.append("  site %d: router ns %s, %s, ip_forward=1"
                         % (s, self.router_ns(s), lan))
            nic = NIC_NAME[self.nic]
            for d in range(t.domains):
                g = s * t.domains + d
                ranks = [rk.rank for rk in t.ranks if rk.domain == g]
                lines.append("    domain %d (site %d, local %d): ns %s, %s %s%s, gw %s, ranks %s"
                             % (g, s, d, self.domain_ns(s, d), nic, domain_ip(s, d),
                                "/24" if self.nic == "veth" else "", gateway_ip(s), ranks))
        lines.append("  links:")
        lines += ["    " + l for l in self.links]
        return "\n".join(lines)


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def list_netns():
    try:
        return sorted(os.listdir("/var/run/netns"))
    except OSError:
        return []


def netns_tmpdir(name):
    """The TMPDIR xsite-netns-rsh gives commands it runs in namespace `name` (its own /tmp)."""
    return os.path.join(tempfile.gettempdir(), name + ".tmp")


def netns_pids(name):
    p = subprocess.run(["ip", "netns", "pids", name], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return [int(x) for x in p.stdout.split() if x.isdigit() and int(x) != os.getpid()]


def remove_stale_namespaces():
    """Deletes namespaces left by launchers that died by SIGKILL."""
    for n in list_netns():
        if not n.startswith(NS_PREFIX) or "-" not in n:
            continue
        pid = n[len(NS_PREFIX):n.index("-")]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        for p in netns_pids(n):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        subprocess.run(["ip", "netns", "del", n], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(os.path.join(ETC_NETNS, n), ignore_errors=True)
        shutil.rmtree(netns_tmpdir(n), ignore_errors=True)
        log("removed stale namespace %s" % n)


def netns_usable():
    if os.geteuid() != 0:
        return False, "not root"
    if shutil.which("ip") is None:
        return False, "iproute2 'ip' not found"
    return True, ""

