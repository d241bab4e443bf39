"""`ipvnet network ...`: create, rm, ls, inspect, prune."""

from __future__ import annotations

import click

from ipvnet.cli import complete
from ipvnet.cli.common import Ctx, dry_run_option, pass_ctx, report
from ipvnet.cli.render import echo_json, inspect_dict, ls_row, table
from ipvnet.errors import IpvnetError
from ipvnet.vocab import option_help


@click.group()
def network() -> None:
    """Manage networks (like `docker network`).

    \b
    Examples:
      ipvnet network create --subnet 192.168.20.0/24 -o parent=eth0.20 vlan20
      ipvnet network ls
      ipvnet network inspect vlan20
      ipvnet network rm vlan20
    """


@network.command("create")
@click.option("-d", "--driver", default="ipvlan", show_default=True, type=click.Choice(["ipvlan", "macvlan"]),
              help="Link type for attached namespaces.")
@click.option("--subnet", multiple=True, metavar="CIDR", help="Subnet, repeatable; IPv4 and IPv6 may be mixed.")
@click.option("--gateway", multiple=True, metavar="IP", help="Gateway of the --subnet that contains it.")
@click.option("--ip-range", multiple=True, metavar="CIDR", help="Allocate automatic addresses from this range only.")
@click.option("--aux-address", multiple=True, metavar="NAME=IP", help="Reserve an address so it is never handed out.")
@click.option("--internal", is_flag=True,
              help="Reach only the network: no default route, no outside name server, no gateway unless given.")
@click.option("--ipv4", type=click.BOOL, default=True, show_default=True, metavar="BOOL",
              help="--ipv4=false makes an IPv6-only network (with --ipv6 or an IPv6 --subnet).")
@click.option("--ipv6", is_flag=True, help="Enable IPv6; without an IPv6 --subnet a ULA /64 is picked.")
@click.option("-o", "--opt", "options", multiple=True, metavar="KEY=VALUE", shell_complete=complete.options,
              help=option_help())
@click.option("--label", multiple=True, metavar="K=V", help="Metadata, shown by inspect.")
@click.option("--cluster", metavar="NAME", default="", shell_complete=complete.clusters,
              help="Span hosts: addresses from this host's blocks of cluster NAME (ipvlan l3/l3s).")
@dry_run_option
@click.argument("name")
@pass_ctx
def create(ctx: Ctx, name: str, driver: str, subnet: tuple[str, ...], gateway: tuple[str, ...],
           ip_range: tuple[str, ...], aux_address: tuple[str, ...], internal: bool, ipv4: bool, ipv6: bool,
           options: tuple[str, ...], label: tuple[str, ...], cluster: str, dry_run: bool) -> None:
    """Create network NAME and, when needed, its parent link.

    `-o parent=eth0.20` creates the 802.1q link eth0.20 (vlan 20 on eth0) unless it
    exists; it is removed with the last network that uses it. Without a parent a
    dummy link (di-<id>, dm-<id> for macvlan) is made and the network is internal.

    \b
    Examples:
      # VLAN trunk: one network per vlan on eth0
      ipvnet network create --subnet 192.168.20.0/24 -o parent=eth0.20 vlan20
      ipvnet network create --subnet 192.168.30.0/24 -o parent=eth0.30 vlan30
      # isolated network on a dummy parent
      ipvnet network create --subnet 10.10.0.0/24 isolated
      # L3 mode, two subnets routed to each other
      ipvnet network create --subnet 10.1.1.0/24 --subnet 10.1.2.0/24 \\
          -o parent=eth0 -o ipvlan_mode=l3 l3net
      # dual stack; each --gateway goes with the --subnet that contains it
      ipvnet network create --subnet 192.168.50.0/24 --subnet 2001:db8:50::/64 \\
          --gateway 2001:db8:50::1 --gateway 192.168.50.254 -o parent=eth0.50 dual
      # IPv6 only
      ipvnet network create --ipv4=false --ipv6 -o parent=eth0.60 v6only
      # L3 across hosts: addresses from this host's blocks of cluster prod
      ipvnet network create -o ipvlan_mode=l3 -o parent=eth0 --cluster prod web
    """
    from ipvnet.model import parse_key_values
    from ipvnet.requests import NetworkSpec

    spec = NetworkSpec(name, driver, subnet, gateway, ip_range, parse_key_values(aux_address, "aux-address"),
                       internal, ipv4, ipv6, parse_key_values(options, "option"), parse_key_values(label, "label"),
                       cluster)
    with ctx.service(dry_run) as svc:
        res = svc.create_network(spec)
    report(res, dry_run)
    if not dry_run and res.network is not None:
        click.echo(res.network.id)


@network.command("rm")
@click.option("-f", "--force", is_flag=True, help="Detach attached namespaces first.")
@dry_run_option
@click.argument("names", nargs=-1, required=True, shell_complete=complete.networks)
@pass_ctx
def rm(ctx: Ctx, names: tuple[str, ...], force: bool, dry_run: bool) -> None:
    """Remove networks, and the parent links ipvnet created for them.

    Refuses while namespaces are attached (naming them) unless --force.

    \b
    Examples:
      ipvnet network rm vlan20
      ipvnet network rm --force vlan20 vlan30
    """
    with ctx.service(dry_run) as svc:
        res = svc.remove_networks(names, force)
    report(res, dry_run)


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Print names only.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_ctx
def ls(ctx: Ctx, quiet: bool, fmt: str) -> None:
    """List networks.

    \b
    Examples:
      ipvnet network ls
      ipvnet network ls --format json | jq -r '.[].NAME'
    """
    state = ctx.read_state()
    nets = sorted(state.networks.values(), key=lambda n: n.name)
    if quiet:
        for n in nets:
            click.echo(n.name)
        return
    rows = [ls_row(n) for n in nets]
    if fmt == "json":
        echo_json(rows)
        return
    cols = ["NETWORK ID", "NAME", "DRIVER", "MODE", "PARENT", "SUBNETS"]
    table(cols, [[r[c] for c in cols] for r in rows])


@network.command("inspect")
@click.argument("names", nargs=-1, required=True, shell_complete=complete.networks)
@pass_ctx
def inspect(ctx: Ctx, names: tuple[str, ...]) -> None:
    """Print networks as a JSON array in `docker network inspect`'s shape.

    \b
    Examples:
      ipvnet network inspect vlan20
      ipvnet network inspect vlan20 | jq -r '.[0].Containers[].IPv4Address'
    """
    state = ctx.read_state()
    out, missing = [], []
    for name in names:
        try:
            out.append(inspect_dict(state.network(name)))
        except IpvnetError as e:
            missing.append(e)
    if missing and len(missing) == len(names):
        raise missing[0]
    echo_json(out)
    for err in missing:
        click.echo(f"Error: {err}", err=True)
    if missing:
        raise SystemExit(missing[0].exit_code)


@network.command("prune")
@click.option("-f", "--force", is_flag=True, help="Accepted for Docker compatibility; prune never asks.")
@pass_ctx
def prune(ctx: Ctx, force: bool) -> None:
    """Remove every network with no namespace attached.

    \b
    Examples:
      ipvnet network prune
    """
    with ctx.service() as svc:
        res = svc.prune()
    if res.removed:
        click.echo("Deleted Networks:")
        for n in res.removed:
            click.echo(n)
