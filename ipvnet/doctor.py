"""What this kernel supports, probed for real.

Modules load on demand, so reading /proc/modules would say "no" for things
that work. Instead, as root, we create each link kind in a throwaway
namespace and delete the namespace again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ipvnet import netns
from ipvnet.model import random_hex


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

    ns = f"ipvnet-doctor-{random_hex(3)}"
    try:
        netns.create(ns)
    except OSError as e:
        checks.append(Check("netns-create", False, str(e)))
        return checks
    engine = Engine()
    try:
        ipr = engine.ipr(ns)

        def attempt(label: str, **spec: object) -> bool:
            try:
                ipr.link("add", **spec)
                checks.append(Check(label, True, f"{spec['kind']} links"))
                return True
            except Exception as e:  # noqa: BLE001 - any failure means unsupported
                checks.append(Check(label, False, f"cannot create {spec['kind']} links: {e}"))
                return False

        # A parent carries ipvlan or macvlan links, never both: each gets its own.
        # Without dummy support, a veth end stands in as the ipvlan/vlan parent.
        if attempt("dummy", ifname="probe0", kind="dummy") or attempt(
            "veth", ifname="probe0", kind="veth", peer="probe0p"
        ):
            parent = ipr.link_lookup(ifname="probe0")[0]
            attempt("ipvlan", ifname="probe-ipv", kind="ipvlan", link=parent, ipvlan_mode=0)
            attempt("8021q", ifname="probe.5", kind="vlan", link=parent, vlan_id=5)
        if _quiet(ipr, ifname="probe1", kind="veth", peer="probe1p") or attempt(
            "veth", ifname="probe1", kind="veth", peer="probe1p"
        ):
            parent = ipr.link_lookup(ifname="probe1")[0]
            attempt("macvlan", ifname="probe-mv", kind="macvlan", link=parent, macvlan_mode="bridge")
    finally:
        engine.close()
        netns.remove(ns)
    return checks


def _quiet(ipr: object, **spec: object) -> bool:
    """Create a helper link whose own support was already reported."""
    try:
        ipr.link("add", **spec)  # type: ignore[attr-defined]
        return True
    except Exception:  # noqa: BLE001
        return False
