"""Rendering: Docker-shaped JSON, and tables that are rich on a terminal
and plain aligned text in a pipe (no colour codes; NO_COLOR honoured)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from ipvnet.model import Network


def inspect_dict(net: Network) -> dict[str, Any]:
    """`docker network inspect`'s keys, so existing jq recipes work."""
    config = []
    for s in net.subnets:
        c: dict[str, Any] = {"Subnet": str(s.subnet)}
        if s.ip_range is not None:
            c["IPRange"] = str(s.ip_range)
        if s.gateway is not None:
            c["Gateway"] = str(s.gateway)
        if s.aux:
            c["AuxiliaryAddresses"] = {k: str(v) for k, v in s.aux}
        config.append(c)
    options = dict(net.options)
    options.setdefault("parent", net.parent)
    containers = {}
    for ns, ep in sorted(net.endpoints.items(), key=lambda kv: kv[1].seq):
        containers[ns] = {
            "Name": ns,
            "EndpointID": ep.endpoint_id,
            "MacAddress": ep.mac,
            "IPv4Address": str(ep.ipv4) if ep.ipv4 else "",
            "IPv6Address": str(ep.ipv6) if ep.ipv6 else "",
            "Interface": ep.ifname,
            "Aliases": list(ep.aliases),
            "GwPriority": ep.gw_priority,
        }
    return {
        "Name": net.name,
        "Id": net.id,
        "Created": net.created,
        "Scope": "local",
        "Driver": net.driver,
        "EnableIPv4": net.enable_ipv4,
        "EnableIPv6": net.enable_ipv6,
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": net.internal,
        "Attachable": True,
        "Containers": containers,
        "Options": options,
        "Labels": dict(net.labels),
    }


def ls_row(net: Network) -> dict[str, str]:
    return {
        "NETWORK ID": net.id[:12],
        "NAME": net.name,
        "DRIVER": net.driver,
        "MODE": net.mode,
        "PARENT": net.parent,
        "SUBNETS": ",".join(str(s.subnet) for s in net.subnets),
    }


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def use_rich() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def table(columns: list[str], rows: list[list[str]]) -> None:
    if use_rich():
        from rich.console import Console
        from rich.table import Table

        t = Table(box=None, header_style="bold", pad_edge=False)
        for c in columns:
            t.add_column(c, overflow="fold")
        for r in rows:
            t.add_row(*r)
        Console().print(t)
        return
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    lines = []
    for r in [columns, *rows]:
        lines.append("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    click.echo("\n".join(lines))
