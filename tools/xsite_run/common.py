"""What every module of xsite-run shares: its name and directory, messages, errors, and the
signals the launcher has received."""

import os
import sys

PROG = "xsite-run"
# The directory of the xsite-run script, which holds this package: tools/ in the source tree,
# bin/ of a build tree or of an install. Its neighbours (xsite-netns-rsh, xsite-wanem,
# xsite-wanrelay) are looked for here.
LAUNCHER_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def log(msg):
    sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.stderr.flush()


class LauncherError(Exception):
    pass


class Interrupted(Exception):
    def __init__(self, signum):
        super().__init__("interrupted by signal %d" % signum)
        self.signum = signum


# Signals received by the launcher. During network setup they abort the setup
# (checked between commands, so no half-made object is forgotten); while ranks
# run they are forwarded to the ranks (launch.supervise).
pending_signals = []


def on_signal(signum, _frame):
    pending_signals.append(signum)


def check_interrupted():
    if pending_signals:
        raise Interrupted(pending_signals[0])
