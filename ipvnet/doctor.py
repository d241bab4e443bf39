"""What this kernel supports, probed for real: the host-level checks here,
the link kinds by the engine (it creates each in a throwaway namespace)."""

from __future__ import annotations

import os

from ipvnet.kernel import Check


def probe() -> list[Check]:
    root = os.geteuid() == 0
    checks = [
        Check("root", root, "" if root else "run as root to change the kernel; probes below need it"),
        Check("netns", os.path.exists("/proc/self/ns/net"), "network namespaces"),
        Check("ipv6", os.path.exists("/proc/sys/net/ipv6"), "IPv6 stack"),
    ]
    if not root:
        return checks + [Check(kind, False, "not probed (needs root)") for kind in ("dummy", "ipvlan", "macvlan", "8021q")]
    from ipvnet.engine import NetlinkEngine

    with NetlinkEngine() as engine:
        return checks + engine.probe()
