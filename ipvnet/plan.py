"""Planning: desired change + observed kernel facts -> ordered operations.

Pure. Each operation knows its own undo (ipvnet.ops), so the executor can
roll back a half-applied plan newest-first without knowing what the plan
meant, and `--dry-run` is just printing the plan.
"""

from __future__ import annotations

import ipaddress

from ipvnet.model import PARENT_DUMMY, PARENT_VLAN, Endpoint, Network, parse_parent
from ipvnet.ops import AddrAdd, LinkAdd, LinkDel, LinkSet, NetnsAdd, Op, RouteAdd, RouteDel, Sysctl
from ipvnet.record import dataclass

# --- networks -------------------------------------------------------------


def plan_create_parent(net: Network, parent_exists: bool) -> list[Op]:
    """Make the parent link when ipvnet owns it (IF.VID or a dummy)."""
    if parent_exists or net.parent_kind not in (PARENT_VLAN, PARENT_DUMMY):
        return []
    if net.parent_kind == PARENT_VLAN:
        spec = parse_parent(net.parent)
        add = LinkAdd(None, net.parent, "vlan", link=spec.base, vlan_id=spec.vlan_id)
    else:
        add = LinkAdd(None, net.parent, "dummy", mtu=net.mtu)
    return [add, LinkSet(None, net.parent, up=True)]


def slave_link(net: Network, name: str, target_ns: str | None = None, address: str | None = None) -> LinkAdd:
    """An ipvlan/macvlan link on the network's parent, in the network's mode."""
    if net.driver == "ipvlan":
        mode, flag = net.options["ipvlan_mode"], net.options["ipvlan_flag"]
    else:
        mode, flag = net.options["macvlan_mode"], None
    return LinkAdd(None, name, net.driver, link=net.parent, target_ns=target_ns, mtu=net.mtu,
                   address=address if net.driver == "macvlan" else None, mode=mode, flag=flag)


def host_link_name(net: Network) -> str:
    """The host-side shim: `ih-<12 hex>` (ipvlan) or `mh-<12 hex>` (macvlan), 15 bytes."""
    return ("ih-" if net.driver == "ipvlan" else "mh-") + net.id[:12]


def plan_host_access(net: Network) -> list[Op]:
    """A link of the network's own driver on the host side of the parent, so the
    host can reach its namespaces (the kernel blocks parent <-> child traffic).

    It holds the host-access address as a /32 (/128) and routes the network's
    ranges (or subnets) of that family through itself.
    """
    ip = net.options.get("host_access")
    if not ip:
        return []
    name = host_link_name(net)
    addr = ipaddress.ip_address(ip)
    ops: list[Op] = [slave_link(net, name)]
    if addr.version == 6:
        ops.append(Sysctl(None, f"ipv6/conf/{name}/accept_dad", "0"))
    ops.append(AddrAdd(None, name, f"{addr}/{addr.max_prefixlen}", addr.version == 6))
    ops.append(LinkSet(None, name, up=True))
    for cfg in net.subnets_of(addr.version):
        ops.append(RouteAdd(None, addr.version, name, None, str(cfg.ip_range or cfg.subnet)))
    return ops


def parent_still_used(net: Network, others: list[Network]) -> bool:
    return any(o.parent == net.parent and o.name != net.name for o in others)


def plan_remove_parent(net: Network, others: list[Network], parent_exists: bool) -> list[Op]:
    """Delete a parent ipvnet created once the last network on it goes."""
    ops: list[Op] = []
    if net.options.get("host_access"):
        ops.append(LinkDel(None, host_link_name(net)))
    if not parent_exists or net.parent_kind not in (PARENT_VLAN, PARENT_DUMMY):
        return ops
    if parent_still_used(net, others):
        return ops
    return ops + [LinkDel(None, net.parent)]


# --- routes ---------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    family: int
    ifname: str
    gateway: str | None  # None: "default dev IF" (L3/L3S)

    def add(self, ns: str) -> RouteAdd:
        return RouteAdd(ns, self.family, self.ifname, self.gateway)

    def delete(self, ns: str) -> RouteDel:
        return RouteDel(ns, self.family, self.ifname, self.gateway)


def route_of(net: Network, ep: Endpoint, family: int) -> Route | None:
    """The default route this attachment would give its namespace, if any."""
    if net.internal:
        return None
    addr = ep.ipv4 if family == 4 else ep.ipv6
    if addr is None:
        return None
    if net.is_l3:
        return Route(family, ep.ifname, None)
    cfg = net.subnet_for(addr.ip)
    if cfg is None or cfg.gateway is None:
        return None
    return Route(family, ep.ifname, str(cfg.gateway))


def subnet_routes(net: Network, ep: Endpoint) -> list[tuple[int, str]]:
    """(family, subnet) routes an internal L3/L3S attachment needs: `SUBNET dev IF`
    to every other subnet of its network, per family it has an address in.

    An internal network has no default route, and in L3 mode the kernel routes
    between subnets only when the namespace sends to the link; without these
    the guide's two-subnet, no-parent L3 network cannot reach its other half.
    Non-internal L3 has `default dev IF`, which covers them.
    """
    if not (net.is_l3 and net.internal):
        return []
    out: list[tuple[int, str]] = []
    for addr in ep.addresses():
        for cfg in net.subnets_of(addr.version):
            if addr.ip not in cfg.subnet:
                out.append((addr.version, str(cfg.subnet)))
    return out


def routed_destinations(attachments: list[tuple[Network, Endpoint]]) -> set[str]:
    """Subnets a namespace already reaches through its attachments (connected or routed)."""
    out: set[str] = set()
    for net, ep in attachments:
        out.update(str(a.network) for a in ep.addresses())
        out.update(dst for _, dst in subnet_routes(net, ep))
    return out


def plan_subnet_routes(net: Network, ep: Endpoint, existing: list[tuple[Network, Endpoint]]) -> list[RouteAdd]:
    """Routes to the network's other subnets, skipping any another attachment
    of the namespace already routes (a second route to it would clash)."""
    taken = routed_destinations(existing)
    return [RouteAdd(ep.ns, family, ep.ifname, None, dst) for family, dst in subnet_routes(net, ep) if dst not in taken]


def route_owner(attachments: list[tuple[Network, Endpoint]], family: int) -> tuple[Network, Endpoint] | None:
    """Highest --gw-priority wins; ties go to the earliest attached."""
    best = None
    for net, ep in attachments:
        if route_of(net, ep, family) is None:
            continue
        if best is None or (ep.gw_priority, -ep.seq) > (best[1].gw_priority, -best[1].seq):
            best = (net, ep)
    return best


def plan_route_handover(
    ns: str, before: list[tuple[Network, Endpoint]], after: list[tuple[Network, Endpoint]], gone: str | None = None
) -> list[Op]:
    """Move each family's default route to its new owner.

    `gone` names a link being deleted: its routes vanish with it, so they
    are not deleted explicitly.
    """
    ops: list[Op] = []
    for family in (4, 6):
        old = route_owner(before, family)
        new = route_owner(after, family)
        old_r = route_of(*old, family) if old else None
        new_r = route_of(*new, family) if new else None
        if old_r == new_r:
            continue
        if old_r is not None and old_r.ifname != gone:
            ops.append(old_r.delete(ns))
        if new_r is not None:
            ops.append(new_r.add(ns))
    return ops


# --- attach / detach ------------------------------------------------------


def plan_link_setup(net: Network, ep: Endpoint, tmp_name: str, ipv6_available: bool = True) -> list[Op]:
    """Create the link under a temporary name directly in NS, rename, address, bring up.

    The link is born in NS (net_ns_fd at creation), so it never exists under
    its final name in the host namespace, where `eth0` would collide.
    """
    ns, ifname = ep.ns, ep.ifname
    ops: list[Op] = [slave_link(net, tmp_name, target_ns=ns, address=ep.mac or None),
                     LinkSet(ns, tmp_name, new_name=ifname)]
    if ipv6_available:
        if ep.ipv6 is None:
            ops.append(Sysctl(ns, f"ipv6/conf/{ifname}/disable_ipv6", "1"))
        else:
            # Explicitly on: a host whose default is disable_ipv6=1 would refuse the address.
            ops.append(Sysctl(ns, f"ipv6/conf/{ifname}/disable_ipv6", "0"))
            ops.append(Sysctl(ns, f"ipv6/conf/{ifname}/ndisc_notify", "1"))
    if ep.ipv4 is not None:
        # Announce the address with a gratuitous ARP when the link comes up.
        ops.append(Sysctl(ns, f"ipv4/conf/{ifname}/arp_notify", "1"))
    # IPv4 before the link comes up (arp_notify announces it then); IPv6 after:
    # on a link that is down a `nodad` address still waits for the DAD worker,
    # and until it runs the ipvlan port does not know the address (measured:
    # the first ping fails). On an up link it is usable at once, and with
    # ndisc_notify its completion sends the unsolicited NA.
    if ep.ipv4 is not None:
        ops.append(AddrAdd(ns, ifname, str(ep.ipv4)))
    ops.append(LinkSet(ns, "lo", up=True))
    ops.append(LinkSet(ns, ifname, up=True))
    if ep.ipv6 is not None:
        ops.append(AddrAdd(ns, ifname, str(ep.ipv6), True))
    return ops


def plan_attach(
    net: Network,
    ep: Endpoint,
    tmp_name: str,
    existing: list[tuple[Network, Endpoint]],
    create_ns: bool,
    ipv6_available: bool = True,
) -> list[Op]:
    """Namespace (if asked), link, subnet routes, then the default-route handover."""
    ops: list[Op] = [NetnsAdd(None, ep.ns)] if create_ns else []
    ops.extend(plan_link_setup(net, ep, tmp_name, ipv6_available))
    ops.extend(plan_subnet_routes(net, ep, existing))
    ops.extend(plan_route_handover(ep.ns, existing, existing + [(net, ep)]))
    return ops


def plan_detach(
    net: Network, ep: Endpoint, existing: list[tuple[Network, Endpoint]], ns_exists: bool, link_exists: bool
) -> list[Op]:
    """Delete the link explicitly (never by the namespace's death), then hand over routes."""
    if not ns_exists:
        return []
    ops: list[Op] = [LinkDel(ep.ns, ep.ifname)] if link_exists else []
    remaining = [(n, e) for n, e in existing if not (n.name == net.name and e.ns == ep.ns)]
    ops.extend(plan_route_handover(ep.ns, existing, remaining, gone=ep.ifname))
    return ops


def next_ifname(taken: set[str], requested: str | None = None) -> str:
    if requested:
        return requested
    i = 0
    while f"eth{i}" in taken:
        i += 1
    return f"eth{i}"
