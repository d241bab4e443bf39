"""IP address management: subnets, gateways, default pools and allocation.

Pure: the store and the kernel are read by the caller and handed in. An
address is "used" exactly when an endpoint in the store holds it, so releasing
an address is removing the endpoint — there is no second ledger to leak from.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator

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
from ipvnet.record import dataclass, field


def default_v4_pools() -> Iterator[ipaddress.IPv4Network]:
    """Docker's default pools: 172.18-31.0.0/16, then 192.168.0.0/16 in /20s."""
    for second in range(18, 32):
        yield ipaddress.IPv4Network(f"172.{second}.0.0/16")
    yield from ipaddress.IPv4Network("192.168.0.0/16").subnets(new_prefix=20)


def overlaps(a: IPNetwork, b: IPNetwork) -> bool:
    return a.version == b.version and a.overlaps(b)


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
    ipv4: bool = True


@dataclass
class SubnetPlan:
    subnets: list[SubnetConfig]
    enable_ipv6: bool
    warnings: list[str] = field(default_factory=list)
    enable_ipv4: bool = True


def first_host(net: IPNetwork) -> IPAddress:
    if net.num_addresses <= 2:
        return net.network_address
    return net.network_address + 1


def _containing(nets: list[IPNetwork], addr: IPAddress) -> IPNetwork | None:
    """The subnet holding ADDR (subnets of one network never overlap, so at most one)."""
    return next((n for n in nets if n.version == addr.version and addr in n), None)


def match_gateways(nets: list[IPNetwork], gateways: list[IPAddress]) -> dict[IPNetwork, IPAddress]:
    """Pair each --gateway with the --subnet that contains it, in any order, as
    Docker's CLI does: `--subnet A --subnet B --gateway b1 --gateway a1` is fine."""
    out: dict[IPNetwork, IPAddress] = {}
    for gw in gateways:
        net = _containing(nets, gw)
        if net is None:
            given = ", ".join(str(n) for n in nets) or "none"
            raise InvalidArgument(f"gateway {gw} is not in any --subnet ({given})",
                                  "give each --gateway inside the --subnet it serves")
        if net in out:
            raise InvalidArgument(f"two gateways for subnet {net}: {out[net]} and {gw}", "give at most one per subnet")
        if _is_edge(net, gw):
            raise InvalidArgument(f"gateway {gw} is the network or broadcast address of {net}")
        out[net] = gw
    return out


def match_ranges(nets: list[IPNetwork], ranges: list[IPNetwork]) -> dict[IPNetwork, IPNetwork]:
    """Pair each --ip-range with the --subnet it lies inside."""
    out: dict[IPNetwork, IPNetwork] = {}
    for r in ranges:
        net = next((n for n in nets if n.version == r.version and r.subnet_of(n)), None)  # type: ignore[arg-type]
        if net is None:
            raise InvalidArgument(f"ip-range {r} is not inside any --subnet", "give a range within its subnet")
        if net in out:
            raise InvalidArgument(f"two --ip-range given for subnet {net}: {out[net]} and {r}",
                                  "give at most one per subnet")
        out[net] = r
    return out


def match_aux(nets: list[IPNetwork], aux: dict[str, IPAddress]) -> dict[IPNetwork, list[tuple[str, IPAddress]]]:
    """Pair each --aux-address with the --subnet that contains it."""
    out: dict[IPNetwork, list[tuple[str, IPAddress]]] = {}
    for k, a in aux.items():
        net = _containing(nets, a)
        if net is None:
            raise InvalidArgument(f"aux-address {k}={a} is not inside any subnet", "give it inside a --subnet")
        out.setdefault(net, []).append((k, a))
    return out


def _check_no_overlap(nets: list[IPNetwork]) -> None:
    """Subnets of one network never overlap (Docker refuses it too); networks may overlap each other."""
    for i, n in enumerate(nets):
        for m in nets[:i]:
            if overlaps(n, m):
                raise Conflict(f"subnets {m} and {n} overlap", "give each --subnet once, without overlap")


def _families(req: SubnetRequest, nets: list[IPNetwork]) -> tuple[bool, bool]:
    """Which families the network has: (IPv4, IPv6). `--ipv4=false` (Docker 28)
    asks for an IPv6-only network; an IPv6 --subnet turns IPv6 on by itself."""
    v6 = req.ipv6 or any(n.version == 6 for n in nets)
    if req.ipv4:
        return True, v6
    v4_given = [str(n) for n in nets if n.version == 4]
    if v4_given:
        raise InvalidArgument(f"--ipv4=false with an IPv4 --subnet ({', '.join(v4_given)})",
                              "drop the IPv4 subnet or --ipv4=false")
    if not v6:
        raise InvalidArgument("--ipv4=false leaves the network without addresses", "add --ipv6 or an IPv6 --subnet")
    return False, True


def plan_subnets(
    req: SubnetRequest,
    *,
    l3: bool,
    internal: bool = False,
    other_subnets: Iterable[IPNetwork] = (),
    host_routes: Iterable[IPNetwork] = (),
    host_nameservers: Iterable[IPAddress] = (),
    ula48: ipaddress.IPv6Network | None = None,
) -> SubnetPlan:
    """Turn --subnet/--gateway/--ip-range/--aux-address into subnet configs.

    Gateways, ranges and aux addresses belong to the subnet that contains
    them. In L2 a subnet without a gateway gets its first host, unless the
    network is internal (no router to point at); L3/L3S reserve none. OTHER
    subnets (of other networks) are only avoided when a default pool is
    picked: explicit subnets may overlap other networks (Docker v28).
    """
    nets = [parse_network(s) for s in req.subnets]
    _check_no_overlap(nets)
    enable_v4, enable_v6 = _families(req, nets)
    other = list(other_subnets)
    gws = match_gateways(nets, [parse_address(g, "gateway") for g in req.gateways])
    ranges = match_ranges(nets, [parse_network(r, "ip-range") for r in req.ip_ranges])
    aux = parse_key_values(req.aux_addresses, "aux-address")
    auxes = match_aux(nets, {k: parse_address(v, f"aux-address {k}") for k, v in aux.items()})
    if enable_v4 and not any(n.version == 4 for n in nets):
        nets.insert(0, pick_default_v4(other + nets + list(host_routes), host_nameservers))
    if req.ipv6 and not any(n.version == 6 for n in nets):
        if ula48 is None:
            raise InvalidArgument("--ipv6 needs an IPv6 --subnet on this host", "add --subnet fdXX::/64")
        nets.append(pick_default_v6(ula48, other + nets))
    warnings = ["--gateway is ignored in ipvlan l3/l3s mode: routes have no next hop"] if l3 and gws else []
    configs = []
    for net in nets:
        gw = gws.get(net)
        if l3:
            gw = None
        elif gw is None and not internal:
            gw = first_host(net)
        net_aux = tuple(auxes.get(net, ()))
        for k, a in net_aux:
            if gw is not None and a == gw:
                raise InvalidArgument(f"aux-address {k}={a} is the gateway of {net}")
        configs.append(SubnetConfig(net, gw, ranges.get(net), net_aux))
    return SubnetPlan(configs, enable_v6, warnings, enable_v4)


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


# Addresses held, as (version, integer) keys: building ipaddress objects for
# every member of a large network on every attach cost more than the rest.
Key = tuple[int, int]


def key_of(addr: IPAddress) -> Key:
    return addr.version, int(addr)


def used_addresses(network: Network) -> dict[Key, str]:
    """Address -> namespace holding it; the endpoints' own index, not to be changed."""
    return network.endpoints.held()


def _within(network: Network) -> Callable[[Key], bool]:
    ranges = [(s.version, int(s.subnet.network_address), int(s.subnet.broadcast_address)) for s in network.subnets]
    return lambda k: any(v == k[0] and lo <= k[1] <= hi for v, lo, hi in ranges)


def shared_holders(network: Network, siblings: Iterable[Network]) -> dict[Key, str]:
    """Addresses of NETWORK's address space, with who holds each: a bare
    namespace name for NETWORK's own members (a copy of its index, made
    without touching each member), a phrase for the rest ("namespace a on
    network m", "a reserved address of network m"); see `holder`.

    Networks on one parent share one address space: the kernel refuses an
    address that a sibling slave holds, and a sibling's gateway or aux address
    is a real host on that link. Networks on other parents are other L2
    domains and allocate independently, so only SIBLINGS are consulted.
    """
    held = dict(used_addresses(network))
    inside = _within(network)
    for sib in siblings:
        for k, ns in used_addresses(sib).items():
            if inside(k):
                held.setdefault(k, f"namespace {ns} on network {sib.name}")
        for cfg in sib.subnets:
            for a in reserved(cfg):
                if inside(key_of(a)):
                    held.setdefault(key_of(a), f"a reserved address (gateway or aux-address) of network {sib.name}")
    return held


def holder(network: Network, held: dict[Key, str], k: Key) -> str:
    """Who holds K, in words (a namespace name holds no space; a phrase does)."""
    who = held[k]
    return who if " " in who else f"namespace {who} on network {network.name}"


def check_static(network: Network, addr: IPAddress, held: dict[Key, str]) -> SubnetConfig:
    """Validate --ip/--ip6; returns the subnet it belongs to."""
    cfg = network.subnet_for(addr)
    if cfg is None:
        subnets = ", ".join(str(s.subnet) for s in network.subnets_of(addr.version)) or "none"
        raise InvalidArgument(
            f"address {addr} is not in a subnet of network {network.name}",
            f"IPv{addr.version} subnets: {subnets}",
        )
    check_static_reserved(cfg, addr, "address")
    if key_of(addr) in held:
        raise Conflict(f"address {addr} is already in use by {holder(network, held, key_of(addr))}",
                       "choose another address")
    return cfg


class Allocator:
    """Lowest-free allocation, amortised O(1) for runs of allocations.

    Each (subnet, range) keeps a cursor below which every address is taken;
    a release moves the cursor back. Thousands of attaches in one process
    (`apply`) therefore stay linear instead of quadratic.
    """

    def __init__(self, network: Network, siblings: Iterable[Network] = ()) -> None:
        self.network = network
        self.held = shared_holders(network, siblings)
        self._cursor: dict[int, int] = {}

    def take(self, addr: IPAddress, ns: str) -> None:
        self.held[key_of(addr)] = ns

    def release(self, addr: IPAddress) -> None:
        self.held.pop(key_of(addr), None)
        for i, cfg in enumerate(self.network.subnets):
            # A subnet never scanned has no cursor: it starts at its lowest address anyway.
            if addr.version == cfg.version and addr in cfg.subnet and i in self._cursor:
                self._cursor[i] = min(self._cursor[i], int(addr))

    def allocate(self, version: int, ns: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        for i, cfg in enumerate(self.network.subnets):
            if cfg.version != version:
                continue
            n = self._scan(i, cfg)
            if n is not None:
                self._cursor[i] = n
                self.held[(version, n)] = ns
                a = cfg.subnet.network_address + (n - int(cfg.subnet.network_address))
                return ipaddress.ip_interface(f"{a}/{cfg.subnet.prefixlen}")
        subnets = ", ".join(str(s.subnet) for s in self.network.subnets_of(version))
        raise Conflict(
            f"no free IPv{version} address left in network {self.network.name} ({subnets})",
            "detach a namespace or add a subnet",
        )

    def _scan(self, i: int, cfg: SubnetConfig) -> int | None:
        """The lowest free address of subnet I (or its range), on integers. Bounded:
        the cursor only ever passes addresses that are taken."""
        pool = cfg.ip_range or cfg.subnet
        lo, hi = int(pool.network_address), int(pool.broadcast_address)
        skip = {int(a) for a in reserved(cfg)}
        if cfg.subnet.num_addresses > 2:  # network (and, for IPv4, broadcast) addresses are not handed out
            skip.add(int(cfg.subnet.network_address))
            if cfg.version == 4:
                skip.add(int(cfg.subnet.broadcast_address))
        held, v = self.held, cfg.version
        n = max(lo, self._cursor.get(i, lo))
        while n <= hi:
            if (v, n) not in held and n not in skip:
                return n
            n += 1
        self._cursor[i] = hi + 1
        return None


def assign(
    network: Network, ns: str, ip: str | None, ip6: str | None, siblings: Iterable[Network] = ()
) -> tuple[ipaddress.IPv4Interface | None, ipaddress.IPv6Interface | None]:
    """Addresses for a new endpoint: static where given, else lowest free per family.

    A network gets an address per endpoint in each family it has subnets of.
    SIBLINGS are the other networks on the same parent (one address space).
    """
    alloc = Allocator(network, siblings)
    v4 = v6 = None
    if ip is not None:
        a = parse_address(ip, "--ip")
        if a.version != 4:
            raise InvalidArgument(f"--ip {ip} is not an IPv4 address", "use --ip6 for IPv6")
        if not network.subnets_of(4):
            raise InvalidArgument(f"network {network.name} has no IPv4 subnet", "leave out --ip")
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
