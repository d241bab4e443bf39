"""What this kernel supports, probed for real.

Modules load on demand, so reading /proc/modules would say "no" for things
that work. Instead, as root, we create each link kind in a throwaway
namespace and delete the namespace again.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from ipvnet import netns


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


def probe() -> list[Check]:
    root = os.geteuid() == 0
    checks = [
        Check("root", root, "" if root else "run as root to change the kernel; probes below need it"),
        Check("netns", os.path.exists("/proc/self/ns/net"), "network namespaces"),
        Check("ipv6", os.path.exists("/proc/sys/net/ipv6"), "IPv6 stack"),
    ]
    if not root:
        for kind in ("dummy", "ipvlan", "macvlan", "8021q"):
            checks.append(Check(kind, False, "not probed (needs root)"))
        return checks
    from ipvnet.engine import Engine

    ns = f"ipvnet-doctor-{secrets.token_hex(3)}"
    try:
        netns.create(ns)
    except OSError as e:
        checks.append(Check("netns-create", False, str(e)))
        return checks
    engine = Engine()
    try:
        ipr = engine.ipr(ns)
        parent = None

        def attempt(label: str, **spec: object) -> bool:
            try:
                ipr.link("add", **spec)
                checks.append(Check(label, True, f"{spec['kind']} links"))
                return True
            except Exception as e:  # noqa: BLE001 - any failure means unsupported
                checks.append(Check(label, False, f"cannot create {spec['kind']} links: {e}"))
                return False

        if attempt("dummy", ifname="probe0", kind="dummy"):
            parent = ipr.link_lookup(ifname="probe0")[0]
        elif attempt("veth", ifname="probe0", kind="veth", peer="probe1"):
            parent = ipr.link_lookup(ifname="probe0")[0]
        if parent is None:
            for kind in ("ipvlan", "macvlan", "8021q"):
                checks.append(Check(kind, False, "not probed: no parent link could be made"))
        else:
            attempt("ipvlan", ifname="probe-ipv", kind="ipvlan", link=parent, ipvlan_mode=0)
            # A parent carries ipvlan or macvlan, never both: use a second one.
            if attempt("veth", ifname="probe2", kind="veth", peer="probe3") if not _has(checks, "veth") else True:
                p2 = ipr.link_lookup(ifname="probe2") or [parent]
                attempt("macvlan", ifname="probe-mv", kind="macvlan", link=p2[0], macvlan_mode="bridge")
            attempt("8021q", ifname="probe.5", kind="vlan", link=parent, vlan_id=5)
    finally:
        engine.close()
        netns.remove(ns)
    return checks


def _has(checks: list[Check], name: str) -> bool:
    return any(c.name == name for c in checks)
