"""IP address management: subnets, gateways, default pools and allocation.

Pure: the store and the kernel are read by the caller and handed in. An
address is "used" exactly when an endpoint in the store holds it, so releasing
an address is removing the endpoint — there is no second ledger to leak from.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ipvnet.errors import Conflict, InvalidArgument
from ipvnet.model import (
    IPAddress,
    IPNetwork,
    Network,
    SubnetConfig,
    parse_address,
    parse_key_values,
    parse_network,
)


def default_v4_pools() -> Iterator[ipaddress.IPv4Network]:
    """Docker's default pools: 172.18-31.0.0/16, then 192.168.0.0/16 in /20s."""
    for second in range(18, 32):
        yield ipaddress.IPv4Network(f"172.{second}.0.0/16")
    yield from ipaddress.IPv4Network("192.168.0.0/16").subnets(new_prefix=20)


def overlaps(a: IPNetwork, b: IPNetwork) -> bool:
    return a.version == b.version and a.overlaps(b)  # type: ignore[arg-type]


def pick_default_v4(avoid: Iterable[IPNetwork], avoid_addrs: Iterable[IPAddress] = ()) -> ipaddress.IPv4Network:
    """First pool that overlaps no network, host route or name server given."""
    avoid = [n for n in avoid if n.version == 4 and n.prefixlen > 0]
    addrs = [a for a in avoid_addrs if a.version == 4]
    for pool in default_v4_pools():
        if any(overlaps(pool, n) for n in avoid) or any(a in pool for a in addrs):
            continue
        return pool
    raise Conflict(
        "all default IPv4 address pools are in use", "give the network an explicit --subnet"
    )


def ula_prefix(seed: str) -> ipaddress.IPv6Network:
    """A ULA /48 (RFC 4193) whose 40-bit global id is derived from the host.

    Derived, not random, so that the same host hands out the same prefixes
    after a store is rebuilt; Docker v27 derives its pool from the host too.
    """
    import hashlib  # only `network create --ipv6` needs it: keep it off the attach path

    gid = hashlib.sha256(seed.encode()).digest()[:5]
    return ipaddress.IPv6Network((int.from_bytes(b"\xfd" + gid, "big") << 80, 48))


def pick_default_v6(ula48: ipaddress.IPv6Network, avoid: Iterable[IPNetwork]) -> ipaddress.IPv6Network:
    avoid = [n for n in avoid if n.version == 6 and n.prefixlen > 0]
    base = int(ula48.network_address)
    for sid in range(1 << 16):
        cand = ipaddress.IPv6Network((base | (sid << 64), 64))
        if not any(overlaps(cand, n) for n in avoid):
            return cand
    raise Conflict(f"no free /64 left in {ula48}", "give the network an explicit IPv6 --subnet")


@dataclass(frozen=True)
class SubnetRequest:
    """The IPAM part of `network create`, as typed by the user."""

    subnets: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    ip_ranges: tuple[str, ...] = ()
    aux_addresses: tuple[str, ...] = ()
    ipv6: bool = False


@dataclass
class SubnetPlan:
    subnets: list[SubnetConfig]
    enable_ipv6: bool
    warnings: list[str] = field(default_factory=list)


def first_host(net: IPNetwork) -> IPAddress:
    if net.num_addresses <= 2:
        return net.network_address
    return net.network_address + 1


def plan_subnets(
    req: SubnetRequest,
    *,
    l3: bool,
    other_subnets: Iterable[IPNetwork],
    host_routes: Iterable[IPNetwork] = (),
    host_nameservers: Iterable[IPAddress] = (),
    ula48: ipaddress.IPv6Network | None = None,
) -> SubnetPlan:
    """Turn --subnet/--gateway/--ip-range/--aux-address into subnet configs.

    Gateways pair with subnets in order. In L2 a subnet without one gets its
    first host; L3/L3S reserve none (the kernel routes, no next hop exists).
    """
    other = list(other_subnets)
    warnings: list[str] = []
    nets = [parse_network(s) for s in req.subnets]
    for i, n in enumerate(nets):
        for m in nets[:i]:
            if overlaps(n, m):
                raise Conflict(f"subnets {m} and {n} overlap", "give each --subnet once, without overlap")
        for o in other:
            if overlaps(n, o):
                raise Conflict(f"subnet {n} overlaps {o} of another network", "choose a free --subnet")
    gws = [parse_address(g, "gateway") for g in req.gateways]
    if len(gws) > len(nets):
        raise InvalidArgument(
            "more --gateway than --subnet options", "each --gateway pairs with the --subnet in the same position"
        )
    ranges = [parse_network(r, "ip-range") for r in req.ip_ranges]
    aux = parse_key_values(req.aux_addresses, "aux-address")
    aux_addrs = {k: parse_address(v, f"aux-address {k}") for k, v in aux.items()}

    enable_ipv6 = req.ipv6 or any(n.version == 6 for n in nets)
    if not any(n.version == 4 for n in nets):
        avoid = other + nets + list(host_routes)
        nets.insert(0, pick_default_v4(avoid, host_nameservers))
        gws.insert(0, None)  # type: ignore[arg-type]
    if req.ipv6 and not any(n.version == 6 for n in nets):
        if ula48 is None:
            raise InvalidArgument("--ipv6 needs an IPv6 --subnet on this host", "add --subnet fdXX::/64")
        nets.append(pick_default_v6(ula48, other + nets))

    if l3 and any(g is not None for g in gws):
        warnings.append("--gateway is ignored in ipvlan l3/l3s mode: routes have no next hop")

    configs: list[SubnetConfig] = []
    used_ranges: set[int] = set()
    used_aux: set[str] = set()
    for i, net in enumerate(nets):
        gw = gws[i] if i < len(gws) else None
        if gw is not None:
            if gw.version != net.version or gw not in net:
                raise InvalidArgument(f"gateway {gw} is not in subnet {net}", "give a gateway inside its subnet")
            if _is_edge(net, gw):
                raise InvalidArgument(f"gateway {gw} is the network or broadcast address of {net}")
        if l3:
            gw = None
        elif gw is None:
            gw = first_host(net)
        rng = None
        for j, r in enumerate(ranges):
            if r.version == net.version and r.subnet_of(net):  # type: ignore[arg-type]
                if rng is not None:
                    raise InvalidArgument(f"two --ip-range given for subnet {net}", "give at most one per subnet")
                rng = r
                used_ranges.add(j)
        net_aux = []
        for k, a in aux_addrs.items():
            if a.version == net.version and a in net:
                if gw is not None and a == gw:
                    raise InvalidArgument(f"aux-address {k}={a} is the gateway of {net}")
                net_aux.append((k, a))
                used_aux.add(k)
        configs.append(SubnetConfig(net, gw, rng, tuple(net_aux)))
    for j, r in enumerate(ranges):
        if j not in used_ranges:
            raise InvalidArgument(f"ip-range {r} is not inside any --subnet", "give a range within its subnet")
    for k, a in aux_addrs.items():
        if k not in used_aux:
            raise InvalidArgument(f"aux-address {k}={a} is not inside any subnet")
    return SubnetPlan(configs, enable_ipv6, warnings)


def _is_edge(net: IPNetwork, addr: IPAddress) -> bool:
    """Network address (both families) or broadcast (IPv4), when the subnet has those."""
    if net.num_addresses <= 2:
        return False
    if addr == net.network_address:
        return True
    return net.version == 4 and addr == net.broadcast_address


def reserved(cfg: SubnetConfig) -> set[IPAddress]:
    out: set[IPAddress] = {a for _, a in cfg.aux}
    if cfg.gateway is not None:
        out.add(cfg.gateway)
    return out


def check_static_reserved(cfg: SubnetConfig, addr: IPAddress, what: str) -> None:
    """ADDR may be given to WHAT: not the network/broadcast address, the gateway or an aux address."""
    if _is_edge(cfg.subnet, addr):
        raise InvalidArgument(f"{what} {addr} is the network or broadcast address of {cfg.subnet}")
    if addr == cfg.gateway:
        raise InvalidArgument(f"{what} {addr} is the gateway of {cfg.subnet}", "choose another address")
    for k, a in cfg.aux:
        if a == addr:
            raise InvalidArgument(f"{what} {addr} is reserved as aux-address {k}", "choose another address")


def used_addresses(network: Network) -> dict[IPAddress, str]:
    """Address -> namespace holding it."""
    held: dict[IPAddress, str] = {}
    for ep in network.endpoints.values():
        for a in ep.addresses():
            held[a.ip] = ep.ns
    return held


def check_static(network: Network, addr: IPAddress, held: dict[IPAddress, str]) -> SubnetConfig:
    """Validate --ip/--ip6; returns the subnet it belongs to."""
    cfg = network.subnet_for(addr)
    if cfg is None:
        subnets = ", ".join(str(s.subnet) for s in network.subnets_of(addr.version)) or "none"
        raise InvalidArgument(
            f"address {addr} is not in a subnet of network {network.name}",
            f"IPv{addr.version} subnets: {subnets}",
        )
    check_static_reserved(cfg, addr, "address")
    if addr in held:
        raise Conflict(f"address {addr} is already in use by namespace {held[addr]} on network {network.name}")
    return cfg


class Allocator:
    """Lowest-free allocation, amortised O(1) for runs of allocations.

    Each (subnet, range) keeps a cursor below which every address is taken;
    a release moves the cursor back. Thousands of attaches in one process
    (`apply`) therefore stay linear instead of quadratic.
    """

    def __init__(self, network: Network) -> None:
        self.network = network
        self.held = used_addresses(network)
        self._cursor: dict[int, int] = {}

    def take(self, addr: IPAddress, ns: str) -> None:
        self.held[addr] = ns

    def release(self, addr: IPAddress) -> None:
        self.held.pop(addr, None)
        for i, cfg in enumerate(self.network.subnets):
            # A subnet never scanned has no cursor: it starts at its lowest address anyway.
            if addr.version == cfg.version and addr in cfg.subnet and i in self._cursor:
                self._cursor[i] = min(self._cursor[i], int(addr))

    def allocate(self, version: int, ns: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        for i, cfg in enumerate(self.network.subnets):
            if cfg.version != version:
                continue
            pool = cfg.ip_range or cfg.subnet
            lo, hi = int(pool.network_address), int(pool.broadcast_address)
            skip = reserved(cfg)
            start = max(lo, self._cursor.get(i, lo))
            addr_cls = type(pool.network_address)
            # Bounded scan: the cursor only passes addresses that are taken.
            n = start
            while n <= hi:
                a = addr_cls(n)
                if a not in self.held and a not in skip and not _is_edge(cfg.subnet, a):
                    self._cursor[i] = n
                    self.held[a] = ns
                    return ipaddress.ip_interface(f"{a}/{cfg.subnet.prefixlen}")  # type: ignore[return-value]
                n += 1
            self._cursor[i] = hi + 1
        subnets = ", ".join(str(s.subnet) for s in self.network.subnets_of(version))
        raise Conflict(
            f"no free IPv{version} address left in network {self.network.name} ({subnets})",
            "detach a namespace or add a subnet",
        )


def assign(
    network: Network, ns: str, ip: str | None, ip6: str | None
) -> tuple[ipaddress.IPv4Interface | None, ipaddress.IPv6Interface | None]:
    """Addresses for a new endpoint: static where given, else lowest free per family.

    A network gets an IPv6 address per endpoint only when it has IPv6 subnets.
    """
    alloc = Allocator(network)
    v4 = v6 = None
    if ip is not None:
        a = parse_address(ip, "--ip")
        if a.version != 4:
            raise InvalidArgument(f"--ip {ip} is not an IPv4 address", "use --ip6 for IPv6")
        cfg = check_static(network, a, alloc.held)
        v4 = ipaddress.IPv4Interface(f"{a}/{cfg.subnet.prefixlen}")
        alloc.take(a, ns)
    if ip6 is not None:
        a = parse_address(ip6, "--ip6")
        if a.version != 6:
            raise InvalidArgument(f"--ip6 {ip6} is not an IPv6 address", "use --ip for IPv4")
        if not network.subnets_of(6):
            raise InvalidArgument(f"network {network.name} has no IPv6 subnet", "create it with --ipv6")
        cfg = check_static(network, a, alloc.held)
        v6 = ipaddress.IPv6Interface(f"{a}/{cfg.subnet.prefixlen}")
        alloc.take(a, ns)
    if v4 is None and network.subnets_of(4):
        v4 = alloc.allocate(4, ns)  # type: ignore[assignment]
    if v6 is None and network.subnets_of(6):
        v6 = alloc.allocate(6, ns)  # type: ignore[assignment]
    return v4, v6
