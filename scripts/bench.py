#!/usr/bin/env python3
"""Attach/detach timing on a real ipvlan kernel (run in the UML guest by
`make bench`, or directly as root on a capable host).

Works in a sandbox (fresh network and mount namespace, tmpfs over
/run/netns, /etc/netns and the state dir) with a dummy `eth0` as parent, so
nothing it makes is visible outside. Prints and writes JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ipvnet import netns  # noqa: E402


def sandbox() -> None:
    c = netns.libc()
    if c.unshare(netns.CLONE_NEWNS | netns.CLONE_NEWNET) != 0:
        raise SystemExit("bench: unshare failed (run as root)")
    c.mount(b"none", b"/", None, netns.MS_REC | (1 << 18), None)
    for d in ("/run/netns", "/etc/netns"):
        os.makedirs(d, exist_ok=True)
        c.mount(b"tmpfs", d.encode(), b"tmpfs", 0, None)
    state = tempfile.mkdtemp(prefix="ipvnet-bench-")
    os.environ["IPVNET_STATE_DIR"] = state
    for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "link", "add", "eth0", "type", "dummy"],
                ["ip", "link", "set", "eth0", "up"]):
        subprocess.run(cmd, check=True)


def stats(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {
        "n": len(xs),
        "median_ms": round(statistics.median(xs) * 1000, 1),
        "p90_ms": round(xs[max(0, int(len(xs) * 0.9) - 1)] * 1000, 1),
    }


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    n = int(os.environ.get("IPVNET_BENCH_N", "20"))
    out = sys.argv[1] if len(sys.argv) > 1 else None
    sandbox()
    ipvnet = [sys.executable, "-m", "ipvnet"]
    subprocess.run([*ipvnet, "network", "create", "--subnet", "10.200.0.0/16", "-o", "parent=eth0.200", "b"],
                   check=True, stdout=subprocess.DEVNULL)
    res: dict[str, object] = {"python_pass_ms": stats([timed([sys.executable, "-c", "pass"]) for _ in range(5)])}
    names = [f"c{i}" for i in range(n)]
    for ns in names:
        subprocess.run(["ip", "netns", "add", ns], check=True)
    res["cli_attach"] = stats([timed([*ipvnet, "attach", ns, "b"]) for ns in names])
    res["cli_detach"] = stats([timed([*ipvnet, "detach", ns, "b"]) for ns in names])

    from ipvnet.service import Service

    att, det = [], []
    with Service() as svc:
        for ns in names:
            t = time.perf_counter()
            svc.attach(ns, "b")
            att.append(time.perf_counter() - t)
        for ns in names:
            t = time.perf_counter()
            svc.detach(ns, "b")
            det.append(time.perf_counter() - t)
    res["inprocess_attach"] = stats(att)
    res["inprocess_detach"] = stats(det)
    text = json.dumps(res, indent=2)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
