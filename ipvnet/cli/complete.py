"""Dynamic shell completion: network names from the store, namespace names
from /run/netns, `-o` keys and their values. Completion runs on every TAB,
so it reads files directly and never imports pyroute2."""

from __future__ import annotations

import os

import click
from click.shell_completion import CompletionItem

OPTION_VALUES = {
    "ipvlan_mode": ("l2", "l3", "l3s"),
    "ipvlan_flag": ("bridge", "private", "vepa"),
    "macvlan_mode": ("bridge", "vepa", "private", "passthru"),
    "mtu": ("1500", "9000"),
}
OPTION_KEYS = ("parent", "ipvlan_mode", "ipvlan_flag", "macvlan_mode", "mtu", "host_access")


def networks(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from ipvnet.store import Store

    state_dir = ctx.find_root().params.get("state_dir")
    try:
        nets = Store(state_dir).load().networks
    except Exception:  # noqa: BLE001 - completion must never fail loudly
        return []
    return [CompletionItem(n) for n in sorted(nets) if n.startswith(incomplete)]


def namespaces(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from ipvnet.netns import list_names

    return [CompletionItem(n) for n in list_names() if n.startswith(incomplete)]


def options(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    key, sep, value = incomplete.partition("=")
    if not sep:
        return [CompletionItem(f"{k}=", type="plain") for k in OPTION_KEYS if k.startswith(key)]
    if key == "parent":
        try:
            links = sorted(os.listdir("/sys/class/net"))
        except OSError:
            links = []
        values: tuple[str, ...] = tuple(n for n in links if n != "lo")
    else:
        values = OPTION_VALUES.get(key, ())
    return [CompletionItem(f"{key}={v}") for v in values if v.startswith(value)]


def attach_targets(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """`attach NS... NETWORK`: namespaces, and networks (the last word)."""
    return namespaces(ctx, param, incomplete) + networks(ctx, param, incomplete)
