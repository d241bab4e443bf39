"""Drift of cluster networks: this host's blocks as the store, etcd and the
kernel see them (part of `check`, `check --repair` and `restore`).

For each joined cluster that has networks here:
- the lease: expired (the host was away longer than its TTL) -> register again;
- each block a local network holds: free in etcd -> re-claim it (by CAS);
  held by another host -> not ours any more: reported with the namespaces
  holding its addresses (not fixable), and our blackhole route for it goes;
  ours -> its blackhole route must be there;
- claims in etcd by this host that no local network records (a crash between
  claim and store write) -> released;
- blackhole routes of our protocol that no local block explains -> deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ipvnet.clusters import RT_PROTO, block_from_name, holder_of
from ipvnet.errors import IpvnetError
from ipvnet.kernel import Engine
from ipvnet.model import Network
from ipvnet.ops import RouteAdd, RouteDel
from ipvnet.store import State

if TYPE_CHECKING:
    from ipvnet.reconcile import Drift
    from ipvnet.store.cluster import ClusterBlocks


def blackhole(block: str, add: bool) -> RouteAdd | RouteDel:
    cls = RouteAdd if add else RouteDel
    return cls(None, 6 if ":" in block else 4, None, None, block, blackhole=True, proto=RT_PROTO)


def cluster_drift(state: State, engine: Engine, clusters: Callable[[str], ClusterBlocks], joined: list[str],
                  save: Callable[[Any], None]) -> list[Drift]:
    from ipvnet.reconcile import Drift

    routes = {r.dst for r in engine.routes() if r.blackhole and r.proto == RT_PROTO and r.dst}
    local = {str(s.subnet): n for n in state.networks.values() if n.cluster for s in n.subnets}
    out: list[Drift] = []
    for name in sorted({n.cluster for n in state.networks.values() if n.cluster} | set(joined)):
        if name not in joined:
            out.append(Drift("cluster", name, f"networks of cluster {name} remain but this host is not a member",
                             f"join it again (`ipvnet cluster join ... {name}`)", fixable=False))
            continue
        try:
            out += _one_cluster(name, state, clusters(name), routes, save)
        except IpvnetError as e:
            out.append(Drift("cluster", name, f"cluster {name}: {e.message}", "none until etcd answers",
                             fixable=False))
    for dst in sorted(routes - set(local)):
        out.append(Drift("stray-route", dst, f"blackhole route {dst} proto {RT_PROTO} belongs to no local block",
                         f"delete it (stop announcing {dst})", [blackhole(dst, add=False)]))
    return out


def _one_cluster(name: str, state: State, blocks: ClusterBlocks, routes: set[str],
                 save: Callable[[Any], None]) -> list[Drift]:
    from ipvnet.reconcile import Drift

    out: list[Drift] = []
    if blocks.m.lease and blocks.etcd.lease_ttl(blocks.m.lease) <= 0:
        def renew() -> None:
            blocks.register()
            save(blocks.m)
        out.append(Drift("lease", name, f"the lease of host {blocks.m.host} in cluster {name} expired",
                         "register again with a new lease", action=renew))
    holders = blocks.holders()
    nets = [n for n in state.networks.values() if n.cluster == name]
    mine = {str(s.subnet): n for n in nets for s in n.subnets}
    for dst, net in sorted(mine.items()):
        out += _block_drift(dst, net, holders.get(_name(dst)), blocks, dst in routes)
    for bname, kv in sorted(holders.items()):
        host, network = holder_of(kv.value)
        block = block_from_name(bname)
        if host == blocks.m.host and str(block) not in mine:
            out.append(Drift("orphan-claim", str(block), f"block {block} is claimed in etcd for {kv.value}, which no "
                             "local network records (a command died between claim and store write)",
                             f"release {block}", action=blocks.releaser(block, network)))
    return out


def _block_drift(dst: str, net: Network, holder: Any, blocks: ClusterBlocks, routed: bool) -> list[Drift]:
    from ipvnet.reconcile import Drift

    ours = blocks.m.value(net.name)
    block = block_from_name(_name(dst))
    if holder is None:
        return [Drift("block", dst, f"block {dst} of network {net.name} is not claimed in etcd (the lease lapsed)",
                      f"re-claim {dst}", [] if routed else [blackhole(dst, add=True)],
                      action=lambda: _reclaim(blocks, block, net.name))]
    if holder.value != ours:
        holders = [ep.ns for ep in net.endpoints.values() if any(a.ip in block for a in ep.addresses())]
        out = [Drift("block-taken", dst, f"block {dst} of network {net.name} was taken by {holder.value}; "
                     f"namespaces holding its addresses: {', '.join(sorted(holders)) or 'none'}",
                     "none: detach those namespaces and attach them again (new addresses)", fixable=False)]
        if routed:
            out.append(Drift("stray-route", dst, f"this host still announces {dst}, now held by {holder.value}",
                             f"delete the blackhole route {dst}", [blackhole(dst, add=False)]))
        return out
    if not routed:
        return [Drift("route", dst, f"blackhole route {dst} of network {net.name} is missing (not announced)",
                      "add it back", [blackhole(dst, add=True)])]
    return []


def _name(dst: str) -> str:
    addr, _, plen = dst.partition("/")
    return f"{addr}-{plen}"


def _reclaim(blocks: ClusterBlocks, block: Any, network: str) -> None:
    won, holder = blocks.claim(block, network)
    if not won:
        raise IpvnetError(f"block {block} was taken by {holder} meanwhile")

