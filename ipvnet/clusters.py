"""Clusters: L3 networks that span hosts (pure model; no I/O).

A cluster is a name, a CIDR per family and a block size per family, kept in
etcd under a key prefix. Each host claims whole blocks of a cluster CIDR for
a network (one etcd transaction each, bound to the host's lease) and hands
out addresses inside its blocks with the ordinary host-local IPAM; addresses
never go to etcd. Each owned block becomes a `blackhole BLOCK proto 250`
route in the host's namespace, which the host's BGP daemon (BIRD, FRR)
learns from the kernel and announces. Calico works the same way.

Keys (etcd), under PREFIX/NAME/:
    config               the cluster's definition (JSON), written once by `cluster init`
    hosts/HOST           {"lease", "ttl"}, bound to the host's lease
    blocks/A.B.C.D-LEN   "HOST/NETWORK" of the holder, bound to the holder's lease
    used/A.B.C.D-LEN     "1" once a block was ever claimed (claims prefer fresh blocks)
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from typing import Any

from ipvnet.errors import InvalidArgument
from ipvnet.model import IPNetwork, parse_network, validate_name
from ipvnet.record import dataclass, field

RT_PROTO = 250  # our routes' protocol number (named "ipvnet" in /etc/iproute2/rt_protos.d/ipvnet.conf)
RT_PROTO_NAME = "ipvnet"
DEFAULT_PREFIX = "/ipvnet"
DEFAULT_BLOCK = {4: 26, 6: 122}
DEFAULT_TTL = 90  # seconds of lease; `cluster heartbeat` runs every 30 s from its systemd timer


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    cidrs: tuple[IPNetwork, ...]  # at most one per family
    block_sizes: dict[int, int] = field(default_factory=lambda: dict(DEFAULT_BLOCK))
    prefix: str = DEFAULT_PREFIX

    def cidr(self, version: int) -> IPNetwork | None:
        return next((c for c in self.cidrs if c.version == version), None)

    def block_size(self, version: int) -> int:
        return self.block_sizes.get(version, DEFAULT_BLOCK[version])

    def key(self, *parts: str) -> str:
        return "/".join((self.prefix.rstrip("/"), self.name, *parts))

    def to_json(self) -> str:
        """Canonical text: `cluster init` compares it byte for byte with what etcd holds."""
        return json.dumps({"name": self.name, "cidrs": [str(c) for c in self.cidrs],
                           "block_sizes": {str(v): s for v, s in sorted(self.block_sizes.items())}},
                          sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, prefix: str = DEFAULT_PREFIX) -> ClusterConfig:
        d = json.loads(text)
        return cls(d["name"], tuple(ipaddress.ip_network(c) for c in d["cidrs"]),
                   {int(v): int(s) for v, s in d.get("block_sizes", {}).items()}, prefix)

    def describe(self) -> str:
        return ", ".join(f"{c} in /{self.block_size(c.version)} blocks" for c in self.cidrs)


def make_config(name: str, cidrs: tuple[str, ...], block4: int | None, block6: int | None,
                prefix: str = DEFAULT_PREFIX) -> ClusterConfig:
    """Validate `cluster init`'s arguments."""
    validate_name(name, "cluster name")
    if not prefix.startswith("/") or prefix.endswith("/") and prefix != "/":
        raise InvalidArgument(f"invalid etcd key prefix {prefix!r}", "use an absolute key such as /ipvnet")
    nets = [parse_network(c, "cluster CIDR") for c in cidrs]
    if not nets:
        raise InvalidArgument("a cluster needs a --cidr", "give one per family, e.g. --cidr 10.244.0.0/16")
    if len({n.version for n in nets}) != len(nets):
        raise InvalidArgument("give at most one --cidr per family")
    sizes = {4: block4 or DEFAULT_BLOCK[4], 6: block6 or DEFAULT_BLOCK[6]}
    for n in nets:
        size = sizes[n.version]
        if not n.prefixlen <= size <= n.max_prefixlen:
            raise InvalidArgument(f"block size /{size} does not fit cluster CIDR {n}",
                                  f"use a block size from /{n.prefixlen} to /{n.max_prefixlen}")
    return ClusterConfig(name, tuple(sorted(nets, key=lambda n: n.version)),
                         {v: s for v, s in sizes.items() if any(n.version == v for n in nets)}, prefix)


def block_name(block: IPNetwork) -> str:
    """Key component of a block: `10.244.0.64-26` (no '/' inside a key component)."""
    return f"{block.network_address}-{block.prefixlen}"


def block_from_name(name: str) -> IPNetwork:
    addr, _, plen = name.rpartition("-")
    return ipaddress.ip_network(f"{addr}/{plen}")


def claim_value(host: str, network: str) -> str:
    """What a block's key holds: who claimed it, for which of its networks."""
    return f"{host}/{network}"


def holder_of(value: str) -> tuple[str, str]:
    host, _, network = value.partition("/")
    return host, network


def candidates(cidr: IPNetwork, size: int, held: set[str], used: set[str]) -> Iterator[IPNetwork]:
    """Free blocks of CIDR: never-used ones first (in address order), then
    ones released before, so an address that just left a host is not handed
    straight to another while stale routes to it may still be around."""
    reused: list[IPNetwork] = []
    for block in cidr.subnets(new_prefix=size):
        name = block_name(block)
        if name in held:
            continue
        if name in used:
            reused.append(block)
        else:
            yield block
    yield from reused


@dataclass
class Membership:
    """This host's membership of a cluster (`<state-dir>/clusters/NAME.toml`)."""

    config: ClusterConfig
    endpoints: tuple[str, ...]
    host: str
    lease: int = 0
    ttl: int = DEFAULT_TTL
    tls: dict[str, str] = field(default_factory=dict)  # cacert, cert, key
    auth: dict[str, str] = field(default_factory=dict)  # user, password
    timeout: float = 2.0

    @property
    def name(self) -> str:
        return self.config.name

    def value(self, network: str) -> str:
        return claim_value(self.host, network)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"schema": 1, "name": self.name, "config": self.config.to_json(),
                             "prefix": self.config.prefix, "endpoints": list(self.endpoints), "host": self.host,
                             "lease": self.lease, "ttl": self.ttl, "timeout": self.timeout}
        if self.tls:
            d["tls"] = dict(self.tls)
        if self.auth:
            d["auth"] = dict(self.auth)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Membership:
        return cls(ClusterConfig.from_json(d["config"], d.get("prefix", DEFAULT_PREFIX)),
                   tuple(d.get("endpoints", ())), d["host"], int(d.get("lease", 0)), int(d.get("ttl", DEFAULT_TTL)),
                   dict(d.get("tls", {})), dict(d.get("auth", {})), float(d.get("timeout", 2.0)))
