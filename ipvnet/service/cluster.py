"""`ipvnet cluster ...` and what cluster networks add to attach and rm.

A cluster network's subnets are the blocks this host claimed. An attach that
finds no free address in them claims one more block (an etcd transaction,
undone if the attach fails) and adds its `blackhole BLOCK proto 250` route,
which the host's BGP daemon announces; removing the network deletes the
routes and releases the blocks once the store is written.
"""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING, Any

from ipvnet import ipam
from ipvnet.clusters import RT_PROTO, ClusterConfig, Membership, block_from_name, holder_of, make_config
from ipvnet.errors import Conflict, InvalidArgument
from ipvnet.model import IPNetwork, Network, SubnetConfig, parse_address, validate_name
from ipvnet.ops import Op, RouteAdd, RouteDel
from ipvnet.record import dataclass, replace
from ipvnet.requests import AttachSpec

if TYPE_CHECKING:
    from ipvnet.service import Service
    from ipvnet.store import State
    from ipvnet.store.cluster import ClusterBlocks
    from ipvnet.txn import Transaction


def blackhole(block: IPNetwork, add: bool = True) -> Op:
    """The hand-off to the BGP daemon: a route of our own protocol number that it learns."""
    cls = RouteAdd if add else RouteDel
    return cls(None, block.version, None, None, str(block), blackhole=True, proto=RT_PROTO)


# -- attach and rm of cluster networks ------------------------------------------------


def has_room(net: Network, siblings: list[Network], version: int) -> bool:
    try:
        ipam.Allocator(net, siblings).allocate(version, "?")
        return True
    except Conflict:
        return False


def make_room(tx: Transaction, net: Network, spec: AttachSpec, siblings: list[Network]) -> Network:
    """NET with room for SPEC in every family of its cluster: a block claimed where the
    owned ones are full (etcd is asked only then; an attach inside owned blocks needs
    no etcd at all)."""
    blocks: ClusterBlocks = tx.cluster(net.cluster)
    for cidr in blocks.config.cidrs:
        static = spec.ip if cidr.version == 4 else spec.ip6
        if static is not None:
            addr = parse_address(static)
            if net.subnet_for(addr) is None:
                owned = ", ".join(str(s.subnet) for s in net.subnets_of(cidr.version)) or "none"
                raise InvalidArgument(f"address {addr} is not in a block this host holds in cluster {net.cluster}",
                                      f"this host's IPv{cidr.version} blocks: {owned}")
            continue
        if not has_room(net, siblings, cidr.version):
            if tx.dry_run:
                raise InvalidArgument("--dry-run cannot show an attach that claims a cluster block")
            block = blocks.claim_new(net.name, cidr.version)
            tx.push_undo(blocks.releaser(block, net.name))
            net = replace(net, subnets=(*net.subnets, SubnetConfig(block)))
            tx.kernel([blackhole(block)])
    tx.state.networks[net.name] = net
    return net


def remove_blocks(tx: Transaction, net: Network) -> list[Op]:
    """Routes gone with the network; the claims released after the store write."""
    ops = [blackhole(s.subnet, add=False) for s in net.subnets]
    tx.kernel(ops)
    blocks: ClusterBlocks = tx.cluster(net.cluster)
    for s in net.subnets:
        tx.after_commit(blocks.releaser(s.subnet, net.name))
    return ops


# -- cluster commands ---------------------------------------------------------------


@dataclass
class EtcdOptions:
    endpoints: tuple[str, ...]
    timeout: float = 2.0
    tls: dict[str, str] | None = None
    auth: dict[str, str] | None = None
    prefix: str = "/ipvnet"


def init(opts: EtcdOptions, name: str, cidrs: tuple[str, ...], block4: int | None, block6: int | None) -> str:
    """Write the cluster's definition once; the same definition again is fine, another is refused."""
    from ipvnet.store.cluster import client, etcd_errors

    config = make_config(name, cidrs, block4, block6, opts.prefix)
    with etcd_errors(f"create cluster {name}"):
        etcd = client(opts.endpoints, opts.timeout, opts.tls, opts.auth)
        won, kv = etcd.create(config.key("config"), config.to_json())
    if not won and kv is not None and kv.value != config.to_json():
        have = ClusterConfig.from_json(kv.value, opts.prefix)
        raise Conflict(f"cluster {name} exists with another definition: {have.describe()}",
                       "use the same --cidr and --block-size, or another name")
    return config.describe()


def join(svc: Service, opts: EtcdOptions, name: str, host: str | None, ttl: int) -> Membership:
    """Register this host (a key bound to a new lease) and keep the membership in the state dir."""
    from ipvnet.service import require_root
    from ipvnet.store.cluster import ClusterBlocks, client, etcd_errors, save_membership

    require_root("cluster join")
    host = validate_name(host or os.uname().nodename.split(".")[0], "host name")
    with etcd_errors(f"join cluster {name}"):
        kv = client(opts.endpoints, opts.timeout, opts.tls, opts.auth).get(f"{opts.prefix}/{name}/config")
    if kv is None:
        raise InvalidArgument(f"cluster {name} does not exist in etcd", "create it once with `ipvnet cluster init`")
    m = Membership(ClusterConfig.from_json(kv.value, opts.prefix), opts.endpoints, host, 0, ttl,
                   dict(opts.tls or {}), dict(opts.auth or {}), opts.timeout)
    with svc.store.locked(exclusive=True):
        others = ClusterBlocks(m).hosts()
        if host in others:
            raise Conflict(f"host {host} is already a member of cluster {name} (lease {others[host][0]})",
                           "give this host another --host, or `ipvnet cluster release --host` the old one")
        ClusterBlocks(m).register()
        save_membership(svc.store.dir, m)
    write_rt_protos()
    return m


def write_rt_protos() -> None:
    """Name our route protocol for iproute2 (`ip route` shows `proto ipvnet`); best effort."""
    d = os.environ.get("IPVNET_RT_PROTOS_DIR", "/etc/iproute2/rt_protos.d")
    try:
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "ipvnet.conf"), "w") as f:
            f.write(f"# written by `ipvnet cluster join`\n{RT_PROTO}\tipvnet\n")
    except OSError:
        pass


def cluster_networks(state: State, name: str) -> list[Network]:
    return sorted((n for n in state.networks.values() if n.cluster == name), key=lambda n: n.name)


def heartbeat(svc: Service, name: str) -> list[str]:
    """Keep the lease alive. If it expired, register again and re-claim this host's
    blocks; returns the blocks another host took meanwhile (not announced again)."""
    from ipvnet.store.cluster import ClusterBlocks, load_membership, save_membership

    with svc.store.locked(exclusive=True):
        m = load_membership(svc.store.dir, name)
        blocks = ClusterBlocks(m)
        if blocks.keepalive() > 0:
            blocks.ensure_host_key()
            return []
        blocks.register()
        save_membership(svc.store.dir, m)
        lost = []
        for net in cluster_networks(svc.store.load(), name):
            for s in net.subnets:
                won, holder = blocks.claim(s.subnet, net.name)
                if not won:
                    lost.append(f"{s.subnet} of network {net.name} (now {holder})")
        return lost


def leave(svc: Service, name: str) -> None:
    from ipvnet.service import require_root
    from ipvnet.store.cluster import ClusterBlocks, load_membership, remove_membership

    require_root("cluster leave")
    with svc.store.locked(exclusive=True):
        nets = cluster_networks(svc.store.load(), name)
        if nets:
            raise Conflict(f"networks of cluster {name} remain on this host: {', '.join(n.name for n in nets)}",
                           "remove them first with `ipvnet network rm`")
        ClusterBlocks(load_membership(svc.store.dir, name)).leave()
        remove_membership(svc.store.dir, name)


def release_host(svc: Service, name: str, host: str) -> list[str]:
    from ipvnet.store.cluster import ClusterBlocks, load_membership

    m = load_membership(svc.store.dir, name)
    if host == m.host:
        raise InvalidArgument(f"{host} is this host", "use `ipvnet cluster leave` to take this host out")
    return ClusterBlocks(m).release_host(validate_name(host, "host name"))


@dataclass
class BlockStatus:
    block: str
    host: str
    network: str
    lease_left: int
    route: str  # "blackhole" (ours, announced), "via X" (learned), "" (none here)


def status(svc: Service, name: str) -> dict[str, Any]:
    from ipvnet.store.cluster import ClusterBlocks, load_membership

    m = load_membership(svc.store.dir, name)
    blocks = ClusterBlocks(m)
    hosts = blocks.hosts()
    routes = {r.dst: r for r in svc.engine.routes() if r.dst}
    out = []
    def order(item: tuple[str, Any]) -> tuple[int, int]:
        b = block_from_name(item[0])
        return b.version, int(b.network_address)

    for bname, kv in sorted(blocks.holders().items(), key=order):
        host, network = holder_of(kv.value)
        dst = str(block_from_name(bname))
        r = routes.get(dst)
        route = ("blackhole" if r.blackhole else f"via {r.gateway}" if r.gateway else f"dev {r.dev}") if r else ""
        out.append(BlockStatus(dst, host, network, hosts.get(host, (0, -1))[1], route))
    return {"cluster": name, "host": m.host, "definition": m.config.describe(), "lease": m.lease,
            "hosts": {h: {"lease": lease, "ttl": ttl} for h, (lease, ttl) in sorted(hosts.items())},
            "blocks": [b.__dict__ for b in out]}


def host_address(svc: Service, name: str, family: int) -> str | None:
    """This host's address toward the other hosts: the parent of a cluster network, else none."""
    state = svc.read()
    parents = {n.parent for n in cluster_networks(state, name)}
    for ifname, addr in svc.engine.addresses():
        ip = ipaddress.ip_interface(addr).ip
        if ifname in parents and ip.version == family and not ip.is_link_local:
            return str(ip)
    return None

