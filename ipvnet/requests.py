"""Typed requests and results of the service layer.

The CLI and `apply` build these from their own input (flags, a TOML file);
the service never sees "KEY=VALUE" strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ipvnet.model import Endpoint, Network, normalize_options, validate_ifname, validate_name
from ipvnet.ops import Op


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

    def validated(self) -> NetworkSpec:
        """Names checked and options normalised (defaults filled in), before the lock is taken."""
        validate_name(self.name, "network name")
        opts = normalize_options(self.driver, self.options)
        return NetworkSpec(self.name, self.driver, self.subnets, self.gateways, self.ip_ranges,
                           dict(self.aux_addresses), self.internal, self.ipv4, self.ipv6, opts, dict(self.labels))

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
