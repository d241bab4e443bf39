"""Observe: each command reads every kernel and host fact it needs in one
step, into one frozen object, before anything is planned. The planners are
then pure functions of (store state, request, facts)."""

from __future__ import annotations

import ipaddress
import os

from ipvnet import names
from ipvnet.clusters import ClusterConfig
from ipvnet.kernel import Engine, LinkInfo
from ipvnet.model import IPAddress, IPNetwork, Network, parse_parent
from ipvnet.record import dataclass


@dataclass(frozen=True)
class CreateFacts:
    parent: LinkInfo | None  # the -o parent link, if it exists
    base: LinkInfo | None  # for parent=IF.VID that does not exist: IF
    host_routes: tuple[IPNetwork, ...]  # destinations in the host's tables (default-pool picking)
    parent_addresses: tuple[str, ...]  # global addresses on the parent ("a/len")
    nameservers: tuple[IPAddress, ...]
    host_seed: str  # for the ULA prefix
    cluster: ClusterConfig | None = None  # the joined cluster a --cluster network names


def host_seed() -> str:
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(p) as f:
                v = f.read().strip()
                if v:
                    return v
        except OSError:
            continue
    return os.uname().nodename


def observe_create(engine: Engine, parent: str | None, default_v4: bool,
                   cluster: ClusterConfig | None = None) -> CreateFacts:
    """PARENT as given with -o parent (None: a dummy will be made); DEFAULT_V4:
    a default IPv4 pool will be picked, so the host's routes matter."""
    link = base = None
    addrs: tuple[str, ...] = ()
    if parent is not None:
        link = engine.link(parent)
        spec = parse_parent(parent)
        if link is None and spec.base is not None:
            base = engine.link(spec.base)
        if link is not None:
            addrs = tuple(a for dev, a in engine.addresses() if dev == parent
                          and not ipaddress.ip_interface(a).ip.is_link_local)
    routes: tuple[IPNetwork, ...] = ()
    if default_v4:
        routes = tuple(ipaddress.ip_network(r.dst, strict=False) for r in engine.routes() if r.dst)
    return CreateFacts(link, base, routes, addrs,
                       tuple(names.host_nameserver_addresses(names.read_host_resolv())), host_seed(), cluster)


@dataclass(frozen=True)
class AttachFacts:
    ns_exists: bool
    ns_links: frozenset[str]  # link names already in the namespace
    parent: LinkInfo | None
    ipv6: bool  # the host has an IPv6 stack


def observe_attach(engine: Engine, net: Network, ns: str) -> AttachFacts:
    exists = engine.ns_exists(ns)
    links = frozenset(engine.link_names(ns)) if exists else frozenset()
    return AttachFacts(exists, links, engine.link(net.parent), engine.ipv6_available())


@dataclass(frozen=True)
class DetachFacts:
    ns_exists: bool
    link_exists: bool


def observe_detach(engine: Engine, ns: str, ifname: str) -> DetachFacts:
    exists = engine.ns_exists(ns)
    return DetachFacts(exists, exists and engine.link_index(ifname, ns) is not None)
