#!/usr/bin/python3
"""Ranks that die or stop in the middle of a job: is each one named by every survivor, in time?

Runs 2x2x2 jobs (--sites 2 --domains 2 --ranks-per-domain 2, network namespaces, the WAN emulated
by xsite-wanem's --preset) of xsite_allreduce_perf (-A hier, --bytes per call, endless), with
XSITE_HEARTBEAT=--period. Once rank 0 printed its table header (the iterations begin) and a
random 0.5-1.5 s later, a random rank gets SIGKILL (--kill jobs) or SIGSTOP (--stop jobs); a stopped rank is killed once
every survivor has reported (or after --deadline). Every rank's output is time-stamped as it
arrives; a survivor's failure time is its "communicator failed:" warning (each rank logs one, at
once, when its communicator fails).

A trial passes when each of the 7 survivors reported a failure that names the victim ("rank V (")
within 3 heartbeat periods of the signal (the promise for a stopped rank; a killed one is named
at once by a neighbour) and the job ended within --deadline (no hang). Prints one line per trial
(victim, signal, slowest survivor, pass) and a summary per signal:
"SIGKILL: 50 of 50 named by every survivor within 3 periods (slowest 0.41 s)".
Exits 1 if any trial failed (its log goes to stderr).

Usage: bench/reliability/rank_failures.py [--kill 50] [--stop 50] [--period 1] [--preset default]
                                          [--bytes 4M] [--deadline 60] [--perf PATH] [--keep-logs DIR]
Run as root (network namespaces); needs build/bin/xsite_allreduce_perf.
"""
import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from job_ranks import rank_processes

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RANKS = 8
HEADER = re.compile(rb"^\[0\] #  +\(B\)")  # the table's last header line: iterations begin
FAILED = re.compile(rb"^\[(\d+)\] .*XSITE WARN COLL rank \d+: communicator failed: (.*)$")


class Job:
    """One xsite-run job whose output lines are time-stamped by a reader thread."""

    def __init__(self, args, log_path):
        env = dict(os.environ, XSITE_HEARTBEAT=str(args.period))
        cmd = [os.path.join(ROOT, "tools", "xsite-run"), "-v", "--sites", "2", "--domains", "2",
               "--ranks-per-domain", "2", "--preset", args.preset, "--timeout", str(args.deadline + 60),
               "--grace", str(args.deadline), "--",
               args.perf, "-b", args.bytes, "-e", args.bytes, "-n", "100000000", "-w", "1", "-c", "0",
               "-A", "hier"]
        self.lines = []  # (time, bytes)
        self.cond = threading.Condition()
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in iter(self.proc.stdout.readline, b""):
            now = time.time()
            self.log.write(b"%.3f %s" % (now, line))
            with self.cond:
                self.lines.append((now, line.rstrip(b"\n")))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, pattern, timeout):
        """The first line matching `pattern` (or None when the job ended or time ran out)."""
        end = time.time() + timeout
        with self.cond:
            while True:
                for t, l in self.lines:
                    if pattern.search(l):
                        return t, l
                if self.proc.poll() is not None and not self.reader.is_alive():
                    return None
                left = end - time.time()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.2))

    def failures(self):
        """rank -> (time, cause) of each rank's first 'communicator failed' warning."""
        out = {}
        with self.cond:
            for t, l in self.lines:
                m = FAILED.search(l)
                if m and int(m.group(1)) not in out:
                    out[int(m.group(1))] = (t, m.group(2).decode(errors="replace"))
        return out

    def rank_pid(self, rank):
        """The pid of rank `rank`'s benchmark process (in one of the job's namespaces)."""
        found = rank_processes(self.proc.pid, b"xsite_allreduce_perf").get(rank)
        return found[0] if found else None

    def end(self, deadline):
        try:
            self.proc.wait(timeout=deadline)
            return True
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            return False
        finally:
            self.reader.join(timeout=5)
            self.log.close()


def trial(args, sig, n, work):
    log = os.path.join(work, "%s-%d.log" % (signal.Signals(sig).name, n))
    job = Job(args, log)
    victim = random.randrange(RANKS)
    verdict, slowest, detail = "fail", None, ""
    try:
        if job.wait_line(HEADER, 120) is None:
            return False, victim, None, "the job never started its iterations", log
        time.sleep(0.5 + random.random())
        pid = job.rank_pid(victim)
        if pid is None:
            return False, victim, None, "rank %d's process not found" % victim, log
        t_sig = time.time()
        os.kill(pid, sig)
        named = "rank %d (" % victim
        # Wait for the 7 survivors' reports.
        end = t_sig + args.deadline
        while time.time() < end:
            f = job.failures()
            if sum(1 for r in f if r != victim) >= RANKS - 1:
                break
            time.sleep(0.1)
        if sig == signal.SIGSTOP:
            os.kill(pid, signal.SIGKILL)
        f = {r: v for r, v in job.failures().items() if r != victim}
        missing = [r for r in range(RANKS) if r != victim and r not in f]
        wrong = [r for r, (_, cause) in f.items() if named not in cause]
        late = [r for r, (t, _) in f.items() if t - t_sig > 3 * args.period]
        slowest = max((t - t_sig for t, _ in f.values()), default=None)
        if missing:
            detail = "no failure reported by rank(s) %s" % missing
        elif wrong:
            detail = "rank %d blamed something else: %s" % (wrong[0], f[wrong[0]][1][:300])
        elif late:
            detail = "rank(s) %s reported after more than 3 periods" % late
        else:
            verdict = "pass"
    finally:
        ended = job.end(args.deadline)
    if not ended:
        verdict, detail = "fail", (detail + "; " if detail else "") + "the job did not end (hang)"
    return verdict == "pass", victim, slowest, detail, log


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kill", type=int, default=50)
    ap.add_argument("--stop", type=int, default=50)
    ap.add_argument("--period", type=float, default=1.0, help="XSITE_HEARTBEAT, seconds")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--bytes", default="4M")
    ap.add_argument("--deadline", type=float, default=60)
    ap.add_argument("--perf", default=os.path.join(ROOT, "build", "bin", "xsite_allreduce_perf"))
    ap.add_argument("--keep-logs")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("rank_failures.py: needs root (network namespaces)")
    if not os.access(args.perf, os.X_OK):
        sys.exit("rank_failures.py: %s not built" % args.perf)
    work = tempfile.mkdtemp(prefix="xsite-rank-failures-")
    print("# rank failures: 2x2x2 ranks, --preset %s, all-reduce -A hier %s, XSITE_HEARTBEAT=%g s; "
          "%d SIGKILL and %d SIGSTOP trials" % (args.preset, args.bytes, args.period, args.kill, args.stop),
          flush=True)
    ok_all = True
    try:
        for sig, count in ((signal.SIGKILL, args.kill), (signal.SIGSTOP, args.stop)):
            passed, worst = 0, 0.0
            for n in range(1, count + 1):
                ok, victim, slowest, detail, log = trial(args, sig, n, work)
                passed += ok
                worst = max(worst, slowest or 0.0)
                print("%s %d: rank %d, slowest survivor %s, %s%s" % (
                    signal.Signals(sig).name, n, victim,
                    "%.2f s" % slowest if slowest is not None else "-", "pass" if ok else "FAIL",
                    "" if ok else " (" + detail + ")"), flush=True)
                if not ok:
                    ok_all = False
                    with open(log, "rb") as f:
                        sys.stderr.write(f.read()[-6000:].decode(errors="replace"))
            if count:
                print("%s: %d of %d named by every survivor within 3 periods (slowest %.2f s, 3 periods = %.1f s)"
                      % (signal.Signals(sig).name, passed, count, worst, 3 * args.period), flush=True)
    finally:
        if args.keep_logs:
            os.makedirs(args.keep_logs, exist_ok=True)
            for f in os.listdir(work):
                shutil.copy(os.path.join(work, f), args.keep_logs)
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok_all else 1)


if __name__ == "__main__":
    main()
