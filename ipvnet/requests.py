"""Typed requests and results of the service layer.

The CLI and `apply` build these from their own input (flags, a TOML file);
the service never sees "KEY=VALUE" strings."""

from __future__ import annotations

from typing import Any

from ipvnet.errors import InvalidArgument
from ipvnet.model import Endpoint, Network, normalize_options, validate_ifname, validate_name
from ipvnet.ops import Op
from ipvnet.record import dataclass, field


@dataclass(frozen=True)
class NetworkSpec:
    """`network create`, as asked."""

    name: str
    driver: str = "ipvlan"
    subnets: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    ip_ranges: tuple[str, ...] = ()
    aux_addresses: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    ipv4: bool = True
    ipv6: bool = False
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    cluster: str = ""

    def validated(self) -> NetworkSpec:
        """Names checked and options normalised (defaults filled in), before the lock is taken."""
        validate_name(self.name, "network name")
        opts = normalize_options(self.driver, self.options)
        if self.cluster:
            self._check_cluster(opts)
        return NetworkSpec(self.name, self.driver, self.subnets, self.gateways, self.ip_ranges,
                           dict(self.aux_addresses), self.internal, self.ipv4, self.ipv6, opts, dict(self.labels),
                           self.cluster)

    def _check_cluster(self, opts: dict[str, str]) -> None:
        """A cluster network's addresses come from the blocks this host claims, and
        other hosts reach them through its parent: ipvlan L3/L3S on a real parent."""
        validate_name(self.cluster, "cluster name")
        if self.driver != "ipvlan" or opts.get("ipvlan_mode") not in ("l3", "l3s"):
            raise InvalidArgument("a cluster network is ipvlan in l3 or l3s mode",
                                  "add -o ipvlan_mode=l3 (or l3s)")
        if "parent" not in opts:
            raise InvalidArgument("a cluster network needs -o parent=IF", "name the link toward the other hosts")
        given = [f for f, v in (("--subnet", self.subnets), ("--gateway", self.gateways),
                                ("--ip-range", self.ip_ranges), ("--aux-address", self.aux_addresses),
                                ("--internal", self.internal), ("--ipv6", self.ipv6),
                                ("--ipv4=false", not self.ipv4)) if v]
        if given:
            raise InvalidArgument(f"{given[0]} does not go with --cluster",
                                  "the cluster's CIDRs and block sizes decide a cluster network's addresses")

    @property
    def l3(self) -> bool:
        return self.driver == "ipvlan" and self.options.get("ipvlan_mode") in ("l3", "l3s")


@dataclass(frozen=True)
class AttachSpec:
    """`attach NS NET`, as asked."""

    ns: str
    network: str
    ip: str | None = None
    ip6: str | None = None
    ifname: str | None = None
    aliases: tuple[str, ...] = ()
    gw_priority: int = 0
    mac: str | None = None
    create: bool = False

    def validate(self) -> None:
        validate_name(self.ns, "namespace name")
        if self.ifname is not None:
            validate_ifname(self.ifname)
        for a in self.aliases:
            validate_name(a, "alias")


@dataclass
class Result:
    """What a mutating command did (or would do, with dry_run)."""

    ops: list[Op] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    network: Network | None = None
    endpoint: Endpoint | None = None
    removed: list[str] = field(default_factory=list)
    details: list[Any] = field(default_factory=list)
