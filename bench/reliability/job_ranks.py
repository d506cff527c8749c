"""The processes of a running tools/xsite-run job in netns mode, for the reliability scripts."""
import subprocess


def rank_processes(launcher_pid, exe_name):
    """rank -> (pid, environment, namespace) of the job's `exe_name` processes: those in the
    launcher's namespaces (named xs<launcher pid>-...) whose program path ends with `exe_name`
    (bytes) and whose environment has XSITE_RANK."""
    tag = "xs%d-" % launcher_pid
    out = {}
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for ns in [n for n in names if n.startswith(tag)]:
        for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split():
            try:
                with open("/proc/%s/environ" % pid, "rb") as f:
                    env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    exe = f.read().split(b"\0")[0]
            except OSError:
                continue
            if exe.endswith(exe_name) and b"XSITE_RANK" in env:
                out[int(env[b"XSITE_RANK"])] = (int(pid), env, ns)
    return out
