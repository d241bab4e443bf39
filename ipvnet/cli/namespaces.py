"""Namespaces on networks: attach, detach, run-ns, exec."""

from __future__ import annotations

import click

from ipvnet.cli import complete
from ipvnet.cli.common import Ctx, dry_run_option, pass_ctx, report


@click.command("attach")
@click.argument("ns", shell_complete=complete.namespaces)
@click.argument("network", shell_complete=complete.networks)
@click.option("--ip", metavar="IP", help="Static IPv4 address (default: lowest free).")
@click.option("--ip6", metavar="IP", help="Static IPv6 address (default: lowest free, if the network has IPv6).")
@click.option("--ifname", metavar="IF", help="Interface name inside NS (default: eth0, then the lowest free ethN).")
@click.option("--alias", "aliases", multiple=True, metavar="NAME", help="Extra name peers resolve to this namespace.")
@click.option("--gw-priority", type=int, default=0, show_default=True,
              help="The attachment with the highest priority provides the default route.")
@click.option("--mac", metavar="MAC", help="MAC address (macvlan only; default: random, locally administered).")
@click.option("--create", is_flag=True, help="Create NS (like `ip netns add`) if it does not exist.")
@dry_run_option
@pass_ctx
def attach(ctx: Ctx, ns: str, network: str, ip: str | None, ip6: str | None, ifname: str | None,
           aliases: tuple[str, ...], gw_priority: int, mac: str | None, create: bool, dry_run: bool) -> None:
    """Attach namespace NS to NETWORK (like `docker network connect`).

    NS gets an ipvlan/macvlan link (eth0, eth1, ...), an address per family, a
    default route (L2: via the gateway; L3: `default dev eth0`; none if internal)
    and /etc/netns/NS/hosts naming every peer.

    \b
    Examples:
      ip netns add ns1 && ipvnet attach ns1 vlan20
      ipvnet attach --create --ip 192.168.20.10 ns2 vlan20
      ipvnet attach --ip 10.1.1.10 --ip6 2001:db8:50::10 ns3 dual
      ipvnet attach --gw-priority 10 --alias web ns1 vlan30
    """
    with ctx.service(dry_run) as svc:
        res = svc.attach(ns, network, ip, ip6, ifname, aliases, gw_priority, create, mac)
    report(res, dry_run)
    if not dry_run and res.endpoint is not None:
        ep = res.endpoint
        addrs = " ".join(str(a) for a in ep.addresses())
        click.echo(f"{ns} {ep.ifname} {addrs}".rstrip())


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
    with ctx.service(dry_run) as svc:
        res = svc.detach(ns, network)
    report(res, dry_run)


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
    import secrets

    from ipvnet import runner
    from ipvnet.errors import Conflict
    from ipvnet.netns import exists

    ns = name or f"ipvnet-{secrets.token_hex(4)}"
    if exists(ns):
        raise Conflict(f"network namespace {ns} already exists", "pick another --name, or use `ipvnet exec`")
    with ctx.service() as svc:
        svc.attach(ns, network, ip, ip6, None, aliases, 0, True, None, _created_ns=True)
        try:
            rc = runner.run_in_ns(ns, list(cmd))
        finally:
            if remove:
                svc.delete_namespace(ns)
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
