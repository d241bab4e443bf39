"""`attach`, `detach`, `run-ns`: namespaces on networks.

`plan_endpoint` is pure (state + request + facts -> the endpoint and its
operations); `attach_in` and `detach_in` run one inside a transaction, so a
batch is the same code with a savepoint per namespace.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ipvnet import ipam
from ipvnet.errors import Conflict, InvalidArgument, KernelError, NotFound
from ipvnet.facts import AttachFacts, observe_attach, observe_detach
from ipvnet.model import Endpoint, Network
from ipvnet.ops import Op
from ipvnet.plan import next_ifname, plan_attach, plan_detach
from ipvnet.requests import AttachSpec, Result
from ipvnet.store import State

if TYPE_CHECKING:
    from ipvnet.service import Random, Service
    from ipvnet.txn import Transaction


def attachments_of(state: State, ns: str) -> list[tuple[Network, Endpoint]]:
    return sorted(((n, n.endpoints[ns]) for n in state.networks.values() if ns in n.endpoints),
                  key=lambda p: p[1].seq)


def networks_of(state: State, ns: str) -> list[Network]:
    return [n for n, _ in attachments_of(state, ns)]


def siblings_of(state: State, net: Network) -> list[Network]:
    """Other networks on NET's parent: they share one address space."""
    return [o for o in state.networks.values() if o.parent == net.parent and o.name != net.name]


def multi_homed(state: State, net: Network, exclude: str) -> list[tuple[str, list[Network]]]:
    """Members of NET (other than EXCLUDE) that are on other networks too."""
    if len(state.networks) < 2:
        return []
    counts: dict[str, int] = {}
    for n in state.networks.values():
        for ns in n.endpoints:
            counts[ns] = counts.get(ns, 0) + 1
    return [(ns, networks_of(state, ns)) for ns in net.endpoints if ns != exclude and counts.get(ns, 0) > 1]


def check_attachable(net: Network, spec: AttachSpec, facts: AttachFacts, taken: set[str]) -> None:
    if spec.ns in net.endpoints:
        raise Conflict(f"namespace {spec.ns} is already attached to network {net.name}")
    if not facts.ns_exists and not spec.create:
        raise NotFound(f"network namespace {spec.ns!r} does not exist",
                       f"create it with `ip netns add {spec.ns}` or pass --create")
    if net.driver == "macvlan" and net.mode == "passthru" and net.endpoints:
        raise Conflict(f"network {net.name} is macvlan passthru and already has a namespace attached",
                       "passthru allows one link per parent")
    if facts.parent is None:
        raise KernelError(f"parent link {net.parent} of network {net.name} is missing",
                          "run `ipvnet restore` (after a reboot) or `ipvnet check --repair`")
    if spec.ifname is not None and spec.ifname in taken:
        raise Conflict(f"interface {spec.ifname} already exists in namespace {spec.ns}", "choose another --ifname")
    if spec.mac is not None and net.driver != "macvlan":
        raise InvalidArgument("--mac applies to macvlan networks only", "ipvlan links share the parent's MAC")


def plan_endpoint(state: State, net: Network, spec: AttachSpec, facts: AttachFacts,
                  rand: Random) -> tuple[Endpoint, list[Op]]:
    """The new endpoint (addresses from IPAM, interface name, MAC) and the operations that make it."""
    existing = attachments_of(state, spec.ns)
    taken = {ep.ifname for _, ep in existing} | set(facts.ns_links)
    check_attachable(net, spec, facts, taken)
    v4, v6 = ipam.assign(net, spec.ns, spec.ip, spec.ip6, siblings_of(state, net))
    if net.driver == "macvlan":
        mac = validate_mac(spec.mac) if spec.mac is not None else rand.mac()
    else:
        mac = facts.parent.mac if facts.parent is not None else ""  # ipvlan links carry the parent's MAC
    ep = Endpoint(ns=spec.ns, ifname=next_ifname(taken, spec.ifname), endpoint_id=rand.hex(32),
                  seq=state.seq + 1, ipv4=v4, ipv6=v6, mac=mac, aliases=tuple(spec.aliases),
                  gw_priority=spec.gw_priority, created_ns=spec.create and not facts.ns_exists)
    ops = plan_attach(net, ep, "ipv" + rand.hex(4), existing, create_ns=not facts.ns_exists,
                      ipv6_available=facts.ipv6)
    return ep, ops


def attach_in(tx: Transaction, spec: AttachSpec, rand: Random) -> Result:
    state = tx.state
    net = state.network(spec.network)
    if net.cluster and spec.ns not in net.endpoints:
        from ipvnet.service.cluster import make_room

        net = make_room(tx, net, spec, siblings_of(state, net))
    ep, ops = plan_endpoint(state, net, spec, observe_attach(tx.engine, net, spec.ns), rand)
    tx.kernel(ops)
    state.seq = ep.seq
    new = state.networks[net.name] = net.with_endpoint(ep)
    tx.hosts().on_attach(new, ep, networks_of(state, spec.ns), multi_homed(state, new, exclude=spec.ns))
    tx.engine.forget(spec.ns)  # a batch may touch thousands of namespaces: one socket at a time
    return Result(ops, network=new, endpoint=ep)


def attach(svc: Service, spec: AttachSpec) -> Result:
    spec.validate()
    with svc.transaction(f"attach {spec.ns} to {spec.network}") as tx:
        return attach_in(tx, spec, svc.rand)


def attach_many(svc: Service, specs: list[AttachSpec]) -> list[Result]:
    """Several namespaces in one transaction: one lock, one store write, a savepoint each."""
    for spec in specs:
        spec.validate()
    out = []
    with svc.transaction(f"attach to {specs[0].network}") as tx:
        for spec in specs:
            with tx.step(f"attach {spec.ns}", len(specs)):
                out.append(attach_in(tx, spec, svc.rand))
    return out


def detach_in(tx: Transaction, net: Network, ns: str, hosts: bool = True) -> list[Op]:
    """Detach NS from NET inside TX. HOSTS False: the caller settles the
    hosts files once for many detaches (a network being removed)."""
    ep = net.endpoints[ns]
    facts = observe_detach(tx.engine, ns, ep.ifname)
    ops = plan_detach(net, ep, attachments_of(tx.state, ns), facts.ns_exists, facts.link_exists)
    tx.kernel(ops)
    after = tx.state.networks[net.name] = net.without_endpoint(ns)
    if hosts:
        tx.hosts().on_detach(after, ns, networks_of(tx.state, ns), multi_homed(tx.state, after, exclude=ns))
    tx.engine.forget(ns)
    return ops


def detach(svc: Service, ns: str, network: str) -> Result:
    AttachSpec(ns, network).validate()
    with svc.transaction(f"detach {ns} from {network}") as tx:
        net = tx.state.network(network)
        if ns not in net.endpoints:
            raise NotFound(f"namespace {ns} is not attached to network {net.name}")
        return Result(detach_in(tx, net, ns), network=net, endpoint=net.endpoints[ns])


def delete_namespace(svc: Service, ns: str) -> None:
    """For run-ns --rm: detach NS everywhere and delete it (ipvnet made it)."""
    from ipvnet.ops import NetnsDel

    with svc.transaction(f"remove namespace {ns}") as tx:
        for net in networks_of(tx.state, ns):
            detach_in(tx, net, ns)
        tx.kernel([NetnsDel(None, ns)])
        tx.hosts().remove_ns(ns)


def run_ns(svc: Service, spec: AttachSpec, cmd: list[str], remove: bool) -> int:
    """`docker run --net`: a new namespace, attached, running CMD; with REMOVE it goes afterwards."""
    from ipvnet import runner

    spec.validate()
    if svc.engine.ns_exists(spec.ns):
        raise Conflict(f"network namespace {spec.ns} already exists", "pick another --name, or use `ipvnet exec`")
    attach(svc, spec)
    try:
        return runner.run_in_ns(spec.ns, cmd)
    finally:
        if remove:
            delete_namespace(svc, spec.ns)


def validate_mac(mac: str) -> str:
    parts = mac.lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise InvalidArgument(f"invalid MAC address {mac!r}", "expected six hex pairs like 02:42:ac:11:00:02")
    if int(parts[0], 16) & 1:
        raise InvalidArgument(f"MAC address {mac} is a multicast address", "the lowest bit of the first byte must be 0")
    return ":".join(parts)


def ipv6_available() -> bool:
    return os.path.exists("/proc/sys/net/ipv6")
