"""Ranks, sites and domains, and where they sit on the network: the address plans (IPv4 and,
with --ipv6, IPv6) and Open MPI's hostfile. Pure: nothing here touches the system but the
hostfile."""

import os
import tempfile

NIC_NAME = {"veth": "eth0", "tun": "tun0"}  # --nic: a domain's interface


class Rank:
    __slots__ = ("rank", "site", "domain", "local_rank", "netns", "ip", "ip6", "ifname")

    def __init__(self, rank, site, domain, local_rank):
        self.rank = rank
        self.site = site
        self.domain = domain          # global domain index s*D+d
        self.local_rank = local_rank
        self.netns = ""
        self.ip = "127.0.0.1"
        self.ip6 = ""                 # --ipv6: the domain's IPv6 address
        self.ifname = "lo"


class Topology:
    def __init__(self, sites, domains, ranks_per_domain):
        self.sites = sites
        self.domains = domains
        self.local_size = ranks_per_domain
        self.ranks = []
        for s in range(sites):
            for d in range(domains):
                for l in range(ranks_per_domain):
                    r = (s * domains + d) * ranks_per_domain + l
                    self.ranks.append(Rank(r, s, s * domains + d, l))

    @property
    def world_size(self):
        return len(self.ranks)


# Netns mode's address plan. IPv4: domain d of site s is 10.200.<s>.<d+1>/24 behind its router
# 10.200.<s>.254, and the k-th pair of sites is joined by a /30 of 10.201.0.0/16. --ipv6 (v6=True):
# the same plan in fd00:200::/32 (a /64 per site) and fd00:201::/32 (a /126 per pair of sites).
def domain_ip(site, d, v6=False):
    return ("fd00:200:%x::%x" if v6 else "10.200.%d.%d") % (site, d + 1)


def gateway_ip(site, v6=False):
    return ("fd00:200:%x::fe" if v6 else "10.200.%d.254") % site


def site_subnet(site, v6=False):
    return ("fd00:200:%x::/64" if v6 else "10.200.%d.0/24") % site


def wan_addrs(k, v6=False):
    """The link of the k-th site pair: (addr of lower site, addr of higher)."""
    if v6:
        return ("fd00:201:%x::1" % k, "fd00:201:%x::2" % k)
    hi, lo = divmod(k, 64)
    base = lo * 4
    return ("10.201.%d.%d" % (hi, base + 1), "10.201.%d.%d" % (hi, base + 2))


def site_loopback_ip(site):
    """Loopback mode with the relay: the address the ranks of a site listen on."""
    return "127.10.%d.1" % site


def write_hostfile(topo, domain_ns=None):
    """Open MPI's hostfile (--exec-once), a temporary file; returns its path. One line
    "<namespace> slots=<L>" per domain in rank order, domain_ns(s, d) naming the namespaces
    (netns mode); without domain_ns (loopback mode) "localhost slots=<S*D*L>"."""
    fd, path = tempfile.mkstemp(prefix="xsite-hostfile-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        if domain_ns is None:
            f.write("localhost slots=%d\n" % topo.world_size)
        else:
            for s in range(topo.sites):
                for d in range(topo.domains):
                    f.write("%s slots=%d\n" % (domain_ns(s, d), topo.local_size))
    return path
