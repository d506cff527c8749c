"""Unit tests of the launcher's package (tools/xsite_run): the parts that need no root, no network
namespace and no emulator. ctest launcher.xsite_run_unit; by hand (any user, about a second):

    /usr/bin/python3 tests/launcher/test_xsite_run_unit.py -v

The end-to-end behaviour (namespaces, emulators, signals) is tests/launcher/test_xsite_run.sh's.
"""

import argparse
import contextlib
import io
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "tools")
sys.dont_write_bytecode = True
sys.path.insert(0, TOOLS)

from xsite_run import cli, common, launch, netns, relay, topology, wan  # noqa: E402
from xsite_run.topology import Topology  # noqa: E402


def parse(*argv):
    """cli.parse_args of argv; the command defaults to `true`."""
    argv = list(argv)
    if "--" not in argv:
        argv += ["--", "true"]
    return cli.parse_args(argv)


def parse_error(*argv):
    """The message of the usage error parse_args stops with (exit code 2)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            cli.parse_args(list(argv))
    except SystemExit as e:
        assert e.code == 2, e.code
    else:
        raise AssertionError("%s accepted" % (argv,))
    lines = err.getvalue().splitlines()
    assert lines[0] == "usage: xsite-run [options] -- CMD ARGS...", lines
    return lines[-1]


def executable(path, text="#!/bin/sh\nexit 0\n"):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


class TopologyTest(unittest.TestCase):
    def test_ranks_are_site_major(self):
        t = Topology(3, 2, 4)
        self.assertEqual(t.world_size, 24)
        for r, rk in enumerate(t.ranks):
            self.assertEqual(rk.rank, r)
            s, rest = divmod(r, 2 * 4)
            d, l = divmod(rest, 4)
            self.assertEqual((rk.site, rk.domain, rk.local_rank), (s, s * 2 + d, l))
        rk = t.ranks[13]   # (s*D + d)*L + l = (1*2 + 1)*4 + 1
        self.assertEqual((rk.site, rk.domain, rk.local_rank), (1, 3, 1))

    def test_loopback_defaults(self):
        rk = Topology(2, 2, 2).ranks[5]
        self.assertEqual((rk.site, rk.domain, rk.local_rank), (1, 2, 1))
        self.assertEqual((rk.netns, rk.ip, rk.ip6, rk.ifname), ("", "127.0.0.1", "", "lo"))

    def test_ipv4_plan(self):
        self.assertEqual(topology.domain_ip(0, 0), "10.200.0.1")
        self.assertEqual(topology.domain_ip(7, 252), "10.200.7.253")
        self.assertEqual(topology.gateway_ip(3), "10.200.3.254")
        self.assertEqual(topology.site_subnet(2), "10.200.2.0/24")
        self.assertEqual(topology.wan_addrs(0), ("10.201.0.1", "10.201.0.2"))
        self.assertEqual(topology.wan_addrs(1), ("10.201.0.5", "10.201.0.6"))
        self.assertEqual(topology.wan_addrs(63), ("10.201.0.253", "10.201.0.254"))
        self.assertEqual(topology.wan_addrs(64), ("10.201.1.1", "10.201.1.2"))
        self.assertEqual(topology.site_loopback_ip(3), "127.10.3.1")

    def test_wan_links_are_disjoint_30s(self):
        nets = set()
        for k in range(4096):
            a, b = topology.wan_addrs(k)
            net = ipaddress.ip_network(a + "/30", strict=False)
            self.assertIn(ipaddress.ip_address(b), net)
            self.assertNotIn(net.network_address, (ipaddress.ip_address(a),
                                                   ipaddress.ip_address(b)))
            nets.add(net)
        self.assertEqual(len(nets), 4096)

    def test_ipv6_plan(self):
        self.assertEqual(topology.domain_ip(0, 0, v6=True), "fd00:200:0::1")
        self.assertEqual(topology.domain_ip(10, 15, v6=True), "fd00:200:a::10")
        self.assertEqual(topology.gateway_ip(10, v6=True), "fd00:200:a::fe")
        self.assertEqual(topology.site_subnet(1, v6=True), "fd00:200:1::/64")
        self.assertEqual(topology.wan_addrs(17, v6=True), ("fd00:201:11::1", "fd00:201:11::2"))
        for s, d in ((0, 0), (249, 252)):
            self.assertIn(ipaddress.ip_address(topology.domain_ip(s, d, v6=True)),
                          ipaddress.ip_network(topology.site_subnet(s, v6=True)))
            self.assertIn(ipaddress.ip_address(topology.gateway_ip(s, v6=True)),
                          ipaddress.ip_network(topology.site_subnet(s, v6=True)))

    def test_hostfile(self):
        t = Topology(2, 3, 4)
        path = topology.write_hostfile(t)
        try:
            with open(path) as f:
                self.assertEqual(f.read(), "localhost slots=24\n")
        finally:
            os.unlink(path)
        net = netns.Network(Topology(2, 2, 3), False, wan.WanParams("none", 0, 0, 0, 0, 0))
        path = topology.write_hostfile(net.topo, net.domain_ns)
        try:
            with open(path) as f:
                tag = "xs%d" % os.getpid()
                self.assertEqual(f.read(), "".join("%s-s%dd%d slots=3\n" % (tag, s, d)
                                                   for s in range(2) for d in range(2)))
            self.assertTrue(os.path.basename(path).startswith("xsite-hostfile-"))
        finally:
            os.unlink(path)
        self.assertEqual(net.router_ns(1), "xs%d-s1r" % os.getpid())


class WanTest(unittest.TestCase):
    def test_presets(self):
        self.assertEqual(sorted(wan.PRESETS), ["default", "none", "thin", "transatlantic"])
        self.assertEqual(wan.PRESETS["default"], dict(delay=5.5, rate=1000.0, loss=0.0,
                                                      jitter=0.0))
        self.assertEqual(wan.PRESETS["thin"]["rate"], 200.0)
        self.assertEqual((wan.PRESETS["transatlantic"]["delay"],
                          wan.PRESETS["transatlantic"]["loss"]), (40.0, 0.1))
        self.assertIsNone(wan.PRESETS["none"])

    def test_bdp(self):
        self.assertAlmostEqual(wan.bdp_kb(1000, 5.5, 0), 1375.0)  # 1 Gbit/s x 11 ms
        self.assertAlmostEqual(wan.bdp_kb(200, 4, 1), 250.0)      # jitter counts
        self.assertEqual(wan.default_queue_kb(1000, 5.5, 0), 2750)
        self.assertEqual(wan.default_queue_kb(1000, 40, 0), 20000)
        self.assertEqual(wan.default_queue_kb(200, 5.5, 0), 1000.0)  # at least 1000 KB

    def test_queue_arg(self):
        self.assertEqual(wan.queue_arg("2750"), ("kb", 2750.0))
        self.assertEqual(wan.queue_arg(" 0.5BDP "), ("bdp", 0.5))
        self.assertEqual(wan.queue_arg("2bdp"), ("bdp", 2.0))
        for bad in ("x", "bdp", "2 KB", "1.5.bdp"):
            with self.assertRaises(argparse.ArgumentTypeError) as cm:
                wan.queue_arg(bad)
            self.assertEqual(str(cm.exception),
                             "'%s' is not KB (e.g. 2750) nor a multiple of the bandwidth-delay "
                             "product (e.g. 0.5bdp)" % bad)

    def test_default_link(self):
        w = parse()[0].wan
        self.assertEqual((w.preset, w.delay, w.rate, w.loss, w.jitter, w.queue_kb),
                         ("default", 5.5, 1000.0, 0.0, 0.0, 2750))
        self.assertTrue(w.emulated)
        self.assertEqual(w.summary(), "5.5 ms one way, 1000 Mbit/s, loss 0%, jitter 0 ms, queue "
                                      "2750 KB per direction (preset default)")
        self.assertEqual(w.wanem_args(), ["--delay", "5.5", "--rate", "1000", "--loss", "0",
                                          "--jitter", "0", "--queue", "2750"])

    def test_flags_over_preset(self):
        w = parse("--preset", "thin", "--wan-delay", "20", "--wan-jitter", "5",
                  "--wan-loss", "0.5", "--wan-whole-packet-loss")[0].wan
        self.assertEqual((w.delay, w.rate, w.loss, w.jitter), (20.0, 200.0, 0.5, 5.0))
        self.assertEqual(w.queue_kb, 2500)  # 2 x 200 Mbit/s x 2 x 25 ms
        self.assertEqual(w.preset, "thin + --wan-delay --wan-loss --wan-jitter")
        self.assertIn("loss 0.5% of whole GSO packets", w.summary())
        self.assertEqual(w.wanem_args()[-1], "--whole-packet-loss")

    def test_queue_in_bdp(self):
        w = parse("--preset", "thin", "--wan-queue", "0.5bdp")[0].wan
        self.assertEqual(w.queue_kb, 137.5)  # half of 200 Mbit/s x 11 ms
        self.assertEqual(w.preset, "thin + --wan-queue")
        self.assertEqual(parse("--wan-queue", "1bdp")[0].wan.queue_kb, 1375.0)
        self.assertEqual(parse("--wan-queue", "0.001bdp")[0].wan.queue_kb, 3.0)  # 2 packets
        self.assertEqual(parse("--wan-queue", "300")[0].wan.queue_kb, 300.0)

    def test_unlimited_rate_and_none(self):
        w = parse("--wan-rate", "0")[0].wan
        self.assertIn("unlimited rate", w.summary())
        self.assertEqual(w.queue_kb, 1000.0)
        w = parse("--preset", "none")[0].wan
        self.assertFalse(w.emulated)
        self.assertEqual(w.summary(), "plain veth (preset none: no delay, rate limit or loss)")

    def test_wan_errors(self):
        cases = [
            (("--preset", "none", "--wan-rate", "5"), "--preset none is a plain veth link "
             "without emulation: drop --wan-rate or choose another preset"),
            (("--preset", "none", "--wan-whole-packet-loss"), "--preset none is a plain veth "
             "link without emulation: drop --wan-whole-packet-loss or choose another preset"),
            (("--wan-delay", "-1"), "--wan-delay and --wan-jitter must be in [0, 60000] ms"),
            (("--wan-jitter", "60001"), "--wan-delay and --wan-jitter must be in [0, 60000] ms"),
            (("--wan-rate", "-1"), "--wan-rate must be >= 0 Mbit/s (0: unlimited)"),
            (("--wan-loss", "100"), "--wan-loss must be in [0, 100) percent"),
            (("--wan-queue", "0"), "--wan-queue must be > 0"),
            (("--wan-rate", "0", "--wan-queue", "1bdp"), "--wan-queue 1bdp needs a rate and a "
             "delay"),
            (("--wan-delay", "0", "--wan-queue", "0.5bdp"), "--wan-queue 0.5bdp needs a rate "
             "and a delay"),
            (("--preset", "lan"), "argument --preset: invalid choice: 'lan'"),
        ]
        for argv, msg in cases:
            with self.subTest(argv=argv):
                self.assertIn("xsite-run: error: " + msg, parse_error(*argv, "--", "true"))


class ArgumentsTest(unittest.TestCase):
    def test_defaults(self):
        a, cmd = cli.parse_args(["--", "prog", "--sites", "-v"])
        self.assertEqual(cmd, ["prog", "--sites", "-v"])  # after "--": the command's own
        self.assertEqual((a.sites, a.domains, a.ranks_per_domain), (2, 2, 2))
        self.assertEqual((a.timeout, a.grace, a.nic, a.preset), (0, 10.0, "veth", "default"))
        self.assertFalse(a.no_netns or a.exec_once or a.ipv6 or a.verbose or a.print_wan)

    def test_errors(self):
        cases = [
            ((), "missing command after '--'"),
            (("--sites", "2"), "missing command after '--'"),
            (("--sites", "0", "--", "true"), "--sites, --domains and --ranks-per-domain must "
             "be >= 1"),
            (("--ranks-per-domain", "0", "--", "true"), "--sites, --domains and "
             "--ranks-per-domain must be >= 1"),
            (("--sites", "251", "--", "true"), "at most 250 sites and 253 domains per site"),
            (("--domains", "254", "--", "true"), "at most 250 sites and 253 domains per site"),
            (("--timeout", "-1", "--", "true"), "--timeout and --grace must be >= 0"),
            (("--grace", "-0.5", "--", "true"), "--timeout and --grace must be >= 0"),
            (("--nic", "eth", "--", "true"), "argument --nic: invalid choice: 'eth'"),
            (("--wan-queue", "deep", "--", "true"), "argument --wan-queue: 'deep' is not KB "
             "(e.g. 2750) nor a multiple of the bandwidth-delay product (e.g. 0.5bdp)"),
        ]
        for argv, msg in cases:
            with self.subTest(argv=argv):
                self.assertIn("xsite-run: error: " + msg, parse_error(*argv))

    def test_print_wan_needs_no_command(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), self.assertRaises(SystemExit) as cm:
            cli.parse_args(["--preset", "transatlantic", "--print-wan"])
        self.assertEqual(cm.exception.code, 0)
        self.assertEqual(out.getvalue(), "40 ms one way, 1000 Mbit/s, loss 0.1%, jitter 0 ms, "
                                         "queue 20000 KB per direction (preset transatlantic)\n")

    def test_topology_summary(self):
        w = parse()[0].wan
        self.assertEqual(cli.topology_summary(Topology(2, 2, 2), w), "\n".join([
            "emulated superfactory:",
            "  site 0: domains 0-1, ranks 0-3",
            "  site 1: domains 2-3, ranks 4-7",
            "  1 WAN link (one per pair of sites), each: " + w.summary()]))
        text = cli.topology_summary(Topology(3, 1, 2), w, relay=True).splitlines()
        self.assertEqual(text[3], "  site 2: domains 2-2, ranks 4-5, listening on 127.10.2.1")
        self.assertEqual(text[4], "  3 WAN links (one per pair of sites) through xsite-wanrelay,"
                                  " each: " + w.summary())
        self.assertEqual(text[5], "  note: " + relay.LESS_FAITHFUL)
        self.assertEqual(cli.topology_summary(Topology(1, 2, 2), w).splitlines(),
                         ["emulated superfactory:", "  site 0: domains 0-1, ranks 0-3"])


class FakeRelay:
    def store_for(self, site):
        return ("127.0.0.1", 40000 + site) if site else ("127.0.0.1", 1234)


class RankEnvTest(unittest.TestCase):
    def env(self, rk=5, store=("127.0.0.1", 1234), wan_=None, relay_=None, base=None,
            topo=None):
        topo = topo or Topology(2, 2, 2)
        with mock.patch.dict(os.environ, base or {"PATH": "/bin"}, clear=True):
            return launch.rank_env(topo, topo.ranks[rk], store, 999, wan_, relay_)

    def test_contents(self):
        env = self.env()
        want = {
            "XSITE_RANK": "5", "XSITE_WORLD_SIZE": "8", "XSITE_SITE": "1", "XSITE_DOMAIN": "2",
            "XSITE_LOCAL_RANK": "1", "XSITE_LOCAL_SIZE": "2", "XSITE_NUM_SITES": "2",
            "XSITE_NUM_DOMAINS": "4", "XSITE_STORE_ADDR": "127.0.0.1:1234", "XSITE_NETNS": "",
            "XSITE_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "999",
            "RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
            "GROUP_RANK": "2", "GLOO_SOCKET_IFNAME": "lo", "PATH": "/bin",
            "XSITE_JOB_SECRET": launch.JOB_SECRET,
        }
        self.assertEqual(env, want)
        self.assertRegex(launch.JOB_SECRET, "^[0-9a-f]{64}$")

    def test_user_settings_win(self):
        env = self.env(base={"GLOO_SOCKET_IFNAME": "eth9", "XSITE_JOB_SECRET_FILE": "/s",
                             "XSITE_WAN_LATENCY_US": "7", "XSITE_RANK": "42"},
                       wan_=parse()[0].wan)
        self.assertEqual(env["GLOO_SOCKET_IFNAME"], "eth9")
        self.assertNotIn("XSITE_JOB_SECRET", env)
        self.assertEqual(env["XSITE_WAN_LATENCY_US"], "7")
        self.assertEqual(env["XSITE_WAN_RATE_MBIT"], "1000")
        self.assertEqual(env["XSITE_RANK"], "5")   # the launcher's numbering is not optional
        self.assertEqual(self.env(base={"XSITE_JOB_SECRET": "mine"})["XSITE_JOB_SECRET"], "mine")

    def test_wan_hints(self):
        env = self.env(wan_=parse("--wan-delay", "2.5", "--wan-rate", "0")[0].wan)
        self.assertEqual(env["XSITE_WAN_LATENCY_US"], "2500")
        self.assertNotIn("XSITE_WAN_RATE_MBIT", env)   # unlimited: no hint
        env = self.env(wan_=parse("--preset", "none")[0].wan)
        self.assertNotIn("XSITE_WAN_LATENCY_US", env)

    def test_netns_rank_and_ipv6_store(self):
        topo = Topology(2, 2, 2)
        for rk in topo.ranks:  # as Network.setup places them with --ipv6
            d = rk.domain - rk.site * topo.domains
            rk.netns, rk.ifname = "ns%d" % rk.domain, "eth0"
            rk.ip = topology.domain_ip(rk.site, d)
            rk.ip6 = topology.domain_ip(rk.site, d, v6=True)
        env = self.env(rk=7, store=(topo.ranks[0].ip6, 5555), topo=topo)
        self.assertEqual(env["XSITE_STORE_ADDR"], "[fd00:200:0::1]:5555")
        self.assertEqual(env["MASTER_ADDR"], "10.200.0.1")   # IPv4, also with --ipv6
        self.assertEqual((env["XSITE_NETNS"], env["XSITE_IFNAME"], env["GLOO_SOCKET_IFNAME"]),
                         ("ns3", "eth0", "eth0"))

    def test_relay(self):
        env = self.env(rk=5, relay_=FakeRelay())
        self.assertEqual(env["XSITE_STORE_ADDR"], "127.0.0.1:40001")
        self.assertEqual(env["XSITE_LISTEN_ADDR"], "127.10.1.1")
        env = self.env(rk=1, relay_=FakeRelay())
        self.assertEqual(env["XSITE_STORE_ADDR"], "127.0.0.1:1234")
        self.assertEqual(env["XSITE_LISTEN_ADDR"], "127.10.0.1")
        self.assertNotIn("XSITE_LISTEN_ADDR", self.env())


class ProcessesTest(unittest.TestCase):
    def test_exit_codes(self):
        self.assertEqual(launch.exit_code_of(0), 0)
        self.assertEqual(launch.exit_code_of(3), 3)
        self.assertEqual(launch.exit_code_of(-9), 137)
        self.assertEqual(launch.EXIT_TIMEOUT, 124)

    def test_output_pump_prefixes_whole_lines(self):
        r, w = os.pipe()
        os.write(w, b"one\ntwo\nlast without newline")
        os.close(w)
        out = io.BytesIO()
        launch.OutputPump(12, os.fdopen(r, "rb", buffering=0), out).thread.join(5)
        self.assertEqual(out.getvalue(), b"[12] one\n[12] two\n[12] last without newline\n")

    def test_failing_rank_is_not_masked(self):
        """Rank 1 fails with 3; rank 0, killed after --grace 0, does not mask it."""
        env = dict(os.environ)
        procs = [launch.spawn(["sleep", "30"], env, 0, prefix_output=False),
                 launch.spawn(["sh", "-c", "exit 3"], env, 1, prefix_output=False)]
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                self.assertEqual(launch.supervise(procs, 0, 0.0), 3)
        finally:
            launch.stop_ranks(procs)
        self.assertIn("xsite-run: rank 1 exited with code 3; stopping the others in 0s",
                      err.getvalue())
        self.assertTrue(procs[0].killed_by_launcher)
        self.assertEqual(procs[0].exit_code, 128 + 15)

    def test_cannot_start(self):
        with self.assertRaises(common.LauncherError) as cm:
            launch.spawn(["/nonexistent/prog"], {}, 0, prefix_output=False)
        self.assertTrue(str(cm.exception).startswith("cannot start /nonexistent/prog: "))


class DiscoveryTest(unittest.TestCase):
    """Where the launcher finds xsite-wanem, xsite-wanrelay and xsite-netns-rsh."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="xsite-run-unit-")
        self.addCleanup(shutil.rmtree, self.tmp)
        self.path = os.environ["PATH"]
        env = {k: v for k, v in os.environ.items() if k not in ("XSITE_WANEM", "XSITE_WANRELAY")}
        env["PATH"] = os.path.join(self.tmp, "empty-path")
        patcher = mock.patch.dict(os.environ, env, clear=True)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_source_tree(self):
        self.assertEqual(common.LAUNCHER_DIR, TOOLS)
        self.assertEqual(cli.NETNS_RSH, os.path.join(TOOLS, "xsite-netns-rsh"))
        self.assertTrue(os.access(cli.NETNS_RSH, os.X_OK))

    def test_environment_override(self):
        fake = executable(os.path.join(self.tmp, "my-wanem"))
        os.environ["XSITE_WANEM"] = fake
        self.assertEqual(wan.find_emulator(), fake)
        os.chmod(fake, 0o644)
        with self.assertRaises(common.LauncherError) as cm:
            wan.find_emulator()
        self.assertEqual(str(cm.exception), "XSITE_WANEM=%s is not an executable" % fake)
        os.environ["XSITE_WANRELAY"] = fake
        with self.assertRaises(common.LauncherError) as cm:
            wan.find_emulator(wan.WANRELAY, "XSITE_WANRELAY", "the relay", "none")
        self.assertEqual(str(cm.exception), "XSITE_WANRELAY=%s is not an executable" % fake)

    def test_search_order(self):
        src = os.path.join(self.tmp, "src")
        tools, build_bin = os.path.join(src, "tools"), os.path.join(src, "build", "bin")
        path_dir = os.environ["PATH"]
        for d in (tools, build_bin, path_dir):
            os.makedirs(d)
        with mock.patch.object(wan, "LAUNCHER_DIR", tools):
            with self.assertRaises(common.LauncherError) as cm:
                wan.find_emulator()
            self.assertEqual(str(cm.exception),
                             "the WAN emulator xsite-wanem is not built (looked for %s/xsite-wanem"
                             " and %s/xsite-wanem); build it with 'cmake --build build --target "
                             "xsite-wanem', or run with --preset none for plain veth WAN links "
                             "without emulation" % (tools, build_bin))
            on_path = executable(os.path.join(path_dir, "xsite-wanem"))
            self.assertEqual(wan.find_emulator(), on_path)
            in_build = executable(os.path.join(build_bin, "xsite-wanem"))
            self.assertEqual(wan.find_emulator(), in_build)
            beside = executable(os.path.join(tools, "xsite-wanem"))
            self.assertEqual(wan.find_emulator(), beside)

    def test_out_of_tree_build_and_symlink(self):
        """A copy of the launcher in some build tree's bin/ (named anything) finds its package,
        xsite-netns-rsh and the emulators there, also when started through a symlink."""
        bin_dir = os.path.join(self.tmp, "any-build-name", "bin")
        shutil.copytree(os.path.join(TOOLS, "xsite_run"), os.path.join(bin_dir, "xsite_run"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(os.path.join(TOOLS, "xsite-run"), bin_dir)
        executable(os.path.join(bin_dir, "xsite-netns-rsh"))
        executable(os.path.join(bin_dir, "xsite-wanem"))
        # A stand-in relay: records its arguments, announces gateway port 4242 for site 1.
        executable(os.path.join(bin_dir, "xsite-wanrelay"), "\n".join([
            "#!%s" % sys.executable, "import os, sys, time",
            "open(os.path.join(os.path.dirname(sys.argv[0]), 'relay.argv'), 'w')"
            ".write(' '.join(sys.argv[1:]))",
            "os.write(int(sys.argv[sys.argv.index('--ready-fd') + 1]), b'ready 1=4242\\n')",
            "time.sleep(30)", ""]))
        probe = ("from xsite_run import cli, wan; print(wan.find_emulator()); "
                 "print(wan.find_emulator(wan.WANRELAY, 'XSITE_WANRELAY', '', '')); "
                 "print(cli.NETNS_RSH)")
        out = subprocess.run([sys.executable, "-B", "-c", probe], cwd=self.tmp,
                             env=dict(os.environ, PYTHONPATH=bin_dir), check=True,
                             capture_output=True, text=True).stdout
        self.assertEqual(out.split(), [os.path.join(bin_dir, n) for n in
                                       ("xsite-wanem", "xsite-wanrelay", "xsite-netns-rsh")])

        link = os.path.join(self.tmp, "elsewhere", "xsite-run")
        os.makedirs(os.path.dirname(link))
        os.symlink(os.path.join(bin_dir, "xsite-run"), link)
        p = subprocess.run([link, "--no-netns", "--sites", "2", "--domains", "1",
                            "--ranks-per-domain", "1", "--timeout", "20", "--",
                            "sh", "-c", "echo $XSITE_RANK $XSITE_STORE_ADDR $XSITE_LISTEN_ADDR"],
                           cwd=self.tmp, env=dict(os.environ, PATH=self.path),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = sorted(p.stdout.splitlines())
        self.assertEqual(len(lines), 2, p.stdout)
        self.assertRegex(lines[0], r"^\[0\] 0 127\.0\.0\.1:\d+ 127\.10\.0\.1$")
        self.assertEqual(lines[1], "[1] 1 127.0.0.1:4242 127.10.1.1")
        self.assertIn("through xsite-wanrelay, each: 5.5 ms one way", p.stderr)
        with open(os.path.join(bin_dir, "relay.argv")) as f:
            argv = f.read()
        store = re.search(r"\[0\] 0 (\S+)", p.stdout).group(1)
        self.assertTrue(argv.startswith("--store %s --relay-ip 127.10.254.1 --die-with-parent "
                                        "--delay 5.5 --rate 1000 " % store), argv)
        self.assertIn("--site-ip 0=127.10.0.1 --site-ip 1=127.10.1.1 --ready-fd ", argv)
        self.assertFalse(os.path.exists(os.path.join(bin_dir, "xsite_run", "__pycache__")))


class LayeringTest(unittest.TestCase):
    """Modules import only those below them: cli -> launch, netns, relay -> wan, topology ->
    common."""

    ALLOWED = {
        "common": set(),
        "topology": set(),
        "wan": {"common"},
        "relay": {"common", "topology", "wan"},
        "netns": {"common", "topology", "wan"},
        "launch": {"common", "topology"},
        "cli": {"common", "topology", "wan", "relay", "netns", "launch"},
    }

    def test_imports_point_down(self):
        pkg = os.path.join(TOOLS, "xsite_run")
        modules = sorted(f[:-3] for f in os.listdir(pkg) if f.endswith(".py"))
        self.assertEqual(modules, sorted(["__init__"] + list(self.ALLOWED)))
        for m in self.ALLOWED:
            with open(os.path.join(pkg, m + ".py")) as f:
                used = set(re.findall(r"^from \.(\w+) import", f.read(), re.M))
            self.assertLessEqual(used, self.ALLOWED[m], m)


if __name__ == "__main__":
    unittest.main()
