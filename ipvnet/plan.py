"""Planning: desired change + observed kernel facts -> ordered operations.

Pure. Each operation carries its own undo, so the executor can roll back a
half-applied plan newest-first without knowing what the plan meant, and
`--dry-run` is just printing the plan.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from ipvnet.model import PARENT_DUMMY, PARENT_VLAN, Endpoint, Network, parse_parent

IPVLAN_MODE_NUM = {"l2": 0, "l3": 1, "l3s": 2}
IPVLAN_FLAG_NUM = {"bridge": 0, "private": 1, "vepa": 2}
MACVLAN_MODE_NUM = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8}


@dataclass(frozen=True)
class Op:
    """One kernel operation. `ns` None means the root (host) namespace."""

    action: str
    ns: str | None = None
    args: dict[str, Any] = field(default_factory=dict, hash=False)
    undo: Op | None = None
    # A failed step named here is reported with this context ("create ipvlan link").
    what: str = ""

    def describe(self) -> str:
        """The step as the equivalent iproute2 command, for --dry-run and --debug."""
        a = self.args
        n = f"-n {self.ns} " if self.ns else ""
        if self.action == "netns_add":
            return f"ip netns add {a['name']}"
        if self.action == "netns_del":
            return f"ip netns del {a['name']}"
        if self.action == "link_add":
            kind = a["kind"]
            s = f"ip {n}link add {a['name']}"
            if a.get("link"):
                s += f" link {a['link']}"
            if a.get("target_ns"):
                s += f" netns {a['target_ns']}"
            if a.get("mtu"):
                s += f" mtu {a['mtu']}"
            if a.get("address"):
                s += f" address {a['address']}"
            s += f" type {kind}"
            if kind == "vlan":
                s += f" id {a['vlan_id']}"
            elif kind == "ipvlan":
                s += f" mode {a['mode']} {a['flag']}"
            elif kind == "macvlan":
                s += f" mode {a['mode']}"
            return s
        if self.action == "link_del":
            return f"ip {n}link del {a['name']}"
        if self.action == "link_set":
            s = f"ip {n}link set {a['name']}"
            if "new_name" in a:
                s += f" name {a['new_name']}"
            if "mtu" in a:
                s += f" mtu {a['mtu']}"
            if "up" in a:
                s += " up" if a["up"] else " down"
            return s
        if self.action in ("addr_add", "addr_del"):
            verb = "add" if self.action == "addr_add" else "del"
            s = f"ip {n}addr {verb} {a['address']} dev {a['ifname']}"
            return s + (" nodad" if a.get("nodad") and verb == "add" else "")
        if self.action in ("route_add", "route_del"):
            verb = "add" if self.action == "route_add" else "del"
            fam = "-6 " if a["family"] == 6 else ""
            via = f" via {a['gateway']}" if a.get("gateway") else ""
            return f"ip {fam}{n}route {verb} {a.get('dst') or 'default'}{via} dev {a['ifname']}"
        if self.action == "sysctl":
            ns = f"ip netns exec {self.ns} " if self.ns else ""
            # Slashes keep interface names with dots (eth0.20) unambiguous.
            return f"{ns}sysctl -w net/{a['key']}={a['value']}"
        return f"{self.action} {self.ns or ''} {a}"


def op_to_dict(op: Op) -> dict[str, Any]:
    d: dict[str, Any] = {"action": op.action, "ns": op.ns, "args": op.args, "what": op.what}
    if op.undo is not None:
        d["undo"] = op_to_dict(op.undo)
    return d


def op_from_dict(d: dict[str, Any]) -> Op:
    undo = d.get("undo")
    return Op(d["action"], d.get("ns"), dict(d.get("args", {})), op_from_dict(undo) if undo else None, d.get("what", ""))


def _del(ns: str | None, name: str) -> Op:
    return Op("link_del", ns, {"name": name})


# --- networks -------------------------------------------------------------


def plan_create_parent(net: Network, parent_exists: bool) -> list[Op]:
    """Make the parent link when ipvnet owns it (IF.VID or a dummy)."""
    ops: list[Op] = []
    if net.parent_kind == PARENT_VLAN and not parent_exists:
        spec = parse_parent(net.parent)
        ops.append(
            Op(
                "link_add",
                None,
                {"name": net.parent, "kind": "vlan", "link": spec.base, "vlan_id": spec.vlan_id},
                undo=_del(None, net.parent),
                what=f"create vlan link {net.parent}",
            )
        )
        ops.append(Op("link_set", None, {"name": net.parent, "up": True}, what=f"bring {net.parent} up"))
    elif net.parent_kind == PARENT_DUMMY and not parent_exists:
        args: dict[str, Any] = {"name": net.parent, "kind": "dummy"}
        if net.mtu:
            args["mtu"] = net.mtu
        ops.append(Op("link_add", None, args, undo=_del(None, net.parent), what=f"create dummy link {net.parent}"))
        ops.append(Op("link_set", None, {"name": net.parent, "up": True}, what=f"bring {net.parent} up"))
    return ops


def slave_link_args(net: Network, name: str) -> dict[str, Any]:
    """An ipvlan/macvlan link on the network's parent, in the network's mode."""
    args: dict[str, Any] = {"name": name, "link": net.parent, "kind": net.driver}
    if net.driver == "ipvlan":
        args["mode"] = net.options["ipvlan_mode"]
        args["flag"] = net.options["ipvlan_flag"]
    else:
        args["mode"] = net.options["macvlan_mode"]
    if net.mtu:
        args["mtu"] = net.mtu
    return args


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
    args = slave_link_args(net, name)
    ops = [Op("link_add", None, args, undo=_del(None, name), what=f"create host-access link {name}")]
    if addr.version == 6:
        ops.append(sysctl_op_root(f"ipv6/conf/{name}/accept_dad", "0"))
    a = {"ifname": name, "address": f"{addr}/{addr.max_prefixlen}", "nodad": addr.version == 6}
    ops.append(Op("addr_add", None, a, undo=Op("addr_del", None, a), what=f"add host-access address {addr}"))
    ops.append(Op("link_set", None, {"name": name, "up": True}, what=f"bring {name} up"))
    for cfg in net.subnets_of(addr.version):
        r = {"family": addr.version, "ifname": name, "gateway": None, "dst": str(cfg.ip_range or cfg.subnet)}
        ops.append(Op("route_add", None, r, undo=Op("route_del", None, r), what=f"route {r['dst']} via {name}"))
    return ops


def sysctl_op_root(key: str, value: str) -> Op:
    return Op("sysctl", None, {"key": key, "value": value}, what=f"set {key}")


def parent_still_used(net: Network, others: list[Network]) -> bool:
    return any(o.parent == net.parent and o.name != net.name for o in others)


def plan_remove_parent(net: Network, others: list[Network], parent_exists: bool) -> list[Op]:
    """Delete a parent ipvnet created once the last network on it goes."""
    ops = []
    if net.options.get("host_access"):
        ops.append(Op("link_del", None, {"name": host_link_name(net)}, what="delete host-access link"))
    if not parent_exists or net.parent_kind not in (PARENT_VLAN, PARENT_DUMMY):
        return ops
    if parent_still_used(net, others):
        return ops
    return ops + [Op("link_del", None, {"name": net.parent}, what=f"delete {net.parent_kind} link {net.parent}")]


# --- routes ---------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    family: int
    ifname: str
    gateway: str | None  # None: "default dev IF" (L3/L3S)

    def args(self) -> dict[str, Any]:
        return {"family": self.family, "ifname": self.ifname, "gateway": self.gateway}


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
    out = []
    for addr in ep.addresses():
        for cfg in net.subnets_of(addr.version):
            if addr.ip not in cfg.subnet:
                out.append((addr.version, str(cfg.subnet)))
    return out


def routed_destinations(attachments: list[tuple[Network, Endpoint]]) -> set[str]:
    """Subnets a namespace already reaches through its attachments (connected or routed)."""
    out = set()
    for net, ep in attachments:
        out.update(str(a.network) for a in ep.addresses())
        out.update(dst for _, dst in subnet_routes(net, ep))
    return out


def plan_subnet_routes(net: Network, ep: Endpoint, existing: list[tuple[Network, Endpoint]]) -> list[Op]:
    """Routes to the network's other subnets, skipping any another attachment
    of the namespace already routes (a second route to it would clash)."""
    taken = routed_destinations(existing)
    ops = []
    for family, dst in subnet_routes(net, ep):
        if dst in taken:
            continue
        r = {"family": family, "ifname": ep.ifname, "gateway": None, "dst": dst}
        ops.append(Op("route_add", ep.ns, r, undo=Op("route_del", ep.ns, r), what=f"add route {dst} dev {ep.ifname}"))
    return ops


def route_owner(attachments: list[tuple[Network, Endpoint]], family: int) -> tuple[Network, Endpoint] | None:
    """Highest --gw-priority wins; ties go to the earliest attached."""
    best = None
    for net, ep in attachments:
        if route_of(net, ep, family) is None:
            continue
        if best is None or (ep.gw_priority, -ep.seq) > (best[1].gw_priority, -best[1].seq):
            best = (net, ep)
    return best


def _route_add(ns: str, r: Route) -> Op:
    return Op("route_add", ns, r.args(), undo=Op("route_del", ns, r.args()), what=f"add IPv{r.family} default route")


def _route_del(ns: str, r: Route) -> Op:
    return Op("route_del", ns, r.args(), undo=Op("route_add", ns, r.args()), what=f"move IPv{r.family} default route")


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
            ops.append(_route_del(ns, old_r))
        if new_r is not None:
            ops.append(_route_add(ns, new_r))
    return ops


# --- attach / detach ------------------------------------------------------


def sysctl_op(ns: str, key: str, value: str) -> Op:
    return Op("sysctl", ns, {"key": key, "value": value}, what=f"set {key}")


def plan_attach(
    net: Network,
    ep: Endpoint,
    tmp_name: str,
    existing: list[tuple[Network, Endpoint]],
    create_ns: bool,
    ipv6_available: bool = True,
) -> list[Op]:
    """Create the link under a temporary name directly in NS, rename, address, route.

    The link is born in NS (net_ns_fd at creation), so it never exists under
    its final name in the host namespace, where `eth0` would collide.
    """
    ns = ep.ns
    ops: list[Op] = []
    if create_ns:
        ops.append(
            Op(
                "netns_add",
                None,
                {"name": ns},
                undo=Op("netns_del", None, {"name": ns}),
                what=f"create namespace {ns}",
            )
        )
    args = slave_link_args(net, tmp_name)
    args["target_ns"] = ns
    if net.driver == "macvlan" and ep.mac:
        args["address"] = ep.mac
    ops.append(Op("link_add", None, args, undo=_del(ns, tmp_name), what=f"create {net.driver} link"))
    ops.append(
        Op(
            "link_set",
            ns,
            {"name": tmp_name, "new_name": ep.ifname},
            # Renaming back fails once the link is up (EBUSY): deleting it is the undo.
            undo=_del(ns, ep.ifname),
            what=f"rename link to {ep.ifname}",
        )
    )
    if ipv6_available:
        if ep.ipv6 is None:
            ops.append(sysctl_op(ns, f"ipv6/conf/{ep.ifname}/disable_ipv6", "1"))
        else:
            # Explicitly on: a host whose default is disable_ipv6=1 would refuse the address.
            ops.append(sysctl_op(ns, f"ipv6/conf/{ep.ifname}/disable_ipv6", "0"))
            ops.append(sysctl_op(ns, f"ipv6/conf/{ep.ifname}/ndisc_notify", "1"))
    if ep.ipv4 is not None:
        # Announce the address with a gratuitous ARP when the link comes up.
        ops.append(sysctl_op(ns, f"ipv4/conf/{ep.ifname}/arp_notify", "1"))
    for addr in ep.addresses():
        a = {"ifname": ep.ifname, "address": str(addr), "nodad": addr.version == 6}
        ops.append(Op("addr_add", ns, a, undo=Op("addr_del", ns, a), what=f"add address {addr}"))
    ops.append(Op("link_set", ns, {"name": "lo", "up": True}, what="bring lo up"))
    ops.append(Op("link_set", ns, {"name": ep.ifname, "up": True}, what=f"bring {ep.ifname} up"))
    ops.extend(plan_subnet_routes(net, ep, existing))
    ops.extend(plan_route_handover(ns, existing, existing + [(net, ep)]))
    return ops


def plan_detach(
    net: Network, ep: Endpoint, existing: list[tuple[Network, Endpoint]], ns_exists: bool, link_exists: bool
) -> list[Op]:
    """Delete the link explicitly (never by the namespace's death), then hand over routes."""
    if not ns_exists:
        return []
    ops: list[Op] = []
    if link_exists:
        ops.append(Op("link_del", ep.ns, {"name": ep.ifname}, what=f"delete link {ep.ifname}"))
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

