"""`network create`, `network rm`, `network prune`.

`plan_network` is pure (request + facts + the other networks -> a Network);
the command functions observe, plan, run and commit in one transaction.
"""

from __future__ import annotations

import datetime
import ipaddress
from typing import TYPE_CHECKING

from ipvnet import ipam
from ipvnet.errors import Conflict, ErrorList, InvalidArgument, IpvnetError, NotFound
from ipvnet.facts import CreateFacts, observe_create
from ipvnet.model import (
    PARENT_DUMMY,
    PARENT_EXISTING,
    PARENT_VLAN,
    Network,
    SubnetConfig,
    dummy_parent_name,
    parse_parent,
)
from ipvnet.ops import Op
from ipvnet.plan import plan_create_parent, plan_host_access, plan_remove_parent
from ipvnet.record import replace
from ipvnet.requests import NetworkSpec, Result
from ipvnet.service.attach import detach_in, networks_of

if TYPE_CHECKING:
    from ipvnet.service import Service
    from ipvnet.txn import Transaction


def parent_kind(spec: NetworkSpec, facts: CreateFacts, others: list[Network]) -> str:
    """How ipvnet comes to own the parent: an existing link (never deleted), a
    vlan it makes (IF.VID), or shared ownership of a vlan it made for another network."""
    parent = spec.options["parent"]
    if facts.parent is None:
        p = parse_parent(parent)
        if p.base is None:
            raise NotFound(f"parent interface {parent!r} does not exist", "check the name with `ip link`")
        if facts.base is None:
            raise NotFound(f"base interface {p.base!r} for vlan parent {parent!r} does not exist",
                           "check the name with `ip link`")
        return PARENT_VLAN
    if any(o.parent == parent and o.parent_kind == PARENT_VLAN for o in others):
        return PARENT_VLAN
    return PARENT_EXISTING


def plan_network(spec: NetworkSpec, facts: CreateFacts, others: list[Network], net_id: str,
                 created: str) -> tuple[Network, list[str]]:
    """The network SPEC asks for, validated against FACTS and the OTHER networks; and warnings."""
    internal = spec.internal
    if "parent" in spec.options:
        parent, kind = spec.options["parent"], parent_kind(spec, facts, others)
    else:
        parent, kind = dummy_parent_name(spec.driver, net_id), PARENT_DUMMY
        internal = True  # a dummy parent reaches nothing: Docker marks such networks internal
    check_parent_sharing(spec.driver, spec.options, parent, others)
    if spec.cluster:
        return _cluster_network(spec, facts, parent, kind, net_id, created), []
    req = ipam.SubnetRequest(spec.subnets, spec.gateways, spec.ip_ranges,
                             tuple(f"{k}={v}" for k, v in spec.aux_addresses.items()), spec.ipv6, spec.ipv4)
    sp = ipam.plan_subnets(req, l3=spec.l3, internal=internal,
                           other_subnets=[s.subnet for o in others for s in o.subnets],
                           host_routes=facts.host_routes, host_nameservers=facts.nameservers,
                           ula48=ipam.ula_prefix(facts.host_seed))
    subnets = sp.subnets
    if "host_access" in spec.options:
        subnets = reserve_host_access(subnets, spec.options, spec.driver)
    warnings = list(sp.warnings)
    if spec.l3:
        warnings.extend(l3_overlap_warnings(parent, facts.parent_addresses, subnets))
    net = Network(name=spec.name, id=net_id, created=created, driver=spec.driver, parent=parent, parent_kind=kind,
                  subnets=tuple(subnets), options=dict(spec.options), labels=dict(spec.labels), internal=internal,
                  enable_ipv6=sp.enable_ipv6, enable_ipv4=sp.enable_ipv4)
    return net, warnings


def create_in(tx: Transaction, spec: NetworkSpec, net_id: str) -> Result:
    """Create the (validated) network SPEC inside TX."""
    if spec.name in tx.state.networks:
        raise Conflict(f"network {spec.name!r} already exists", "choose another name or remove it first")
    default_v4 = spec.ipv4 and all(":" in s for s in spec.subnets) and not spec.cluster
    cluster = tx.cluster(spec.cluster).config if spec.cluster and _joined(tx, spec.cluster) else None
    facts = observe_create(tx.engine, spec.options.get("parent"), default_v4, cluster)
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    net, warnings = plan_network(spec, facts, list(tx.state.networks.values()), net_id, created)
    ops = plan_create_parent(net, facts.parent is not None) + plan_host_access(net)
    tx.kernel(ops)
    tx.state.networks[net.name] = net
    return Result(ops, warnings, net)


def _cluster_network(spec: NetworkSpec, facts: CreateFacts, parent: str, kind: str, net_id: str,
                     created: str) -> Network:
    """No subnets yet: they are the blocks this host will claim, from the cluster's CIDRs."""
    if facts.cluster is None:
        raise NotFound(f"this host has not joined cluster {spec.cluster!r}",
                       f"run `ipvnet cluster join --etcd URL {spec.cluster}` first")
    families = {c.version for c in facts.cluster.cidrs}
    return Network(name=spec.name, id=net_id, created=created, driver=spec.driver, parent=parent, parent_kind=kind,
                   subnets=(), options=dict(spec.options), labels=dict(spec.labels), enable_ipv6=6 in families,
                   enable_ipv4=4 in families, cluster=spec.cluster)


def _joined(tx: Transaction, name: str) -> bool:
    from ipvnet.store.cluster import memberships

    return name in memberships(tx.store.dir)


def create_network(svc: Service, spec: NetworkSpec) -> Result:
    spec = spec.validated()
    with svc.transaction(f"create network {spec.name}") as tx:
        return create_in(tx, spec, svc.rand.hex(32))


def remove_in(tx: Transaction, name: str, force: bool) -> list[Op]:
    """Remove network NAME inside TX (detaching its namespaces first with FORCE)."""
    net = tx.state.network(name)
    if net.endpoints and not force:
        raise Conflict(f"network {net.name} has attached namespaces: {', '.join(sorted(net.endpoints))}",
                       "detach them first, or use --force")
    ops: list[Op] = []
    members = sorted(net.endpoints, key=lambda n: net.endpoints[n].seq)
    with tx.progress(len(members) if len(members) >= 20 else 0, f"remove network {net.name}") as advance:
        for ns in members:
            ops.extend(detach_in(tx, tx.state.networks[net.name], ns, hosts=False))
            advance()
    del tx.state.networks[net.name]
    if net.cluster:
        from ipvnet.service.cluster import remove_blocks

        ops.extend(remove_blocks(tx, net))
    exists = tx.engine.link(net.parent) is not None
    parent_ops = plan_remove_parent(net, list(tx.state.networks.values()), exists)
    tx.kernel(parent_ops)
    hosts = tx.hosts()
    hosts.remove_network(net.name)
    for ns in members:  # once for all, not once per detach
        hosts.settle_ns(ns, networks_of(tx.state, ns))
    return ops + parent_ops


def remove_networks(svc: Service, names: tuple[str, ...], force: bool = False) -> Result:
    """Remove each network in its own transaction; keeps going past a failure and reports them all."""
    res, errors = Result(), []
    for name in names:
        try:
            with svc.transaction(f"remove network {name}") as tx:
                res.ops.extend(remove_in(tx, name, force))
            res.removed.append(name)
        except IpvnetError as e:
            errors.append(e)
    if errors:
        if len(names) == 1:
            raise errors[0]
        raise ErrorList(errors)
    return res


def prune(svc: Service) -> Result:
    res = Result()
    unused = sorted(n.name for n in svc.read().networks.values() if not n.endpoints)
    with svc.progress(len(unused), "network prune") as advance:
        for name in unused:
            try:
                with svc.transaction(f"remove network {name}") as tx:
                    res.ops.extend(remove_in(tx, name, force=False))
                res.removed.append(name)
            except (NotFound, Conflict):
                pass  # changed under us: not unused any more
            finally:
                advance()
    return res


def check_parent_sharing(driver: str, opts: dict[str, str], parent: str, others: list[Network]) -> None:
    """The kernel keeps one ipvlan mode (and flag) per parent, and a parent
    carries either ipvlan or macvlan links, never both."""
    for o in others:
        if o.parent != parent:
            continue
        if o.driver != driver:
            raise Conflict(f"parent {parent} already carries {o.driver} network {o.name}",
                           f"a parent takes either ipvlan or macvlan links; use another parent for {driver}")
        if driver == "ipvlan":
            for key in ("ipvlan_mode", "ipvlan_flag"):
                if o.options.get(key) != opts[key]:
                    raise Conflict(
                        f"parent {parent} is used by network {o.name} with {key}={o.options.get(key)}, "
                        f"which conflicts with {key}={opts[key]}",
                        f"the kernel keeps one {key.split('_')[1]} per parent; use {key}={o.options.get(key)} "
                        "or another parent",
                    )
        elif "passthru" in (opts["macvlan_mode"], o.options.get("macvlan_mode")):
            raise Conflict(f"parent {parent} is used by network {o.name}; macvlan passthru cannot share a parent",
                           "use another parent")


def reserve_host_access(subnets: list[SubnetConfig], opts: dict[str, str], driver: str) -> list[SubnetConfig]:
    """The host-access address must lie in a subnet and is reserved there
    (as aux-address `host_access`) so IPAM never hands it to a namespace."""
    addr = ipaddress.ip_address(opts["host_access"])
    if driver == "macvlan" and opts.get("macvlan_mode") in ("passthru", "private", "vepa"):
        raise InvalidArgument(f"host_access needs macvlan_mode=bridge, not {opts['macvlan_mode']}",
                              "only bridge mode lets the host-side link reach its siblings")
    out, found = [], False
    for cfg in subnets:
        if cfg.version == addr.version and addr in cfg.subnet:
            ipam.check_static_reserved(cfg, addr, "host_access")
            cfg = replace(cfg, aux=cfg.aux + (("host_access", addr),))
            found = True
        out.append(cfg)
    if not found:
        raise InvalidArgument(f"host_access address {addr} is not in a subnet of the network",
                              "pick an unused address inside a --subnet")
    return out


def l3_overlap_warnings(parent: str, parent_addresses: tuple[str, ...], subnets: list[SubnetConfig]) -> list[str]:
    """L3 routes between the namespaces and the parent's side: a subnet that
    holds the parent's own address puts the host on both sides of that route."""
    out = []
    for a in parent_addresses:
        ip = ipaddress.ip_interface(a).ip
        for cfg in subnets:
            if cfg.version == ip.version and ip in cfg.subnet:
                out.append(f"subnet {cfg.subnet} holds {ip}, an address of parent {parent}: "
                           "in ipvlan l3/l3s mode give namespaces a subnet apart from the host's")
    return out

