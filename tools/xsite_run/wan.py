"""The emulated WAN link: presets, the --wan-* flags (queue in KB or in bandwidth-delay
products), WanParams, and the emulator programs (xsite-wanem between TUN devices in netns
mode, xsite-wanrelay in loopback mode): finding, starting and stopping them."""

import argparse
import os
import select
import shutil
import subprocess
import time

from .common import LAUNCHER_DIR, LauncherError, check_interrupted

WANEM = "xsite-wanem"
WANRELAY = "xsite-wanrelay"  # loopback mode's WAN: a user-space TCP relay
WANEM_READY_S = 10.0        # an emulator must have attached to its TUNs by then

# WAN presets: one-way delay (ms), rate (Mbit/s), loss (%), jitter (ms).
# "none" is a plain veth pair without emulation (debugging).
PRESETS = {
    "default": dict(delay=5.5, rate=1000.0, loss=0.0, jitter=0.0),   # Wisconsin-Atlanta
    "thin": dict(delay=5.5, rate=200.0, loss=0.0, jitter=0.0),
    "transatlantic": dict(delay=40.0, rate=1000.0, loss=0.1, jitter=0.0),
    "none": None,
}


def bdp_kb(rate, delay, jitter):
    """The bandwidth-delay product of the round trip, KB (1000 bytes)."""
    return rate * 1e6 / 8 * 2 * (delay + jitter) / 1e3 / 1e3


def default_queue_kb(rate, delay, jitter):
    """About twice the bandwidth-delay product of the round trip, at least 1 MB."""
    return max(1000.0, round(2 * bdp_kb(rate, delay, jitter)))


def queue_arg(text):
    """--wan-queue: KB, or a multiple of the link's bandwidth-delay product ("0.5bdp")."""
    t = text.strip().lower()
    try:
        if t.endswith("bdp"):
            return ("bdp", float(t[:-3]))
        return ("kb", float(t))
    except ValueError:
        raise argparse.ArgumentTypeError("'%s' is not KB (e.g. 2750) nor a multiple of the "
                                         "bandwidth-delay product (e.g. 0.5bdp)" % text)


class WanParams:
    """What every emulated WAN link imposes, per direction."""

    def __init__(self, preset, delay, rate, loss, jitter, queue_kb, whole_packet_loss=False):
        self.preset = preset
        self.delay, self.rate, self.loss, self.jitter = delay, rate, loss, jitter
        self.queue_kb = queue_kb
        self.whole_packet_loss = whole_packet_loss

    @property
    def emulated(self):
        return self.preset != "none"

    def summary(self):
        if not self.emulated:
            return "plain veth (preset none: no delay, rate limit or loss)"
        rate = "%g Mbit/s" % self.rate if self.rate > 0 else "unlimited rate"
        loss = "%g%%%s" % (self.loss, " of whole GSO packets" if self.whole_packet_loss else "")
        return ("%g ms one way, %s, loss %s, jitter %g ms, queue %g KB per direction"
                " (preset %s)" % (self.delay, rate, loss, self.jitter, self.queue_kb,
                                  self.preset))

    def wanem_args(self):
        return ["--delay", "%g" % self.delay, "--rate", "%g" % self.rate,
                "--loss", "%g" % self.loss, "--jitter", "%g" % self.jitter,
                "--queue", "%g" % self.queue_kb] + (
                    ["--whole-packet-loss"] if self.whole_packet_loss else [])


def wan_params(args, ap):
    """The preset's values with the explicit --wan-* flags on top."""
    explicit = {k: getattr(args, "wan_" + k) for k in ("delay", "rate", "loss", "jitter", "queue")}
    given = [k for k, v in explicit.items() if v is not None]
    preset = args.preset
    base = PRESETS[preset]
    if base is None:
        if args.wan_whole_packet_loss:
            given.append("whole-packet-loss")
        if given:
            ap.error("--preset none is a plain veth link without emulation: "
                     "drop --wan-%s or choose another preset" % given[0])
        return WanParams("none", 0.0, 0.0, 0.0, 0.0, 0.0)
    v = dict(base)
    v.update({k: x for k, x in explicit.items() if x is not None and k != "queue"})
    if v["delay"] < 0 or v["jitter"] < 0 or v["delay"] > 60000 or v["jitter"] > 60000:
        ap.error("--wan-delay and --wan-jitter must be in [0, 60000] ms")
    if v["rate"] < 0:
        ap.error("--wan-rate must be >= 0 Mbit/s (0: unlimited)")
    if not 0 <= v["loss"] < 100:
        ap.error("--wan-loss must be in [0, 100) percent")
    q = None
    if explicit["queue"] is not None:
        unit, x = explicit["queue"]
        if x <= 0:
            ap.error("--wan-queue must be > 0")
        if unit == "bdp":
            if v["rate"] <= 0 or v["delay"] + v["jitter"] <= 0:
                ap.error("--wan-queue %gbdp needs a rate and a delay" % x)
            # 2 packets at least
            q = max(3.0, round(x * bdp_kb(v["rate"], v["delay"], v["jitter"]), 1))
        else:
            q = x
    if q is None:
        q = default_queue_kb(v["rate"], v["delay"], v["jitter"])
    name = preset + (" + --wan-" + " --wan-".join(given) if given else "")
    return WanParams(name, v["delay"], v["rate"], v["loss"], v["jitter"], q,
                     args.wan_whole_packet_loss)


def find_emulator(name=WANEM, env="XSITE_WANEM", what="the WAN emulator",
                  none_means="plain veth WAN links without emulation"):
    """The emulator binary: $XSITE_WANEM, else next to xsite-run (the build tree's bin/, any
    build tree, in or out of the source tree, or an install's bin/), else build/bin of the
    source tree (tools/xsite-run), else on PATH. Likewise the relay (xsite-wanrelay,
    $XSITE_WANRELAY)."""
    override = os.environ.get(env)
    if override:
        if not os.access(override, os.X_OK):
            raise LauncherError("%s=%s is not an executable" % (env, override))
        return override
    candidates = [os.path.join(LAUNCHER_DIR, name),
                  os.path.join(os.path.dirname(LAUNCHER_DIR), "build", "bin", name)]
    on_path = shutil.which(name)
    if on_path:
        candidates.append(on_path)
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    raise LauncherError(
        "%s %s is not built (looked for %s); build it with "
        "'cmake --build build --target %s', or run with --preset none for %s"
        % (what, name, " and ".join(candidates), name, none_means))


def start_until_ready(argv, started=None):
    """Starts an emulator (argv without --ready-fd) and waits up to WANEM_READY_S for the line
    it writes to its --ready-fd once it is ready. started(p), if given, runs as soon as the
    process exists (so that cleanup knows it whatever happens next). Returns (the Popen, the
    line: b"" if none came)."""
    rfd, wfd = os.pipe()
    try:
        argv = argv + ["--ready-fd", str(wfd)]
        try:
            # Its own session: a terminal's Ctrl-C reaches the launcher, which stops the
            # ranks first and the links last (cleanup).
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, pass_fds=(wfd,),
                                 start_new_session=True)
        except OSError as e:
            raise LauncherError("cannot start %s: %s" % (argv[0], e))
        if started is not None:
            started(p)
        os.close(wfd)
        wfd = -1
        ready = b""
        deadline = time.time() + WANEM_READY_S
        while time.time() < deadline and not ready.endswith(b"\n"):
            check_interrupted()
            r, _, _ = select.select([rfd], [], [], 0.05)
            if r:
                chunk = os.read(rfd, 4096)
                if not chunk:
                    break
                ready += chunk
        return p, ready
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)


def stop_process(p):
    """SIGTERM, then SIGKILL after a second; waits for the process."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5.0)
