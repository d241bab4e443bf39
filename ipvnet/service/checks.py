"""`check [--repair]`, `restore` and `routes`: reading the kernel against the store."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from ipvnet.journal import Journal
from ipvnet.names import Names

if TYPE_CHECKING:
    from ipvnet.service import Service


def check(svc: Service, repair: bool = False) -> tuple[list[Any], list[str]]:
    """Drift between store and kernel; with REPAIR, fix what can be fixed.
    Returns (drift found, repair failures)."""
    from ipvnet import reconcile
    from ipvnet.service import boot_id, require_root

    if repair:
        require_root("check --repair")
    with svc.store.locked(exclusive=repair):
        state = svc.store.load()
        names = Names(svc.store.dir)
        drift = reconcile.find_drift(state, svc.engine, Journal(svc.store.dir), names,
                                     lambda: _cluster_drift(svc, state))
        failures: list[str] = []
        if repair:
            with svc.progress(len(drift), "repair") as advance:
                failures = reconcile.repair(drift, state, svc.engine, names, advance)
            current = boot_id()
            if state.networks and state.boot_id != current:
                state.boot_id = current
                svc.store.save(state)
        return drift, failures


def _cluster_drift(svc: Service, state: Any) -> list[Any]:
    from ipvnet.store.cluster import ClusterBlocks, load_membership, memberships, save_membership

    joined = memberships(svc.store.dir)
    if not joined and not any(n.cluster for n in state.networks.values()):
        return []
    from ipvnet.cluster_drift import cluster_drift

    cache: dict[str, ClusterBlocks] = {}

    def blocks(name: str) -> ClusterBlocks:
        if name not in cache:
            cache[name] = ClusterBlocks(load_membership(svc.store.dir, name))
        return cache[name]

    return cluster_drift(state, svc.engine, blocks, joined, lambda m: save_membership(svc.store.dir, m))


def export_routes(svc: Service, network: str | None, aggregate: bool = False) -> list[Any]:
    from ipvnet.routes import export_routes as export

    state = svc.read()
    nets = [state.network(network)] if network else list(state.networks.values())
    host_addrs: dict[str, list[str]] = {}
    for ifname, addr in svc.engine.addresses():
        if not ipaddress.ip_interface(addr).ip.is_link_local:
            host_addrs.setdefault(ifname, []).append(addr)
    return export(nets, host_addrs, aggregate)
