"""Namespaces on networks: attach, detach, run-ns, exec."""

from __future__ import annotations

import click

from ipvnet.cli import complete
from ipvnet.cli.common import Ctx, dry_run_option, pass_ctx


@click.command("attach")
@click.argument("targets", nargs=-1, required=True, metavar="NS... NETWORK", shell_complete=complete.attach_targets)
@click.option("--ip", metavar="IP", help="Static IPv4 address (default: lowest free). One NS only.")
@click.option("--ip6", metavar="IP", help="Static IPv6 address (default: lowest free, if the network has IPv6). One NS only.")
@click.option("--ifname", metavar="IF", help="Interface name inside NS (default: eth0, then the lowest free ethN).")
@click.option("--alias", "aliases", multiple=True, metavar="NAME", help="Extra name peers resolve to this namespace.")
@click.option("--gw-priority", type=int, default=0, show_default=True,
              help="The attachment with the highest priority provides the default route.")
@click.option("--mac", metavar="MAC", help="MAC address (macvlan only; default: random, locally administered).")
@click.option("--create", is_flag=True, help="Create NS (like `ip netns add`) if it does not exist.")
@dry_run_option
@pass_ctx
def attach(ctx: Ctx, targets: tuple[str, ...], ip: str | None, ip6: str | None, ifname: str | None,
           aliases: tuple[str, ...], gw_priority: int, mac: str | None, create: bool, dry_run: bool) -> None:
    """Attach namespace NS to NETWORK (like `docker network connect`).

    NS gets an ipvlan/macvlan link (eth0, eth1, ...), an address per family, a
    default route (L2: via the gateway; L3: `default dev eth0`; none if internal)
    and /etc/netns/NS/hosts naming every peer. Several namespaces may be given
    before NETWORK: they are attached in one process under one lock.

    \b
    Examples:
      ip netns add ns1 && ipvnet attach ns1 vlan20
      ipvnet attach --create --ip 192.168.20.10 ns2 vlan20
      ipvnet attach --ip 10.1.1.10 --ip6 2001:db8:50::10 ns3 dual
      ipvnet attach --gw-priority 10 --alias web ns1 vlan30
      ipvnet attach --create web1 web2 web3 vlan20
    """
    from ipvnet import actions

    if len(targets) < 2:
        raise click.UsageError("give at least one namespace and then the network: attach NS... NETWORK")
    *namespaces, network = targets
    actions.attach(ctx.state_dir, ctx.debug, namespaces, network, ip, ip6, ifname, aliases, gw_priority, mac, create,
                   dry_run)


@click.command("apply")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--prune", is_flag=True, help="Also detach and remove what the file no longer lists.")
@dry_run_option
@pass_ctx
def apply_(ctx: Ctx, file: str, prune: bool, dry_run: bool) -> None:
    """Make networks and attachments match FILE (TOML), in one process and one lock.

    Idempotent: a second apply changes nothing. Missing namespaces are created.
    A namespace whose address, aliases or priority changed is reattached. An
    existing network that differs from the file is an error (ipvnet does not
    change networks in place). See the README for the file's format.

    \b
    Examples:
      ipvnet apply site.toml
      ipvnet apply --dry-run site.toml
      ipvnet apply --prune site.toml
    """
    from ipvnet import actions

    actions.apply(ctx.state_dir, ctx.debug, file, prune, dry_run)


@click.command("detach")
@click.argument("ns", shell_complete=complete.namespaces)
@click.argument("network", shell_complete=complete.networks)
@dry_run_option
@pass_ctx
def detach(ctx: Ctx, ns: str, network: str, dry_run: bool) -> None:
    """Detach NS from NETWORK (like `docker network disconnect`).

    Deletes the link, releases every address (IPv4 and IPv6) and hands the
    default route to the next attachment. Works when NS is already gone.

    \b
    Examples:
      ipvnet detach ns1 vlan20
    """
    from ipvnet import actions

    actions.detach(ctx.state_dir, ctx.debug, ns, network, dry_run)


@click.command("run-ns", context_settings={"ignore_unknown_options": True})
@click.option("--net", "network", required=True, metavar="NET", shell_complete=complete.networks,
              help="Network to attach to.")
@click.option("--name", metavar="NS", help="Namespace name (default: ipvnet-<random>).")
@click.option("--ip", metavar="IP", help="Static IPv4 address.")
@click.option("--ip6", metavar="IP", help="Static IPv6 address.")
@click.option("--alias", "aliases", multiple=True, metavar="NAME", help="Extra name for peers to resolve.")
@click.option("--rm", "remove", is_flag=True, help="Detach and delete the namespace when CMD exits.")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_ctx
def run_ns(ctx: Ctx, network: str, name: str | None, ip: str | None, ip6: str | None,
           aliases: tuple[str, ...], remove: bool, cmd: tuple[str, ...]) -> None:
    """Create a namespace, attach it to NET and run CMD in it (like `docker run --net`).

    CMD runs as with `ip netns exec` (hosts and resolv.conf bound in, no shell in
    between); ipvnet exits with CMD's status. With --rm the namespace is detached
    and deleted afterwards, also when CMD fails or is interrupted.

    \b
    Examples:
      ipvnet run-ns --net vlan20 --rm -- ping -c1 ns1
      ipvnet run-ns --net vlan20 --name web --ip 192.168.20.80 -- python3 -m http.server 80
    """
    from ipvnet.model import random_hex
    from ipvnet.requests import AttachSpec

    spec = AttachSpec(name or f"ipvnet-{random_hex(4)}", network, ip, ip6, aliases=aliases, create=True)
    with ctx.service() as svc:
        rc = svc.run_ns(spec, list(cmd), remove)
    raise SystemExit(rc)


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("ns", shell_complete=complete.namespaces)
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(ns: str, cmd: tuple[str, ...]) -> None:
    """Run CMD inside NS with its hosts and resolv.conf, like `ip netns exec`.

    \b
    Examples:
      ipvnet exec ns1 -- ping -c1 ns2
      ipvnet exec ns1 -- ip -br addr
    """
    from ipvnet import runner
    from ipvnet.model import validate_name

    validate_name(ns, "namespace name")
    runner.exec_in_ns(ns, list(cmd))
