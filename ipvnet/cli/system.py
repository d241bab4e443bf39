"""Host-level commands: doctor, completion, routes."""

from __future__ import annotations

import click

from ipvnet.cli import complete
from ipvnet.cli.common import Ctx, pass_ctx
from ipvnet.cli.render import echo_json, table


@click.command("doctor")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def doctor(fmt: str) -> None:
    """Report what the kernel supports (netns, ipvlan, macvlan, 8021q, dummy, IPv6) and root.

    Exit status is 0 when everything ipvnet needs is there, 5 otherwise.

    \b
    Examples:
      sudo ipvnet doctor
      ipvnet doctor --format json
    """
    from ipvnet.doctor import probe

    checks = probe()
    if fmt == "json":
        echo_json([{"check": c.name, "ok": c.ok, "detail": c.detail} for c in checks])
    else:
        table(["CHECK", "OK", "DETAIL"], [[c.name, "yes" if c.ok else "no", c.detail] for c in checks])
    needed = {"root", "netns", "ipvlan", "dummy", "8021q"}
    if not all(c.ok for c in checks if c.name in needed):
        raise SystemExit(5)


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    Network names, namespace names, `-o` keys and their values complete
    dynamically. Files generated from this command ship in completions/.

    \b
    Examples:
      ipvnet completion bash > /etc/bash_completion.d/ipvnet
      ipvnet completion zsh > "${fpath[1]}/_ipvnet"
      ipvnet completion fish > ~/.config/fish/completions/ipvnet.fish
    """
    click.echo(completion_source(shell))


def completion_source(shell: str) -> str:
    from click.shell_completion import get_completion_class

    from ipvnet.cli import cli

    cls = get_completion_class(shell)
    assert cls is not None
    return cls(cli, {}, "ipvnet", "_IPVNET_COMPLETE").source()


@click.command("routes")
@click.argument("network", required=False, shell_complete=complete.networks)
@click.option("--format", "fmt", type=click.Choice(["ip", "json", "bird", "frr"]), default="ip", show_default=True)
@click.option("--aggregate", is_flag=True, help="One route per subnet instead of one per namespace address.")
@pass_ctx
def routes(ctx: Ctx, network: str | None, fmt: str, aggregate: bool) -> None:
    """Print the routes upstream routers need to reach L3/L3S namespaces.

    In ipvlan L3/L3S mode this host routes for its namespaces: a router must
    send their addresses (a /32 or /128 each, or the subnets with --aggregate)
    to this host's address on the network's parent. L2 networks need none.

    \b
    Examples:
      ipvnet routes l3net
      ipvnet routes --format bird > /etc/bird/ipvnet-routes.conf
      ipvnet routes --format frr --aggregate
      ipvnet routes --format json | jq -r '.[].destination'
    """
    from ipvnet.routes import as_json, render

    with ctx.service() as svc:
        rs = svc.export_routes(network, aggregate)
    if fmt == "json":
        echo_json(as_json(rs))
        return
    for line in render(rs, fmt):
        click.echo(line)
