"""Running a command inside a namespace.

Delegates to iproute2's `ip netns exec`, so that the mount namespace, the
/sys remount and the /etc/netns bind mounts are exactly those every other
tool on the host uses. Arguments go straight to execve: no shell.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

from ipvnet import nspath
from ipvnet.errors import NotFound


def _argv(ns: str, cmd: list[str]) -> list[str]:
    if not nspath.exists(ns):
        raise NotFound(f"network namespace {ns!r} does not exist", "list them with `ip netns list`")
    ip = shutil.which("ip") or "/usr/sbin/ip"
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    return [ip, "netns", "exec", ns, *cmd]


def exec_in_ns(ns: str, cmd: list[str]) -> None:
    """Replace this process with CMD in NS (its exit status becomes ours)."""
    argv = _argv(ns, cmd)
    os.execv(argv[0], argv)


def run_in_ns(ns: str, cmd: list[str]) -> int:
    """Run CMD in NS and wait; forward SIGINT/SIGTERM/SIGHUP to it so that the
    caller's cleanup (run-ns --rm) still happens after an interrupt."""
    argv = _argv(ns, cmd)
    proc = subprocess.Popen(argv)
    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def forward(signum: int, _frame: object) -> None:
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    old = {s: signal.signal(s, forward) for s in forwarded}
    try:
        rc = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return 128 - rc if rc < 0 else rc
