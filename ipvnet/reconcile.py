"""`check`, `check --repair` and `restore`: compare store and kernel, fix drift.

The store is the intent. Drift is found in this order, and repaired in it:
1. interrupted transactions (a journal left by a killed process): their
   kernel operations are undone newest-first — the store never recorded them;
2. parents ipvnet created that are missing (recreated) and stray dummy
   parents `di-`/`dm-` no network owns (deleted);
3. namespaces, links, addresses and default routes of every attachment
   (a missing link is recreated with the same name, addresses and routes);
4. hosts files.
Repair never deletes a link or namespace ipvnet did not create: parents
that existed before ipvnet are only reported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from ipvnet import names
from ipvnet.journal import Journal
from ipvnet.kernel import Engine, LinkInfo, RouteInfo
from ipvnet.model import PARENT_EXISTING, Network, random_hex
from ipvnet.ops import LinkDel, NetnsAdd, Op, RouteAdd, RouteDel, undo_from_dict
from ipvnet.plan import (
    host_link_name,
    plan_attach,
    plan_create_parent,
    plan_host_access,
    plan_subnet_routes,
    route_of,
    route_owner,
)
from ipvnet.record import dataclass, field
from ipvnet.store import State

# Links only ipvnet names so: dummy parents and host-access shims.
OWNED_RE = re.compile(r"(di|dm|ih|mh)-[0-9a-f]{12}")
TMP_RE = re.compile(r"ipv[0-9a-f]{8}")


@dataclass
class Drift:
    kind: str
    subject: str
    message: str
    repair: str
    ops: list[Op] = field(default_factory=list)
    fixable: bool = True
    journal: str | None = None  # journal file to discard once repaired
    hosts: tuple[str, ...] = ()  # networks whose hosts files to rewrite
    action: Callable[[], None] | None = None  # a repair outside the kernel (etcd), run before the ops

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "repair": self.repair,
            "fixable": self.fixable,
            "operations": [op.describe() for op in self.ops],
        }


def find_drift(state: State, engine: Engine, journal: Journal, hosts: names.Names,
               clusters: Callable[[], list[Drift]] = list) -> list[Drift]:
    """Every difference, in the order repair must fix them (see the module docstring).
    CLUSTERS finds the drift of cluster networks (ipvnet.cluster_drift), after the links."""
    root_links = {li.name for li in engine.links()}
    nets = sorted(state.networks.values(), key=lambda n: n.name)
    drift = _journal_drift(journal)
    drift += _parent_drift(nets, root_links)
    drift += _shim_drift(nets, root_links)  # after the parents: a recreated parent gets its shim back
    drift += _stray_drift(nets, root_links)
    by_ns: dict[str, list[tuple[Network, Any]]] = {}
    for net in nets:
        for ep in net.endpoints.values():
            by_ns.setdefault(ep.ns, []).append((net, ep))
    for ns in sorted(by_ns):
        drift += _namespace_drift(ns, sorted(by_ns[ns], key=lambda p: p[1].seq), engine)
    return drift + clusters() + _duplicate_drift(state) + _hosts_drift(state, hosts)


def _journal_drift(journal: Journal) -> list[Drift]:
    out = []
    for path, entry in journal.pending():
        undo = [u for u in (undo_from_dict(d) for d in reversed(entry.get("ops", []))) if u is not None]
        command = entry.get("command", "?")
        out.append(Drift("interrupted", command, f"`{command}` (pid {entry.get('pid', '?')}) was interrupted mid-way",
                         "undo its kernel operations (the store never recorded them)", undo, journal=path))
    return out


def _parent_drift(nets: list[Network], root_links: set[str]) -> list[Drift]:
    out: list[Drift] = []
    seen: set[str] = set()
    for net in nets:
        if net.parent in root_links or net.parent in seen:
            continue
        if net.parent_kind == PARENT_EXISTING:
            out.append(Drift("missing-parent", net.name, f"parent link {net.parent} of network {net.name} does not exist",
                             "none: ipvnet did not create it; create it, or remove the network", fixable=False))
            continue
        seen.add(net.parent)
        base = net.parent.rpartition(".")[0]
        if net.parent_kind == "vlan" and base not in root_links:
            out.append(Drift("missing-parent", net.parent,
                             f"vlan parent {net.parent} of network {net.name} is missing, and so is its base link {base}",
                             f"none until {base} exists", fixable=False))
            continue
        out.append(Drift("missing-parent", net.parent, f"{net.parent_kind} parent {net.parent} of network {net.name} "
                         "is missing", f"create {net.parent}", plan_create_parent(net, parent_exists=False)))
    return out


def _shim_drift(nets: list[Network], root_links: set[str]) -> list[Drift]:
    out = []
    for net in nets:
        shim = host_link_name(net)
        if net.options.get("host_access") and shim not in root_links:
            out.append(Drift("missing-link", shim, f"host-access link {shim} of network {net.name} is missing",
                             f"create {shim}", plan_host_access(net)))
    return out


def _stray_drift(nets: list[Network], root_links: set[str]) -> list[Drift]:
    """Links only ipvnet names so (dummies, shims) that no network owns."""
    owned = {n.parent for n in nets} | {host_link_name(n) for n in nets if n.options.get("host_access")}
    return [Drift("stray-link", name, f"link {name} was made by ipvnet but belongs to no network", f"delete {name}",
                  [LinkDel(None, name)]) for name in sorted(root_links) if OWNED_RE.fullmatch(name) and name not in owned]


def _namespace_drift(ns: str, atts: list[tuple[Network, Any]], engine: Engine) -> list[Drift]:
    out: list[Drift] = []
    exists = engine.ns_exists(ns)
    links = {li.name: li for li in engine.links(ns)} if exists else {}
    addrs: dict[str, set[str]] = {}
    for ifname, a in engine.addresses(ns) if exists else []:
        addrs.setdefault(ifname, set()).add(a)
    if not exists:
        out.append(Drift("missing-namespace", ns, f"network namespace {ns} is missing",
                         f"create {ns} and reattach it ({', '.join(n.name for n, _ in atts)})", [NetnsAdd(None, ns)]))
    healthy: list[tuple[Network, Any]] = []
    for net, ep in atts:
        d = _link_drift(ns, net, ep, links.get(ep.ifname), addrs.get(ep.ifname, set()))
        if d is None:
            healthy.append((net, ep))
        else:
            out.append(d)
    out += [Drift("stray-link", f"{ns}/{name}", f"half-made link {name} in {ns}", f"delete {name}", [LinkDel(ns, name)])
            for name, li in sorted(links.items()) if TMP_RE.fullmatch(name) and li.kind in ("ipvlan", "macvlan")]
    all_routes = engine.routes(ns) if exists else []
    out.extend(_subnet_route_drift(ns, atts, healthy, all_routes))
    out.extend(_default_route_drift(ns, atts, healthy, all_routes))
    return out


def _link_drift(ns: str, net: Network, ep: Any, li: LinkInfo | None, have: set[str]) -> Drift | None:
    """A missing or wrong link: recreated with its addresses (routes are settled once every link is back)."""
    kind_ok = li is not None and li.kind == net.driver
    missing = [str(a) for a in ep.addresses() if str(a) not in have]
    if kind_ok and not missing:
        return None
    ops: list[Op] = []
    if li is not None:
        ops.append(LinkDel(ns, ep.ifname))
        what = f"link {ep.ifname} in {ns} is " + (
            f"a {li.kind or 'plain'} link, not {net.driver}" if not kind_ok else f"missing {', '.join(missing)}")
    else:
        what = f"link {ep.ifname} of {ns} on network {net.name} is missing"
    attach_ops = plan_attach(net, ep, "ipv" + random_hex(4), [], create_ns=False)
    ops.extend(op for op in attach_ops if not _is_default_route_op(op))
    return Drift("missing-link", f"{ns}/{net.name}", what, f"recreate {ep.ifname} with its addresses", ops)


def _default_route_drift(
    ns: str, atts: list[tuple[Network, Any]], healthy: list[tuple[Network, Any]], routes: list[RouteInfo]
) -> list[Drift]:
    """Default routes: what the store implies, per family, against what is there."""
    out = []
    healthy_links = {e.ifname for _, e in healthy}
    for family in (4, 6):
        owner = route_owner(atts, family)
        want = route_of(*owner, family) if owner else None
        have = [(r.dev, r.gateway) for r in routes if r.family == family and r.dst is None and not r.blackhole]
        want_t = (want.ifname, want.gateway) if want else None
        if (want_t is not None and [want_t] == have) or (want_t is None and not have):
            continue
        # Routes on links being recreated vanish with them; only healthy ones need deleting.
        ops: list[Op] = [RouteDel(ns, family, dev, gw) for dev, gw in have if dev in healthy_links]
        if want is not None:
            ops.append(want.add(ns))
        desc = f"via {want.gateway} dev {want.ifname}" if want and want.gateway else (
            f"dev {want.ifname}" if want else "none")
        out.append(Drift("route", ns, f"IPv{family} default route of {ns} is {have or 'missing'}, want {desc}",
                         f"set the IPv{family} default route to {desc}", ops))
    return out


def _is_default_route_op(op: Op) -> bool:
    return isinstance(op, (RouteAdd, RouteDel)) and op.dst is None


def _subnet_route_drift(
    ns: str, atts: list[tuple[Network, Any]], healthy: list[tuple[Network, Any]], routes: list[RouteInfo]
) -> list[Drift]:
    """Routes to the other subnets of internal L3 networks, on links that are
    healthy (a recreated link gets its routes with it)."""
    have = {(r.dst, r.dev) for r in routes if r.dst is not None}
    ok = {(n.name, e.ns) for n, e in healthy}
    out = []
    for i, (net, ep) in enumerate(atts):
        if (net.name, ep.ns) not in ok:
            continue
        for op in plan_subnet_routes(net, ep, atts[:i]):
            if (op.dst, ep.ifname) in have:
                continue
            out.append(Drift("route", ns, f"route {op.dst} dev {ep.ifname} of {ns} is missing",
                             f"add route {op.dst} dev {ep.ifname}", [op]))
    return out


def _duplicate_drift(state: State) -> list[Drift]:
    """Two endpoints holding one address on one parent (the kernel refuses the
    second; a hand-edited or merged store can still hold it)."""
    seen: dict[tuple[str, Any], str] = {}
    out = []
    for net in sorted(state.networks.values(), key=lambda n: n.name):
        for ep in sorted(net.endpoints.values(), key=lambda e: e.seq):
            for a in ep.addresses():
                who = f"namespace {ep.ns} on network {net.name}"
                first = seen.setdefault((net.parent, a.ip), who)
                if first != who:
                    out.append(Drift("duplicate-address", f"{net.parent}/{a.ip}",
                                     f"address {a.ip} on parent {net.parent} is held by {first} and by {who}",
                                     "none: detach one of them", fixable=False))
    return out


def _hosts_drift(state: State, hosts: names.Names) -> list[Drift]:
    out = []
    for net in sorted(state.networks.values(), key=lambda n: n.name):
        path = hosts.network_file(net.name)
        want = names.network_hosts_text(net) if net.endpoints else None
        try:
            with open(path, encoding="utf-8") as f:
                have: str | None = f.read()
        except OSError:
            have = None
        if have != want:
            out.append(
                Drift("hosts", net.name, f"hosts file of network {net.name} is out of date", "rewrite it",
                      hosts=(net.name,))
            )
    known = set(state.networks)
    try:
        for n in sorted(os.listdir(hosts.hosts_dir)):
            if n not in known:
                out.append(Drift("hosts", n, f"hosts file {n} belongs to no network", "delete it", hosts=(n,)))
    except FileNotFoundError:
        pass
    return out


def repair(
    drift: list[Drift], state: State, engine: Engine, hosts: names.Names, advance: Callable[[], None] = lambda: None
) -> list[str]:
    """Apply every fixable repair; returns the failures (repair keeps going)."""
    failures = []
    for d in drift:
        advance()
        if not d.fixable:
            continue
        try:
            if d.kind == "interrupted":
                for op in d.ops:
                    try:
                        engine.apply(op)
                    except Exception:  # noqa: BLE001 - undoing what may never have happened
                        pass
                if d.journal:
                    Journal.discard(d.journal)
            else:
                if d.action is not None:
                    d.action()
                engine.run(d.ops)
            for name in d.hosts:
                net = state.networks.get(name)
                if net is None:
                    hosts.remove_network(name)
                else:
                    hosts.sync_network(net)
        except Exception as e:  # noqa: BLE001 - reported, repair continues
            failures.append(f"{d.subject}: {e}")
    # Per-namespace hosts links follow the networks' files.
    by_ns: dict[str, list[Network]] = {}
    for net in state.networks.values():
        for ns in net.endpoints:
            by_ns.setdefault(ns, []).append(net)
    for ns, nets in by_ns.items():
        try:
            hosts.point_ns(ns, sorted(nets, key=lambda n: n.name), resolv=True)
        except OSError as e:
            failures.append(f"{ns}: hosts: {e}")
    return failures
