#!/usr/bin/python3
"""Strangers at every listener of a running job: refused, and the job does not notice.

Runs the same job twice, one after the other: a quiet run, and one under attack. The job is either
2x2x2 ranks (--sites 2 --domains 2 --ranks-per-domain 2, network namespaces, the WAN emulated by
xsite-wanem's --preset) of xsite_allreduce_perf -A hier -c 1 (every element checked), or with
--plugin a transfer through the NCCL net plugin between two sites (xsite_net_plugin_perf -c,
every byte checked), whose receiver keeps its resume listener open for the whole transfer.

Once the attacked job's iterations begin, an attacker in the namespace of rank 0's domain (a host
on site 0's LAN) opens --connections TCP connections, --parallel at a time and at most --rate a
second (so that the attack spans the job; the attacker shares this machine's cores with the
ranks), to every port the job's ranks listen on (found with `ss -ltn` in each domain namespace:
the rendezvous store, the data listeners, the WAN listener that takes re-dialed streams, the
plugin's resume listener), round-robin over the ports and over four kinds of stranger:

  garbage   random bytes (1-600) instead of an answer to the challenge;
  forged    the real handshake, answered with HMAC-SHA256 keyed by another secret;
  replay    an answer computed with the job's real secret (read from a rank's environment, as an
            eavesdropper would record it) for an earlier challenge, sent to a fresh one;
  silent    connects, says nothing for 1 s, leaves.

A stranger is "accepted" when the listener sends anything after the stranger's answer (the proof
that would follow a right one, or any protocol byte): that must never happen. A port that sends
no challenge is not xsite's (UCX's TCP transport listens too, for its own protocol, which xsite
does not authenticate): its strangers are counted as "no-challenge", and the job must not mind
them either.

Prints, for each run, the exit status, the check's verdict, the figure (rank 0's time per
all-reduce, averaged over the iterations; or the plugin's goodput at the receiver) and the peak
RSS of the ranks; for the attack, the connections made by kind and result (accepted, refused:
closed by the listener, timeout: neither within 1 s, no-challenge, held: silent); and the
attacked/quiet ratios. Exits 1 if a stranger was accepted, a run failed or got a wrong byte, or
the attack did not make --connections connections while the job ran.

Usage: bench/reliability/strangers.py [--plugin] [--connections 10000] [--rate 100]
                                      [--parallel 128] [--preset default] [--bytes B] [--iters N]
                                      [--perf PATH]
Run as root (network namespaces); needs a build (build/bin).
"""
import argparse
import hashlib
import hmac
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from job_ranks import rank_processes

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHALLENGE_MAGIC = 0x58534131  # bootstrap/auth.h: AuthChallenge "XSA1"
KINDS = ("garbage", "forged", "replay", "silent")


# ---- the attacker (runs inside a domain namespace) -------------------------------------------

def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def answer(key, challenge, caller_nonce):
    """AuthResponse: the caller's nonce and HMAC(key, 'C' | listener nonce | caller nonce)."""
    listener_nonce = challenge[8:24]
    mac = hmac.new(key, b"C" + listener_nonce + caller_nonce, hashlib.sha256).digest()
    return caller_nonce + mac


def stranger(target, kind, secret, recorded):
    """One connection: 'accepted', 'refused' (closed after the answer), 'timeout' (neither within
    1 s: a garbage answer shorter than a real one leaves the listener waiting for the rest, up to
    its 10 s), 'no-challenge' (not an xsite listener), 'held' (silent) or 'unreachable'."""
    host, port = target
    try:
        s = socket.create_connection((host, port), timeout=2)
    except OSError:
        return "unreachable"
    try:
        s.settimeout(1)
        if kind == "silent":
            time.sleep(1)
            return "held"
        try:
            challenge = recv_exact(s, 24)
        except socket.timeout:
            challenge = b""
        if len(challenge) != 24 or struct.unpack("<I", challenge[:4])[0] != CHALLENGE_MAGIC:
            return "no-challenge"  # not an xsite listener (UCX's own), or one that refused us first
        if kind == "garbage":
            s.sendall(os.urandom(random.randint(1, 600)))
        elif kind == "forged":
            s.sendall(answer(b"not the job's secret, but long enough", challenge, os.urandom(16)))
        else:  # replay: the real secret's answer to another challenge
            s.sendall(recorded)
        try:
            more = s.recv(64)
        except socket.timeout:
            return "timeout"
        return "accepted" if more else "refused"
    except (ConnectionResetError, BrokenPipeError):
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError:
        return "refused"
    finally:
        s.close()


def attack_main(argv):
    targets = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in argv[0].split(",")]
    total, parallel, secret, stop_file = int(argv[1]), int(argv[2]), argv[3].encode(), argv[4]
    rate = float(argv[5])  # connections per second, at most
    # What an eavesdropper would have recorded: a right answer, to a challenge long gone.
    recorded = answer(secret, b"\0" * 8 + os.urandom(16), os.urandom(16))
    lock = threading.Lock()
    counts = {}
    next_i = [0]
    stopping = threading.Event()
    # xsite-run ends the processes in its namespaces when the job ends: report what was done.
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    start = time.time()

    def worker():
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= total or stopping.is_set() or os.path.exists(stop_file):
                return
            wait = start + i / rate - time.time()
            if wait > 0:
                time.sleep(wait)
            target = targets[i % len(targets)]
            kind = KINDS[(i // len(targets)) % len(KINDS)]
            result = stranger(target, kind, secret, recorded)
            with lock:
                key = "%s %s:%d %s" % (kind, target[0], target[1], result)
                counts[key] = counts.get(key, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(parallel)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)  # lets the SIGTERM handler run
    print(json.dumps({"seconds": time.time() - t0, "counts": counts}), flush=True)


# ---- the driver ----------------------------------------------------------------------------

class LibraryJob:
    """2x2x2 ranks of the hierarchical all-reduce, every element checked."""
    ranks = 8
    exe = b"xsite_allreduce_perf"
    unit = "us per all-reduce (rank 0)"
    lower_is_better = True

    def __init__(self, args):
        self.args = args

    def describe(self):
        a = self.args
        return "2x2x2 ranks, --preset %s, all-reduce -A hier -c 1 %s x %d" % (a.preset, a.bytes, a.iters)

    def command(self, tmp):
        a = self.args
        return [os.path.join(ROOT, "tools", "xsite-run"), "-v", "--sites", "2", "--domains", "2",
                "--ranks-per-domain", "2", "--preset", a.preset, "--timeout", "900", "--",
                a.perf or os.path.join(ROOT, "build", "bin", "xsite_allreduce_perf"),
                "-b", a.bytes, "-e", a.bytes, "-n", str(a.iters), "-w", "2", "-c", "1", "-A", "hier"]

    def started(self, line):
        return re.match(r"^\[0\] #  +\(B\)", line) is not None  # the table's header: iterations begin

    def wait_started(self, tmp, header):
        header.wait(180)

    def result(self, lines):
        rows = [l for l in lines if re.match(r"^\[0\] +\d+ +\d+ +[a-z0-9]+ +[a-z]+ ", l)]
        wrong = sum(int(r.split()[9]) + int(r.split()[13]) for r in rows) if rows else None
        return {"metric": float(rows[-1].split()[6]) if rows else None, "correct": wrong == 0,
                "detail": "#wrong %s" % wrong}


class PluginJob:
    """The NCCL net plugin's cross-site comm (xsite_net_plugin_perf, every byte checked)."""
    ranks = 2
    exe = b"xsite_net_plugin_perf"
    unit = "Mbit/s through the net plugin (receiver)"
    lower_is_better = False

    def __init__(self, args):
        self.args = args

    def describe(self):
        a = self.args
        return ("the NCCL net plugin between 2 sites, --preset %s, %s x %d in 512 KiB messages, every byte "
                "checked" % (a.preset, a.bytes, a.iters))

    def command(self, tmp):
        a = self.args
        return [os.path.join(ROOT, "tools", "xsite-run"), "-v", "--sites", "2", "--domains", "1",
                "--ranks-per-domain", "1", "--preset", a.preset, "--timeout", "900", "--",
                a.perf or os.path.join(ROOT, "build", "bin", "xsite_net_plugin_perf"),
                "-f", os.path.join(tmp, "handle"), "-b", a.bytes, "-n", str(a.iters), "-c"]

    def started(self, line):
        return False  # its rows come at the end (a pipe buffers them): wait_started() looks instead

    def wait_started(self, tmp, header):
        """The receiver wrote its handle: the sender connects and sends at once."""
        end = time.time() + 180
        while not os.path.exists(os.path.join(tmp, "handle")) and time.time() < end and not header.is_set():
            time.sleep(0.05)
        time.sleep(1)

    def result(self, lines):
        rows = [l for l in lines if re.match(r"^\[1\] all ", l)]
        correct = any("all correct" in l for l in lines)
        return {"metric": float(rows[-1].split()[4]) if rows else None, "correct": correct,
                "detail": "every byte correct" if correct else "NOT CHECKED CORRECT"}


def listeners(namespaces):
    """Every TCP port listened on in the job's domain namespaces, as host:port."""
    out = []
    for ns in namespaces:
        ss = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hltn"], capture_output=True, text=True).stdout
        for line in ss.splitlines():
            local = line.split()[3]
            host, port = local.rsplit(":", 1)
            if host.startswith("10.200."):
                out.append("%s:%s" % (host, port))
    return sorted(set(out))


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_job(args, work, attack):
    tmp = tempfile.mkdtemp(prefix="xsite-strangers-")
    job = subprocess.Popen(work.command(tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
    lines, result = [], {"attack": None, "rss": {}}
    started = threading.Event()

    def read():
        for raw in iter(job.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if work.started(line):
                started.set()
        started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    work.wait_started(tmp, started)
    pids = rank_processes(job.pid, work.exe)
    attacker = None
    stop_file = os.path.join(tmp, "stop")
    if attack and len(pids) != work.ranks:
        result["attack"] = {"error": "found %d of %d ranks' processes" % (len(pids), work.ranks)}
    if attack and len(pids) == work.ranks:
        domains = sorted({ns for _, _, ns in pids.values()})
        targets = listeners(domains)
        result["targets"] = targets
        secret = pids[0][1].get(b"XSITE_JOB_SECRET", b"").decode()
        attacker = subprocess.Popen(
            ["ip", "netns", "exec", pids[0][2], "/usr/bin/python3", os.path.abspath(__file__),
             "--attack", ",".join(targets), str(args.connections), str(args.parallel), secret, stop_file,
             str(args.rate)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while job.poll() is None:
        for r, (pid, _, _) in pids.items():
            result["rss"][r] = max(result["rss"].get(r, 0), rss_kib(pid))
        if attacker is not None and attacker.poll() is not None and "attack_done" not in result:
            result["attack_done"] = time.time()
        time.sleep(0.25)
    result["rc"] = job.returncode
    reader.join(timeout=5)
    if attacker is not None:
        if attacker.poll() is None:
            open(stop_file, "w").close()  # the job ended first: stop where it is
        out, err = attacker.communicate()
        result["attack"] = json.loads(out) if out.strip() else {"error": err.strip() or "no output"}
        result["attack_ended_in_job"] = "attack_done" in result
    shutil.rmtree(tmp, ignore_errors=True)
    result.update(work.result(lines))
    result["lines"] = lines
    return result


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--attack":
        return attack_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--parallel", type=int, default=128)
    ap.add_argument("--rate", type=float, default=100, help="connections per second, at most")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--plugin", action="store_true",
                    help="attack a transfer of the NCCL net plugin instead of a library job")
    ap.add_argument("--bytes", help="per all-reduce (16M) or per plugin iteration (4G)")
    ap.add_argument("--iters", type=int, help="all-reduces (600) or plugin iterations (4)")
    ap.add_argument("--perf", help="the benchmark binary (default: build/bin's)")
    args = ap.parse_args()
    if args.bytes is None:
        args.bytes = "4G" if args.plugin else "16M"
    if args.iters is None:
        args.iters = 4 if args.plugin else 600
    if os.geteuid() != 0:
        sys.exit("strangers.py: needs root (network namespaces)")
    work = PluginJob(args) if args.plugin else LibraryJob(args)
    print("# strangers: %s; %d connections, at most %g a second, %d at a time, from the namespace of "
          "rank 0's domain" % (work.describe(), args.connections, args.rate, args.parallel), flush=True)
    quiet = run_job(args, work, attack=False)
    attacked = run_job(args, work, attack=True)
    ok = True
    for name, r in (("quiet", quiet), ("attacked", attacked)):
        print("%-8s: exit %s, %s, %s %s, peak RSS per rank %s MiB" % (
            name, r["rc"], r["detail"], r["metric"], work.unit,
            "/".join("%.0f" % (r["rss"].get(k, 0) / 1024) for k in range(work.ranks))), flush=True)
        ok = ok and r["rc"] == 0 and r["correct"] and r["metric"] is not None
        if r["rc"] != 0:
            sys.stderr.write("\n".join(r["lines"][-40:]) + "\n")
    a = attacked["attack"] or {}
    counts = a.get("counts", {})
    if not counts:
        print("attack: did not run (%s)" % a.get("error", "no listeners or ranks found"))
        sys.exit(1)
    by_result, by_kind = {}, {}
    for key, n in counts.items():
        kind, _, result = key.split(" ")
        by_result[result] = by_result.get(result, 0) + n
        by_kind[kind] = by_kind.get(kind, 0) + n
    made = sum(counts.values())
    xsite_ports = sorted({key.split(" ")[1] for key in counts if key.split(" ")[2] in ("refused", "timeout", "accepted")})
    print("attack: %d connections in %.1f s to %d listening ports, %d of them xsite's (%s); by kind %s; "
          "results %s" % (made, a.get("seconds", 0), len(attacked.get("targets", [])), len(xsite_ports),
                          ", ".join(xsite_ports), json.dumps(by_kind, sort_keys=True),
                          json.dumps(by_result, sort_keys=True)), flush=True)
    timeouts = {}
    for key, n in counts.items():
        if key.endswith(" timeout"):
            timeouts[key.rsplit(" ", 1)[0]] = n
    if timeouts:
        print("  answered neither way within 1 s: %s" % json.dumps(timeouts, sort_keys=True))
    accepted = by_result.get("accepted", 0)
    for key, n in sorted(counts.items()):
        if key.endswith(" accepted"):
            print("  ACCEPTED: %d x %s" % (n, key))
    if quiet["metric"] and attacked["metric"]:
        ratio = attacked["metric"] / quiet["metric"]
        rss_q = max(quiet["rss"].values() or [0])
        rss_a = max(attacked["rss"].values() or [0])
        print("attacked / quiet: %s %.3f, peak RSS %.3f; strangers accepted: %d of %d; the attack %s"
              % ("time" if work.lower_is_better else "goodput", ratio, rss_a / max(rss_q, 1), accepted,
                 made, "ended while the job ran" if attacked.get("attack_ended_in_job") else
                 "was cut short by the job's end"), flush=True)
    ok = ok and accepted == 0 and made >= args.connections and attacked.get("attack_ended_in_job", False)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
