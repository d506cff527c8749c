"""Loopback mode's WAN (not root, or --no-netns): one xsite-wanrelay process, a user-space TCP
relay with the emulator's link model between the sites."""

from .common import LauncherError
from .topology import site_loopback_ip
from .wan import WANRELAY, find_emulator, start_until_ready, stop_process

RELAY_IP = "127.10.254.1"    # the relay's ports for connections across sites
LESS_FAITHFUL = ("user-space TCP relay: less faithful than netns mode (the relay terminates "
                 "TCP, so the ranks' congestion control never sees the long pipe; the queue "
                 "limit pushes back instead of dropping; a loss event holds its connection for "
                 "one round trip instead of dropping a segment)")


class Relay:
    """Loopback mode's WAN: one xsite-wanrelay process for the whole job.

    Every site listens on its own loopback address; the ranks of site s > 0 reach
    the store through the relay's gateway port for s, which shows them the
    addresses of other sites' ranks as relay ports (docs/launcher.md)."""

    def __init__(self, topo, wan, store, verbose):
        path = find_emulator(WANRELAY, "XSITE_WANRELAY", "the user-space WAN relay",
                             "no WAN emulation in loopback mode")
        self.store = store
        self.gateways = {}
        argv = [path, "--store", "%s:%d" % store, "--relay-ip", RELAY_IP,
                "--die-with-parent"] + wan.wanem_args()
        for s in range(topo.sites):
            argv += ["--site-ip", "%d=%s" % (s, site_loopback_ip(s))]
        if verbose:
            argv.append("--stats")
        self.proc, ready = start_until_ready(argv)
        words = ready.decode(errors="replace").split()
        if not words or words[0] != "ready":
            self.stop()
            raise LauncherError("%s did not become ready (see its message above)" % WANRELAY)
        for w in words[1:]:
            site, port = w.split("=")
            self.gateways[int(site)] = int(port)

    def store_for(self, site):
        """The store address the ranks of `site` dial (site 0: the store itself)."""
        if site == 0:
            return self.store
        return ("127.0.0.1", self.gateways[site])

    def stop(self):
        stop_process(self.proc)
