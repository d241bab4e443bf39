"""`ipvnet cluster ...`: L3 networks that span hosts (etcd IPAM, routes to BGP)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import click

from ipvnet.cli import complete
from ipvnet.cli.common import Ctx, pass_ctx
from ipvnet.cli.render import echo_json, table


def etcd_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--etcd and how to reach it (TLS, user), shared by init and join."""
    options = [
        click.option("--etcd", "endpoints", required=True, metavar="URL[,URL]",
                     help="etcd endpoints (http:// or https://), tried in order."),
        click.option("--cacert", type=click.Path(dir_okay=False), help="CA certificate to verify etcd with."),
        click.option("--cert", type=click.Path(dir_okay=False), help="Client certificate (TLS)."),
        click.option("--key", type=click.Path(dir_okay=False), help="Client key (TLS)."),
        click.option("--user", help="etcd user (password from --password or IPVNET_ETCD_PASSWORD)."),
        click.option("--password", envvar="IPVNET_ETCD_PASSWORD", help="etcd password."),
        click.option("--timeout", type=float, default=2.0, show_default=True, help="Seconds per etcd call."),
        click.option("--prefix", default="/ipvnet", show_default=True, help="etcd key prefix."),
    ]
    for option in reversed(options):
        f = option(f)

    @functools.wraps(f)
    def wrapper(*args: Any, endpoints: str, cacert: str | None, cert: str | None, key: str | None,
                user: str | None, password: str | None, timeout: float, prefix: str, **kw: Any) -> Any:
        from ipvnet.service.cluster import EtcdOptions

        tls = {k: os.path.abspath(v) for k, v in (("cacert", cacert), ("cert", cert), ("key", key)) if v}
        auth = {"user": user, "password": password or ""} if user else {}
        eps = tuple(e.strip() for e in endpoints.split(",") if e.strip())
        return f(*args, opts=EtcdOptions(eps, timeout, tls, auth, prefix), **kw)

    return wrapper


@click.group("cluster")
def cluster() -> None:
    """L3 networks across hosts: a cluster IPAM on etcd, routes announced by BIRD or FRR.

    Each host claims whole address blocks of the cluster's CIDRs in etcd (one
    compare-and-swap each, bound to its lease), and adds `blackhole BLOCK proto
    250` per block; the host's BGP daemon learns those from the kernel and
    announces them. ipvnet never speaks BGP.

    \b
    Examples:
      ipvnet cluster init --etcd http://10.0.0.9:2379 --cidr 10.244.0.0/16 prod
      ipvnet cluster join --etcd http://10.0.0.9:2379 prod
      ipvnet network create -o ipvlan_mode=l3 -o parent=eth0 --cluster prod web
      ipvnet cluster bird-config --peer 10.0.0.2 --peer 10.0.0.3 prod > /etc/bird/bird.conf
    """


@cluster.command("init")
@etcd_options
@click.option("--cidr", "cidrs", multiple=True, required=True, metavar="CIDR",
              help="Cluster address range; one per family.")
@click.option("--block-size", type=int, metavar="N", help="IPv4 block prefix length.  [default: 26]")
@click.option("--block-size6", type=int, metavar="N", help="IPv6 block prefix length.  [default: 122]")
@click.argument("name")
def init(name: str, cidrs: tuple[str, ...], block_size: int | None, block_size6: int | None, opts: Any) -> None:
    """Create cluster NAME in etcd, once (the same definition again is not an error; another is).

    \b
    Examples:
      ipvnet cluster init --etcd http://10.0.0.9:2379 --cidr 10.244.0.0/16 --cidr fd00:244::/56 prod
      ipvnet cluster init --etcd https://e1:2379,https://e2:2379 --cacert ca.pem --cidr 10.50.0.0/20 \\
          --block-size 28 lab
    """
    from ipvnet.service.cluster import init as do_init

    click.echo(f"cluster {name}: {do_init(opts, name, cidrs, block_size, block_size6)}")


@cluster.command("join")
@etcd_options
@click.option("--host", metavar="NAME", help="This host's name in the cluster.  [default: the hostname]")
@click.option("--ttl", type=int, default=90, show_default=True,
              help="Lease seconds; `cluster heartbeat` must run more often (its timer: every 30 s).")
@click.argument("name")
@pass_ctx
def join(ctx: Ctx, name: str, host: str | None, ttl: int, opts: Any) -> None:
    """Make this host a member of cluster NAME (a host key bound to a lease).

    \b
    Examples:
      sudo ipvnet cluster join --etcd http://10.0.0.9:2379 prod
      sudo ipvnet cluster join --etcd https://e1:2379 --cacert ca.pem --cert h1.pem --key h1-key.pem prod
    """
    from ipvnet.service.cluster import join as do_join

    with ctx.service() as svc:
        m = do_join(svc, opts, name, host, ttl)
    click.echo(f"host {m.host} joined cluster {name} (lease {m.lease:x}, {m.ttl} s)")


@cluster.command("status")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.argument("name", shell_complete=complete.clusters)
@pass_ctx
def status(ctx: Ctx, name: str, fmt: str) -> None:
    """Hosts, blocks, owners, lease left, and whether this host has a route for each block.

    \b
    Examples:
      ipvnet cluster status prod
      ipvnet cluster status --format json prod | jq '.blocks[] | select(.host == "h2")'
    """
    from ipvnet.service.cluster import status as do_status

    with ctx.service() as svc:
        st = do_status(svc, name)
    if fmt == "json":
        echo_json(st)
        return
    click.echo(f"cluster {name} ({st['definition']}); this host: {st['host']}")
    table(["HOST", "LEASE", "TTL"], [[h, f"{v['lease']:x}", str(v["ttl"])] for h, v in st["hosts"].items()])
    click.echo()
    table(["BLOCK", "HOST", "NETWORK", "LEASE LEFT", "ROUTE HERE"],
          [[b["block"], b["host"], b["network"], str(b["lease_left"]), b["route"] or "-"] for b in st["blocks"]])


@cluster.command("heartbeat")
@click.argument("names", nargs=-1, shell_complete=complete.clusters)
@pass_ctx
def heartbeat(ctx: Ctx, names: tuple[str, ...]) -> None:
    """Keep this host's lease alive (every cluster joined, or NAMES). After an expiry,
    join again and re-claim this host's blocks; exit 9 if another host took one.

    \b
    Examples:
      sudo ipvnet cluster heartbeat
      sudo systemctl enable --now ipvnet-heartbeat.timer
    """
    from ipvnet.errors import DriftFound
    from ipvnet.service.cluster import heartbeat as beat
    from ipvnet.store.cluster import memberships

    with ctx.service() as svc:
        lost = [b for name in (names or tuple(memberships(svc.store.dir))) for b in beat(svc, name)]
    if lost:
        raise DriftFound(f"blocks taken by other hosts meanwhile: {'; '.join(lost)}",
                         "they are not announced again; `ipvnet check` names the namespaces holding them")


@cluster.command("release")
@click.option("--host", required=True, metavar="HOST", help="The (dead) host whose blocks to free.")
@click.argument("name", shell_complete=complete.clusters)
@pass_ctx
def release(ctx: Ctx, name: str, host: str) -> None:
    """Free every block of HOST in cluster NAME (an operator's call for a dead host).

    \b
    Examples:
      ipvnet cluster release --host h3 prod
    """
    from ipvnet.service.cluster import release_host

    with ctx.service() as svc:
        freed = release_host(svc, name, host)
    click.echo(f"released {len(freed)} block(s) of {host}: {' '.join(freed) or '-'}")


@cluster.command("leave")
@click.argument("name", shell_complete=complete.clusters)
@pass_ctx
def leave(ctx: Ctx, name: str) -> None:
    """Take this host out of cluster NAME: revoke its lease (its host key goes with it).

    \b
    Examples:
      sudo ipvnet cluster leave prod
    """
    from ipvnet.service.cluster import leave as do_leave

    with ctx.service() as svc:
        do_leave(svc, name)
    click.echo(f"left cluster {name}")


def bgp_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--peer", "peers", multiple=True, metavar="IP",
                     help="A BGP neighbour: every other host (mesh), or the route reflectors."),
        click.option("--reflector-for", "reflect", multiple=True, metavar="CIDR",
                     help="Be a route reflector for any host in CIDR (dynamic neighbours)."),
        click.option("--router-id", metavar="IPV4", help="[default: this host's IPv4 on a cluster network's parent]"),
        click.option("--asn", type=int, default=64512, show_default=True),
        click.option("--hold", type=int, default=3, show_default=True, help="BGP hold time, seconds."),
        click.option("--bfd/--no-bfd", default=True, show_default=True, help="BFD: withdraw in ~0.3 s."),
        click.argument("name", shell_complete=complete.clusters),
    ]
    f = pass_ctx(f)
    for option in reversed(options):
        f = option(f)
    return f


def _params(ctx: Ctx, name: str, peers: tuple[str, ...], reflect: tuple[str, ...], router_id: str | None,
            asn: int, hold: int, bfd: bool) -> Any:
    from ipvnet.bgpconf import BgpParams
    from ipvnet.errors import InvalidArgument
    from ipvnet.service.cluster import host_address
    from ipvnet.store.cluster import load_membership

    with ctx.service() as svc:
        m = load_membership(svc.store.dir, name)
        rid = router_id or host_address(svc, name, 4)
    if rid is None:
        raise InvalidArgument("no router id", "give --router-id (this host's IPv4 toward the other hosts)")
    try:
        return BgpParams(m.config, m.host, rid, asn, peers, reflect, hold, bfd).check()
    except ValueError as e:
        raise InvalidArgument(f"invalid BGP parameter: {e}") from None


@cluster.command("bird-config")
@bgp_options
def bird_config(ctx: Ctx, name: str, peers: tuple[str, ...], reflect: tuple[str, ...], router_id: str | None,
                asn: int, hold: int, bfd: bool) -> None:
    """Print a BIRD 2 configuration for this host in cluster NAME.

    It learns this host's blocks from the kernel (proto 250), so it never needs
    a reload when blocks come and go. IPv6 needs IPv6 --peer addresses.

    \b
    Examples:
      ipvnet cluster bird-config --peer 10.0.0.2 --peer 10.0.0.3 prod > /etc/bird/bird.conf
      ipvnet cluster bird-config --reflector-for 10.0.0.0/24 prod   # on the route reflector
      ipvnet cluster bird-config --peer 10.0.0.1 prod              # on a client of it
    """
    from ipvnet.bgpconf import bird

    click.echo(bird(_params(ctx, name, peers, reflect, router_id, asn, hold, bfd)), nl=False)


@cluster.command("frr-config")
@bgp_options
def frr_config(ctx: Ctx, name: str, peers: tuple[str, ...], reflect: tuple[str, ...], router_id: str | None,
               asn: int, hold: int, bfd: bool) -> None:
    """Print an FRR configuration (integrated frr.conf) for this host in cluster NAME.

    zebra learns this host's blocks from the kernel (proto 250) and bgpd
    redistributes them; both families ride the IPv4 sessions.

    \b
    Examples:
      ipvnet cluster frr-config --peer 10.0.0.2 --peer 10.0.0.3 prod > /etc/frr/frr.conf
      ipvnet cluster frr-config --reflector-for 10.0.0.0/24 prod
    """
    from ipvnet.bgpconf import frr

    click.echo(frr(_params(ctx, name, peers, reflect, router_id, asn, hold, bfd)), nl=False)
