"""Routes upstream routers need to reach L3/L3S namespaces through this host.

In L3 mode the host routes for its namespaces, so a router must send their
addresses to the host's own address on the parent. No peer ships this; we
render it for iproute2, BIRD 2 and FRR, or as JSON. Pure: the caller passes
the host's addresses on each parent.
"""

from __future__ import annotations

import ipaddress

from ipvnet.model import Network
from ipvnet.record import asdict, dataclass


@dataclass(frozen=True)
class ExportRoute:
    network: str
    namespace: str  # "" for a whole subnet
    destination: str
    via: str | None


def export_routes(nets: list[Network], host_addrs: dict[str, list[str]], aggregate: bool = False) -> list[ExportRoute]:
    """One route per namespace address (/32, /128), or per subnet with AGGREGATE.
    HOST_ADDRS: parent link -> its global addresses ("a/len")."""
    out = []
    for net in sorted(nets, key=lambda n: n.name):
        if not net.is_l3 or net.internal:
            continue
        vias: dict[int, str] = {}
        for a in host_addrs.get(net.parent, []):
            ip = ipaddress.ip_interface(a).ip
            vias.setdefault(ip.version, str(ip))
        if aggregate or net.cluster:  # a cluster network: this host's blocks
            for cfg in net.subnets:
                out.append(ExportRoute(net.name, "", str(cfg.subnet), vias.get(cfg.version)))
            continue
        for ep in sorted(net.endpoints.values(), key=lambda e: e.seq):
            for addr in ep.addresses():
                dst = f"{addr.ip}/{addr.max_prefixlen}"
                out.append(ExportRoute(net.name, ep.ns, dst, vias.get(addr.version)))
    return out


def render(routes: list[ExportRoute], fmt: str) -> list[str]:
    """Lines in FMT (ip, bird, frr); a route without a next hop becomes a comment."""
    lines = []
    for r in routes:
        v6 = ":" in r.destination
        who = f"{r.network}/{r.namespace}" if r.namespace else r.network
        if r.via is None:
            lines.append(f"# {r.destination} ({who}): the parent has no IPv{6 if v6 else 4} address to route via")
        elif fmt == "ip":
            lines.append(f"ip {'-6 ' if v6 else ''}route add {r.destination} via {r.via}  # {who}")
        elif fmt == "bird":
            lines.append(f"route {r.destination} via {r.via};  # {who}")
        elif fmt == "frr":
            lines.append(f"{'ipv6' if v6 else 'ip'} route {r.destination} {r.via}  ! {who}")
    return lines


def as_json(routes: list[ExportRoute]) -> list[dict[str, str | None]]:
    return [asdict(r) for r in routes]
