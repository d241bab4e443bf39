"""Dynamic shell completion: network names from the store, namespace names
from /run/netns, `-o` keys and their values. Completion runs on every TAB,
so it reads files directly and never imports pyroute2."""

from __future__ import annotations

import os

import click
from click.shell_completion import CompletionItem

from ipvnet.vocab import OPTION_BY_KEY, OPTIONS


def networks(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from ipvnet.store import open_store

    state_dir = ctx.find_root().params.get("state_dir")
    try:
        nets = open_store(state_dir).network_names()
    except Exception:  # noqa: BLE001 - completion must never fail loudly
        return []
    return [CompletionItem(n) for n in sorted(nets) if n.startswith(incomplete)]


def clusters(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Clusters this host joined (their membership files)."""
    from ipvnet.store import state_dir_from_env

    state_dir = ctx.find_root().params.get("state_dir") or state_dir_from_env()
    try:
        names = sorted(n[:-5] for n in os.listdir(os.path.join(state_dir, "clusters")) if n.endswith(".toml"))
    except OSError:
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def namespaces(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from ipvnet.nspath import list_names

    return [CompletionItem(n) for n in list_names() if n.startswith(incomplete)]


def options(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    key, sep, value = incomplete.partition("=")
    if not sep:
        return [CompletionItem(f"{o.key}=", type="plain") for o in OPTIONS if o.key.startswith(key)]
    if key == "parent":
        try:
            links = sorted(os.listdir("/sys/class/net"))
        except OSError:
            links = []
        values: tuple[str, ...] = tuple(n for n in links if n != "lo")
    else:
        spec = OPTION_BY_KEY.get(key)
        values = (spec.choices or spec.examples) if spec else ()
    return [CompletionItem(f"{key}={v}") for v in values if v.startswith(value)]


def attach_targets(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """`attach NS... NETWORK`: namespaces, and networks (the last word)."""
    return namespaces(ctx, param, incomplete) + networks(ctx, param, incomplete)
