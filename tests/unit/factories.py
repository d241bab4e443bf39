"""Small builders for model objects, shared by the unit tests."""

from __future__ import annotations

import ipaddress

from ipvnet.model import PARENT_EXISTING, Endpoint, Network, SubnetConfig


def subnet(
    cidr: str, gateway: str | None = None, ip_range: str | None = None, aux: dict[str, str] | None = None
) -> SubnetConfig:
    return SubnetConfig(
        ipaddress.ip_network(cidr),
        ipaddress.ip_address(gateway) if gateway else None,
        ipaddress.ip_network(ip_range) if ip_range else None,
        tuple((k, ipaddress.ip_address(v)) for k, v in (aux or {}).items()),
    )


def network(
    name: str = "net",
    subnets: tuple[SubnetConfig, ...] | list[SubnetConfig] = (),
    *,
    driver: str = "ipvlan",
    mode: str | None = None,
    parent: str = "eth0",
    parent_kind: str = PARENT_EXISTING,
    internal: bool = False,
    enable_ipv6: bool = False,
    mtu: int | None = None,
    endpoints: list[Endpoint] | None = None,
    net_id: str | None = None,
    labels: dict[str, str] | None = None,
) -> Network:
    if driver == "ipvlan":
        options = {"parent": parent, "ipvlan_mode": mode or "l2", "ipvlan_flag": "bridge"}
    else:
        options = {"parent": parent, "macvlan_mode": mode or "bridge"}
    if mtu:
        options["mtu"] = str(mtu)
    net = Network(
        name=name,
        id=net_id or (name.encode().hex() * 64)[:64],
        created="2024-01-01T00:00:00+00:00",
        driver=driver,
        parent=parent,
        parent_kind=parent_kind,
        subnets=tuple(subnets),
        options=options,
        labels=dict(labels or {}),
        internal=internal,
        enable_ipv6=enable_ipv6,
    )
    for ep in endpoints or []:
        net = net.with_endpoint(ep)
    return net


def endpoint(
    ns: str,
    ipv4: str | None = None,
    ipv6: str | None = None,
    *,
    ifname: str = "eth0",
    seq: int = 1,
    gw_priority: int = 0,
    aliases: tuple[str, ...] = (),
    mac: str = "",
    created_ns: bool = False,
) -> Endpoint:
    return Endpoint(
        ns=ns,
        ifname=ifname,
        endpoint_id=f"ep-{ns}-{seq}",
        seq=seq,
        ipv4=ipaddress.IPv4Interface(ipv4) if ipv4 else None,
        ipv6=ipaddress.IPv6Interface(ipv6) if ipv6 else None,
        mac=mac,
        aliases=aliases,
        gw_priority=gw_priority,
        created_ns=created_ns,
    )
