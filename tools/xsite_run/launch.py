"""The ranks: their environment, starting them in their own sessions, copying their output
with a "[rank] " prefix, supervising them (--grace, --timeout, a failing rank or emulator,
signals to the launcher) and stopping them; the launcher's exit code."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

from .common import LauncherError, log, pending_signals
from .topology import site_loopback_ip

EXIT_TIMEOUT = 124
KILL_AFTER_TERM_S = 3.0     # SIGTERM -> SIGKILL escalation delay
JOB_SECRET = secrets.token_hex(32)


def free_ports(n):
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


class OutputPump:
    """Copies a rank's stdout/stderr line by line with a "[rank] " prefix."""

    lock = threading.Lock()

    def __init__(self, rank, pipe, out):
        self.prefix = ("[%d] " % rank).encode()
        self.pipe = pipe
        self.out = out
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def write(self, line):
        if not line.endswith(b"\n"):
            line += b"\n"
        with OutputPump.lock:
            try:
                self.out.write(self.prefix + line)
                self.out.flush()
            except (BrokenPipeError, ValueError):
                pass

    def run(self):
        try:
            for line in iter(self.pipe.readline, b""):
                self.write(line)
        finally:
            self.pipe.close()


class Proc:
    def __init__(self, rank, popen, pumps):
        self.rank = rank
        self.popen = popen
        self.pumps = pumps
        self.exit_code = None
        self.killed_by_launcher = False  # after another rank failed

    def signal_group(self, sig):
        try:
            os.killpg(self.popen.pid, sig)
        except OSError:
            pass


def exit_code_of(returncode):
    return 128 - returncode if returncode < 0 else returncode


def rank_env(topo, rk, store, master_port, wan, relay=None):
    env = dict(os.environ)
    host, port = store if relay is None else relay.store_for(rk.site)
    # The library's cost model reads the link from these, unless the user set them.
    if wan is not None and wan.emulated:
        env.setdefault("XSITE_WAN_LATENCY_US", "%g" % (wan.delay * 1000.0))
        if wan.rate > 0:
            env.setdefault("XSITE_WAN_RATE_MBIT", "%g" % wan.rate)
    if ":" in host:  # --ipv6
        host = "[%s]" % host
    env.update({
        "XSITE_RANK": str(rk.rank),
        "XSITE_WORLD_SIZE": str(topo.world_size),
        "XSITE_SITE": str(rk.site),
        "XSITE_DOMAIN": str(rk.domain),
        "XSITE_LOCAL_RANK": str(rk.local_rank),
        "XSITE_LOCAL_SIZE": str(topo.local_size),
        "XSITE_NUM_SITES": str(topo.sites),
        "XSITE_NUM_DOMAINS": str(topo.sites * topo.domains),
        "XSITE_STORE_ADDR": "%s:%d" % (host, port),
        "XSITE_NETNS": rk.netns,
        "XSITE_IFNAME": rk.ifname,
        "MASTER_ADDR": topo.ranks[0].ip,  # IPv4 (torch's own store), also with --ipv6
        "RANK": str(rk.rank),
        "WORLD_SIZE": str(topo.world_size),
        "LOCAL_RANK": str(rk.local_rank),
        "LOCAL_WORLD_SIZE": str(topo.local_size),
        "GROUP_RANK": str(rk.domain),
        "MASTER_PORT": str(master_port),
    })
    if rk.ifname:  # torch's Gloo (and so an unchanged gloo script) on the rank's own interface
        env.setdefault("GLOO_SOCKET_IFNAME", rk.ifname)
    if relay is not None:
        env["XSITE_LISTEN_ADDR"] = site_loopback_ip(rk.site)
    # One secret per job: every connection between its ranks proves it (docs/reliability.md).
    if "XSITE_JOB_SECRET" not in env and "XSITE_JOB_SECRET_FILE" not in env:
        env["XSITE_JOB_SECRET"] = JOB_SECRET
    return env



def spawn(argv, env, rank, prefix_output):
    kw = dict(env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    if prefix_output:
        kw.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        p = subprocess.Popen(argv, **kw)
    except OSError as e:
        raise LauncherError("cannot start %s: %s" % (argv[0], e))
    pumps = []
    if prefix_output:
        pumps = [OutputPump(rank, p.stdout, sys.stdout.buffer),
                 OutputPump(rank, p.stderr, sys.stderr.buffer)]
    return Proc(rank, p, pumps)


def supervise(procs, timeout, grace, emulators=()):
    """Waits for all ranks; returns the launcher's exit code.

    An emulator (xsite-wanem) that dies while ranks run takes its link with it:
    the ranks are stopped as if one had failed, and the exit code is at least 1.
    """
    wan_lost = False
    start = time.time()
    fail_time = None
    kill_reason = None
    term_time = None
    forwarded = 0
    timed_out = False
    interrupted = None
    while True:
        running = [p for p in procs if p.exit_code is None]
        for p in running:
            rc = p.popen.poll()
            if rc is not None:
                p.exit_code = exit_code_of(rc)
                if p.exit_code != 0 and fail_time is None:
                    fail_time = time.time()
                    if len(procs) > 1 and not pending_signals and kill_reason is None:
                        log("rank %d exited with code %d; stopping the others in %gs"
                            % (p.rank, p.exit_code, grace))
        running = [p for p in procs if p.exit_code is None]
        if not running:
            break
        now = time.time()
        if not wan_lost:
            for link, e in emulators:
                if e.poll() is not None:
                    wan_lost = True
                    log("WAN emulator of link %s exited with code %d; stopping the ranks"
                        % (link, exit_code_of(e.returncode)))
                    fail_time = fail_time if fail_time is not None else now - grace
        # Signals to the launcher: forward each new one, escalate on the 2nd.
        while forwarded < len(pending_signals):
            sig = pending_signals[forwarded]
            forwarded += 1
            if interrupted is None:
                interrupted = sig
            if forwarded == 1:
                log("got signal %d, forwarding to ranks" % sig)
                for p in running:
                    p.signal_group(sig)
                term_time = term_time or now
            else:
                for p in running:
                    p.signal_group(signal.SIGKILL)
        if kill_reason is None:
            if timeout and now - start >= timeout:
                kill_reason = "timeout"
                timed_out = True
                log("timeout after %gs, killing ranks" % timeout)
            elif fail_time is not None and now - fail_time >= grace:
                kill_reason = "failure"
            if kill_reason:
                for p in running:
                    p.killed_by_launcher = kill_reason == "failure"
                    p.signal_group(signal.SIGTERM)
                term_time = term_time or now
        if term_time is not None and now - term_time >= KILL_AFTER_TERM_S:
            for p in running:
                p.signal_group(signal.SIGKILL)
        time.sleep(0.02)
    # Leftover grandchildren in the ranks' process groups die too.
    for p in procs:
        p.signal_group(signal.SIGKILL)
    for p in procs:
        for pump in p.pumps:
            pump.thread.join(timeout=2.0)
    if timed_out:
        return EXIT_TIMEOUT
    # Ranks we killed because another one failed do not mask its exit code.
    worst = max([p.exit_code for p in procs if not p.killed_by_launcher] + [0])
    if wan_lost:
        worst = max(worst, 1)
    if interrupted is not None:
        return max(worst, 128 + interrupted)
    return worst


def stop_ranks(procs):
    """Stops every rank still running (SIGTERM to its group, SIGKILL after KILL_AFTER_TERM_S)
    and reaps them all: on every exit path of a launch."""
    for p in procs:
        if p.popen.poll() is None:
            p.signal_group(signal.SIGTERM)
    deadline = time.time() + KILL_AFTER_TERM_S
    while any(p.popen.poll() is None for p in procs) and time.time() < deadline:
        time.sleep(0.02)
    for p in procs:
        p.signal_group(signal.SIGKILL)
        try:
            p.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
