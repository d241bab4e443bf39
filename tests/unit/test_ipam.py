"""ipam.py: subnet planning, default pools, static checks and lowest-free allocation."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvnet import ipam
from ipvnet.errors import Conflict, InvalidArgument
from ipvnet.ipam import Allocator, SubnetRequest, assign, check_static, plan_subnets
from ipvnet.model import Endpoint, SubnetConfig
from tests.unit.factories import endpoint, network, subnet

A = ipaddress.ip_address
N = ipaddress.ip_network

# --- reference model for the properties --------------------------------------


def eligible(cfg: SubnetConfig) -> list:
    """Every address automatic allocation may hand out, ascending (independent of ipam)."""
    pool = cfg.ip_range or cfg.subnet
    forbidden = {cfg.subnet.network_address, *(a for _, a in cfg.aux)}
    if cfg.version == 4:
        forbidden.add(cfg.subnet.broadcast_address)
    if cfg.gateway is not None:
        forbidden.add(cfg.gateway)
    first = int(pool.network_address)
    cls = type(pool.network_address)
    return [cls(first + i) for i in range(pool.num_addresses) if cls(first + i) not in forbidden]


def assert_allowed(addr, cfg: SubnetConfig) -> None:
    assert addr in cfg.subnet
    if cfg.ip_range is not None:
        assert addr in cfg.ip_range
    assert addr != cfg.gateway
    assert addr not in {a for _, a in cfg.aux}
    assert addr != cfg.subnet.network_address
    if cfg.version == 4:
        assert addr != cfg.subnet.broadcast_address


@st.composite
def subnet_configs(draw, v4=(22, 30), v6=(120, 126)):
    """A random small subnet with optional gateway, aux addresses and ip-range."""
    version = draw(st.sampled_from((4, 6)))
    bits = 32 if version == 4 else 128
    plen = draw(st.integers(*(v4 if version == 4 else v6)))
    size = 1 << (bits - plen)
    base = draw(st.integers(0, (1 << plen) - 1)) << (bits - plen)
    net = ipaddress.IPv4Network((base, plen)) if version == 4 else ipaddress.IPv6Network((base, plen))

    def host() -> st.SearchStrategy:
        # anything but the network address (and the v4 broadcast): what plan_subnets lets through
        hi = size - 2 if version == 4 else size - 1
        return st.integers(1, hi).map(lambda i: net.network_address + i)

    gateway = draw(st.none() | host())
    aux_addrs = draw(st.lists(host(), max_size=4, unique=True))
    aux = tuple((f"aux{i}", a) for i, a in enumerate(aux_addrs) if a != gateway)
    ip_range = None
    if draw(st.booleans()):
        rplen = draw(st.integers(plen, bits))
        block = draw(st.integers(0, (1 << (rplen - plen)) - 1))
        ip_range = type(net)((base + (block << (bits - rplen)), rplen))
    return SubnetConfig(net, gateway, ip_range, aux)


def _net_for(cfg: SubnetConfig):
    return network("prop", [cfg], enable_ipv6=cfg.version == 6)


PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- properties ----------------------------------------------------------------


@PROPS
@given(cfg=subnet_configs(), data=st.data())
def test_allocator_exhausts_lowest_first_and_reuses_released(cfg, data):
    net = _net_for(cfg)
    expected = eligible(cfg)
    alloc = Allocator(net)
    got = []
    for i in range(len(expected)):
        iface = alloc.allocate(cfg.version, f"ns{i}")
        assert iface.network.prefixlen == cfg.subnet.prefixlen
        assert_allowed(iface.ip, cfg)
        got.append(iface.ip)
    assert len(set(got)) == len(got)
    assert got == expected  # lowest free, every time, and nothing skipped
    with pytest.raises(Conflict):
        alloc.allocate(cfg.version, "one-too-many")

    if not got:
        return
    released = data.draw(st.lists(st.sampled_from(got), min_size=1, unique=True), label="released")
    for a in released:
        alloc.release(a)
    again = [alloc.allocate(cfg.version, f"re{i}").ip for i in range(len(released))]
    assert again == sorted(released)
    with pytest.raises(Conflict):
        alloc.allocate(cfg.version, "one-too-many")


@PROPS
@given(cfg=subnet_configs(v4=(26, 30), v6=(122, 126)), data=st.data())
def test_assign_one_by_one_until_full_then_reuse_after_detach(cfg, data):
    net = _net_for(cfg)
    expected = eligible(cfg)
    got = []
    for i in range(len(expected)):
        ns = f"ns{i}"
        v4, v6 = assign(net, ns, None, None)
        iface = v4 if cfg.version == 4 else v6
        assert (v6 if cfg.version == 4 else v4) is None  # single-family network
        assert iface is not None and iface.network.prefixlen == cfg.subnet.prefixlen
        assert_allowed(iface.ip, cfg)
        got.append(iface.ip)
        net = net.with_endpoint(Endpoint(ns, "eth0", f"e{i}", i, ipv4=v4, ipv6=v6))
    assert got == expected
    with pytest.raises(Conflict) as ei:
        assign(net, "late", None, None)
    assert str(cfg.subnet) in str(ei.value)

    if not got:
        return
    gone = data.draw(st.lists(st.integers(0, len(got) - 1), min_size=1, unique=True), label="detached")
    for i in gone:
        net = net.without_endpoint(f"ns{i}")
    freed = sorted(got[i] for i in gone)
    for j, want in enumerate(freed):
        v4, v6 = assign(net, f"new{j}", None, None)
        iface = v4 if cfg.version == 4 else v6
        assert iface.ip == want
        net = net.with_endpoint(Endpoint(f"new{j}", "eth0", f"n{j}", 1000 + j, ipv4=v4, ipv6=v6))
    with pytest.raises(Conflict):
        assign(net, "late", None, None)


@PROPS
@given(cfg=subnet_configs(), steps=st.lists(st.tuples(st.booleans(), st.integers(0, 10**6)), max_size=40))
def test_assign_interleaved_attach_detach_is_lowest_free(cfg, steps):
    """A random walk of attaches and detaches: every attach gets the lowest free address."""
    net = _net_for(cfg)
    expected = eligible(cfg)
    held: dict[str, object] = {}
    seq = 0
    for attach, pick in steps:
        if attach or not held:
            seq += 1
            ns = f"ns{seq}"
            free = [a for a in expected if a not in held.values()]
            if not free:
                with pytest.raises(Conflict):
                    assign(net, ns, None, None)
                continue
            v4, v6 = assign(net, ns, None, None)
            ip = (v4 or v6).ip
            assert ip == free[0]
            assert ip not in held.values()
            held[ns] = ip
            net = net.with_endpoint(Endpoint(ns, "eth0", ns, seq, ipv4=v4, ipv6=v6))
        else:
            ns = sorted(held)[pick % len(held)]
            del held[ns]
            net = net.without_endpoint(ns)
    assert ipam.used_addresses(net) == {ipam.key_of(ip): ns for ns, ip in held.items()}


@PROPS
@given(cfg=subnet_configs(v4=(24, 30), v6=(120, 126)), data=st.data())
def test_check_static_accepts_exactly_the_non_reserved_free_addresses(cfg, data):
    net = _net_for(cfg)
    i = data.draw(st.integers(0, cfg.subnet.num_addresses - 1), label="offset")
    addr = cfg.subnet.network_address + i
    reserved = {cfg.subnet.network_address, cfg.gateway, *(a for _, a in cfg.aux)}
    if cfg.version == 4:
        reserved.add(cfg.subnet.broadcast_address)
    if addr in reserved:
        with pytest.raises(InvalidArgument):
            check_static(net, addr, {})
    else:
        # --ip-range limits only automatic allocation: a static address outside it is fine
        assert check_static(net, addr, {}) == cfg
        with pytest.raises(Conflict) as ei:
            check_static(net, addr, {ipam.key_of(addr): "holder-ns"})
        assert "holder-ns" in str(ei.value)


# --- assign ----------------------------------------------------------------------


def test_assign_dual_stack_takes_one_address_per_family():
    net = network(subnets=[subnet("10.0.0.0/29", "10.0.0.1"), subnet("fd00::/125", "fd00::1")])
    v4, v6 = assign(net, "a", None, None)
    assert (str(v4), str(v6)) == ("10.0.0.2/29", "fd00::2/125")
    net = net.with_endpoint(Endpoint("a", "eth0", "a", 1, v4, v6))
    v4, v6 = assign(net, "b", None, None)
    assert (str(v4), str(v6)) == ("10.0.0.3/29", "fd00::3/125")


def test_assign_v6_uses_last_address_no_broadcast_in_v6():
    net = network(subnets=[subnet("10.0.0.0/24", "10.0.0.1"), subnet("fd00::/126", "fd00::1")])
    net = net.with_endpoint(endpoint("a", "10.0.0.2/24", "fd00::2/126"))
    _, v6 = assign(net, "b", None, None)
    assert str(v6) == "fd00::3/126"
    net = net.with_endpoint(endpoint("b", "10.0.0.3/24", "fd00::3/126", seq=2))
    with pytest.raises(Conflict) as ei:
        assign(net, "c", None, None)
    assert "IPv6" in str(ei.value)


def test_assign_falls_through_to_next_subnet_of_same_family():
    net = network(subnets=[subnet("10.0.0.0/30", "10.0.0.1"), subnet("10.0.1.0/30", "10.0.1.1")])
    v4, _ = assign(net, "a", None, None)
    assert str(v4) == "10.0.0.2/30"
    net = net.with_endpoint(endpoint("a", str(v4)))
    v4, _ = assign(net, "b", None, None)
    assert str(v4) == "10.0.1.2/30"
    net = net.with_endpoint(endpoint("b", str(v4), seq=2))
    with pytest.raises(Conflict) as ei:
        assign(net, "c", None, None)
    assert "10.0.0.0/30" in str(ei.value) and "10.0.1.0/30" in str(ei.value)
    # releasing in the first subnet makes it the first choice again
    assert str(assign(net.without_endpoint("a"), "c", None, None)[0]) == "10.0.0.2/30"


def test_assign_ip_range_limits_automatic_allocation_only():
    net = network(subnets=[subnet("10.0.0.0/24", "10.0.0.1", "10.0.0.64/30")])
    v4, _ = assign(net, "a", None, None)
    assert str(v4) == "10.0.0.64/24"  # the range's first address is an ordinary host of the subnet
    v4, _ = assign(net, "b", "10.0.0.200", None)
    assert str(v4) == "10.0.0.200/24"


def test_assign_static_addresses():
    net = network(subnets=[subnet("10.0.0.0/24", "10.0.0.1"), subnet("fd00::/64", "fd00::1")])
    v4, v6 = assign(net, "a", "10.0.0.50", None)
    assert str(v4) == "10.0.0.50/24" and str(v6) == "fd00::2/64"
    v4, v6 = assign(net, "a", None, "fd00::abcd")
    assert str(v4) == "10.0.0.2/24" and str(v6) == "fd00::abcd/64"
    v4, v6 = assign(net, "a", " 10.0.0.9 ", "fd00::9")
    assert (str(v4), str(v6)) == ("10.0.0.9/24", "fd00::9/64")


def test_assign_auto_skips_an_address_taken_by_a_static_one():
    net = network(subnets=[subnet("10.0.0.0/24", "10.0.0.1")], endpoints=[endpoint("a", "10.0.0.2/24")])
    assert str(assign(net, "b", None, None)[0]) == "10.0.0.3/24"


@pytest.mark.parametrize(
    ("ip", "ip6", "exc", "needle"),
    [
        ("fd00::5", None, InvalidArgument, "--ip6"),
        (None, "10.0.0.5", InvalidArgument, "--ip "),
        ("10.0.0.300", None, InvalidArgument, "--ip"),
        ("10.0.0.2", None, Conflict, "holder"),
        (None, "fd00::2", Conflict, "holder"),
        ("10.9.0.5", None, InvalidArgument, "not in a subnet"),
    ],
)
def test_assign_rejects(ip, ip6, exc, needle):
    net = network(
        subnets=[subnet("10.0.0.0/24", "10.0.0.1"), subnet("fd00::/64", "fd00::1")],
        endpoints=[endpoint("holder", "10.0.0.2/24", "fd00::2/64")],
    )
    with pytest.raises(exc) as ei:
        assign(net, "new", ip, ip6)
    assert needle in str(ei.value)


def test_assign_ip6_on_network_without_v6():
    net = network(subnets=[subnet("10.0.0.0/24", "10.0.0.1")])
    with pytest.raises(InvalidArgument) as ei:
        assign(net, "a", None, "fd00::5")
    assert "no IPv6 subnet" in str(ei.value)
    assert assign(net, "a", None, None)[1] is None


def test_assign_v4_auto_and_v6_static_do_not_leak_on_error():
    """A failing static --ip6 must not have taken anything: the network is unchanged (pure)."""
    net = network(subnets=[subnet("10.0.0.0/24", "10.0.0.1"), subnet("fd00::/64", "fd00::1")])
    with pytest.raises(InvalidArgument):
        assign(net, "a", "10.0.0.7", "fd00::1")  # the v6 gateway
    assert ipam.used_addresses(net) == {}
    assert net.endpoints == {}


def test_used_addresses_maps_every_address_to_its_namespace():
    net = network(
        subnets=[subnet("10.0.0.0/24", "10.0.0.1"), subnet("fd00::/64", "fd00::1")],
        endpoints=[endpoint("a", "10.0.0.2/24", "fd00::2/64"), endpoint("b", "10.0.0.3/24", seq=2)],
    )
    assert ipam.used_addresses(net) == {(4, int(A("10.0.0.2"))): "a", (6, int(A("fd00::2"))): "a",
                                        (4, int(A("10.0.0.3"))): "b"}


# --- Allocator specifics -----------------------------------------------------------


def test_allocator_take_marks_address_used():
    net = network(subnets=[subnet("10.0.0.0/29", "10.0.0.1")])
    alloc = Allocator(net)
    alloc.take(A("10.0.0.2"), "static")
    assert str(alloc.allocate(4, "a")) == "10.0.0.3/29"
    assert ipam.holder(net, alloc.held, ipam.key_of(A("10.0.0.2"))) == "namespace static on network net"
    assert ipam.holder(net, alloc.held, ipam.key_of(A("10.0.0.3"))) == "namespace a on network net"


def test_allocator_release_of_unknown_address_is_harmless():
    net = network(subnets=[subnet("10.0.0.0/29", "10.0.0.1")])
    alloc = Allocator(net)
    alloc.release(A("192.0.2.1"))
    alloc.release(A("fd00::1"))
    assert str(alloc.allocate(4, "a")) == "10.0.0.2/29"


def test_allocator_no_subnet_of_family():
    alloc = Allocator(network(subnets=[subnet("10.0.0.0/24", "10.0.0.1")]))
    with pytest.raises(Conflict):
        alloc.allocate(6, "a")


def test_allocator_release_before_any_allocation_keeps_lowest_free():
    # 10.0.0.2 is free (its holder detached earlier); 10.0.0.3 and .4 are held.
    net = network(
        subnets=[subnet("10.0.0.0/24", "10.0.0.1")],
        endpoints=[endpoint("a", "10.0.0.3/24"), endpoint("b", "10.0.0.4/24", seq=2)],
    )
    alloc = Allocator(net)
    alloc.release(A("10.0.0.4"))  # e.g. `b` detaches within the same batch
    assert str(alloc.allocate(4, "c")) == "10.0.0.2/24"


# --- check_static ------------------------------------------------------------------


def _static_net():
    return network(
        "stat",
        [
            subnet("10.0.0.0/24", "10.0.0.1", "10.0.0.128/25", {"printer": "10.0.0.9"}),
            subnet("fd00::/64", "fd00::1", aux={"dns": "fd00::53"}),
        ],
        endpoints=[endpoint("holder", "10.0.0.5/24", "fd00::5/64")],
    )


@pytest.mark.parametrize(
    ("addr", "exc", "needle"),
    [
        ("10.1.0.5", InvalidArgument, "not in a subnet"),
        ("192.168.0.1", InvalidArgument, "IPv4 subnets: 10.0.0.0/24"),
        ("fd01::5", InvalidArgument, "IPv6 subnets: fd00::/64"),
        ("10.0.0.0", InvalidArgument, "network or broadcast"),
        ("10.0.0.255", InvalidArgument, "network or broadcast"),
        ("fd00::", InvalidArgument, "network or broadcast"),
        ("10.0.0.1", InvalidArgument, "gateway"),
        ("fd00::1", InvalidArgument, "gateway"),
        ("10.0.0.9", InvalidArgument, "printer"),
        ("fd00::53", InvalidArgument, "dns"),
        ("10.0.0.5", Conflict, "holder"),
        ("fd00::5", Conflict, "holder"),
    ],
)
def test_check_static_errors(addr, exc, needle):
    net = _static_net()
    with pytest.raises(exc) as ei:
        check_static(net, A(addr), ipam.used_addresses(net))
    assert needle in str(ei.value)


@pytest.mark.parametrize("addr", ["10.0.0.2", "10.0.0.254", "10.0.0.127", "fd00::ffff:ffff:ffff:ffff", "fd00::2"])
def test_check_static_accepts(addr):
    net = _static_net()
    cfg = check_static(net, A(addr), ipam.used_addresses(net))
    assert A(addr) in cfg.subnet


def test_check_static_conflict_names_namespace_and_network():
    net = _static_net()
    with pytest.raises(Conflict) as ei:
        check_static(net, A("10.0.0.5"), ipam.shared_holders(net, []))
    assert "namespace holder on network stat" in str(ei.value)


def test_check_static_without_subnets_of_family():
    net = network(subnets=[subnet("10.0.0.0/24", "10.0.0.1")])
    with pytest.raises(InvalidArgument) as ei:
        check_static(net, A("fd00::5"), {})
    assert "IPv6 subnets: none" in str(ei.value)


# --- plan_subnets ----------------------------------------------------------------


def _plan(l3=False, internal=False, other=(), routes=(), nameservers=(), ula48=None, **req):
    return plan_subnets(
        SubnetRequest(**{k: tuple(v) for k, v in req.items() if k not in ("ipv6", "ipv4")},
                      ipv6=req.get("ipv6", False), ipv4=req.get("ipv4", True)),
        l3=l3,
        internal=internal,
        other_subnets=[N(o) for o in other],
        host_routes=[N(r) for r in routes],
        host_nameservers=[A(x) for x in nameservers],
        ula48=ula48,
    )


def _summary(plan):
    return [
        (
            str(c.subnet),
            str(c.gateway) if c.gateway else None,
            str(c.ip_range) if c.ip_range else None,
            {k: str(v) for k, v in c.aux},
        )
        for c in plan.subnets
    ]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param(
            {"subnets": ["10.1.0.0/24", "10.2.0.0/24"], "gateways": ["10.1.0.254", "10.2.0.100"]},
            [("10.1.0.0/24", "10.1.0.254", None, {}), ("10.2.0.0/24", "10.2.0.100", None, {})],
            id="gateways-pair-in-order",
        ),
        pytest.param(
            {"subnets": ["10.1.0.0/24", "10.2.0.0/24"], "gateways": ["10.1.0.254"]},
            [("10.1.0.0/24", "10.1.0.254", None, {}), ("10.2.0.0/24", "10.2.0.1", None, {})],
            id="missing-gateway-is-first-host",
        ),
        pytest.param(
            {"subnets": ["192.168.1.0/24"]},
            [("192.168.1.0/24", "192.168.1.1", None, {})],
            id="l2-default-gateway",
        ),
        pytest.param(
            {"subnets": ["fd00:1::/64"], "gateways": []},
            [("172.18.0.0/16", "172.18.0.1", None, {}), ("fd00:1::/64", "fd00:1::1", None, {})],
            id="v6-only-gets-default-v4",
        ),
        pytest.param(
            {"subnets": ["fd00:1::/64"], "gateways": ["fd00:1::fe"]},
            [("172.18.0.0/16", "172.18.0.1", None, {}), ("fd00:1::/64", "fd00:1::fe", None, {})],
            id="v6-gateway-still-pairs-with-v6-subnet",
        ),
        pytest.param(
            {
                "subnets": ["10.1.0.0/24", "10.2.0.0/24"],
                "ip_ranges": ["10.2.0.128/25", "10.1.0.0/28"],
            },
            [("10.1.0.0/24", "10.1.0.1", "10.1.0.0/28", {}), ("10.2.0.0/24", "10.2.0.1", "10.2.0.128/25", {})],
            id="ip-range-by-containment",
        ),
        pytest.param(
            {"subnets": ["10.1.0.0/24", "fd00::/64"], "ip_ranges": ["fd00::100/120"]},
            [("10.1.0.0/24", "10.1.0.1", None, {}), ("fd00::/64", "fd00::1", "fd00::100/120", {})],
            id="v6-ip-range",
        ),
        pytest.param(
            {
                "subnets": ["10.1.0.0/24", "10.2.0.0/24", "fd00::/64"],
                "aux_addresses": ["router=10.1.0.5", "dns=10.2.0.6", "v6host=fd00::7", "nas=10.1.0.6"],
            },
            [
                ("10.1.0.0/24", "10.1.0.1", None, {"router": "10.1.0.5", "nas": "10.1.0.6"}),
                ("10.2.0.0/24", "10.2.0.1", None, {"dns": "10.2.0.6"}),
                ("fd00::/64", "fd00::1", None, {"v6host": "fd00::7"}),
            ],
            id="aux-addresses",
        ),
        pytest.param(
            {"subnets": ["10.1.0.0/30"]},
            [("10.1.0.0/30", "10.1.0.1", None, {})],
            id="tiny-subnet",
        ),
    ],
)
def test_plan_subnets_l2(kwargs, expected):
    plan = _plan(**kwargs)
    assert _summary(plan) == expected
    assert plan.warnings == []


def test_plan_subnets_l3_reserves_no_gateway():
    plan = _plan(l3=True, subnets=["10.1.0.0/24", "fd00::/64"])
    assert _summary(plan) == [("10.1.0.0/24", None, None, {}), ("fd00::/64", None, None, {})]
    assert plan.warnings == []
    assert plan.enable_ipv6


def test_plan_subnets_l3_ignores_gateway_with_warning():
    plan = _plan(l3=True, subnets=["10.1.0.0/24"], gateways=["10.1.0.254"])
    assert _summary(plan) == [("10.1.0.0/24", None, None, {})]
    assert len(plan.warnings) == 1
    assert "--gateway" in plan.warnings[0] and "ignored" in plan.warnings[0]


def test_plan_subnets_l3_default_pool_has_no_gateway():
    plan = _plan(l3=True)
    assert _summary(plan) == [("172.18.0.0/16", None, None, {})]


def test_plan_subnets_l3_aux_may_be_first_host():
    plan = _plan(l3=True, subnets=["10.1.0.0/24"], aux_addresses=["r=10.1.0.1"])
    assert _summary(plan) == [("10.1.0.0/24", None, None, {"r": "10.1.0.1"})]


@pytest.mark.parametrize(
    ("kwargs", "exc", "needle"),
    [
        ({"subnets": ["10.1.0.1/24"]}, InvalidArgument, "host bits"),
        ({"subnets": ["fd00::1/64"]}, InvalidArgument, "host bits"),
        ({"subnets": ["10.1.0.0"]}, InvalidArgument, "prefix length"),
        ({"subnets": ["10.1.0.0/24"], "gateways": ["10.2.0.1"]}, InvalidArgument,
         "gateway 10.2.0.1 is not in any --subnet (10.1.0.0/24)"),
        ({"subnets": ["10.1.0.0/24"], "gateways": ["fd00::1"]}, InvalidArgument, "not in any --subnet"),
        ({"gateways": ["10.1.0.1"]}, InvalidArgument, "not in any --subnet (none)"),
        ({"subnets": ["10.1.0.0/24", "10.2.0.0/24"], "gateways": ["10.2.0.1", "10.2.0.9"]}, InvalidArgument,
         "two gateways for subnet 10.2.0.0/24: 10.2.0.1 and 10.2.0.9"),
        ({"subnets": ["10.1.0.0/24"], "gateways": ["10.1.0.0"]}, InvalidArgument, "network or broadcast"),
        ({"subnets": ["10.1.0.0/24"], "gateways": ["10.1.0.255"]}, InvalidArgument, "network or broadcast"),
        ({"subnets": ["10.1.0.0/24"], "gateways": ["10.1.0.1", "10.1.0.2"]}, InvalidArgument, "two gateways"),
        ({"subnets": ["10.1.0.0/24"], "ipv4": False}, InvalidArgument, "--ipv4=false with an IPv4 --subnet"),
        ({"ipv4": False}, InvalidArgument, "without addresses"),
        ({"subnets": ["10.1.0.0/24"], "gateways": ["nonsense"]}, InvalidArgument, "gateway"),
        ({"subnets": ["10.1.0.0/24"], "ip_ranges": ["10.2.0.0/25"]}, InvalidArgument, "not inside any"),
        ({"subnets": ["10.1.0.0/24"], "ip_ranges": ["10.1.0.0/23"]}, InvalidArgument, "not inside any"),
        (
            {"subnets": ["10.1.0.0/24"], "ip_ranges": ["10.1.0.0/25", "10.1.0.128/25"]},
            InvalidArgument,
            "two --ip-range",
        ),
        ({"subnets": ["10.1.0.0/24"], "ip_ranges": ["10.1.0.1/25"]}, InvalidArgument, "host bits"),
        ({"subnets": ["10.1.0.0/24"], "aux_addresses": ["r=10.1.0.1"]}, InvalidArgument, "is the gateway"),
        ({"subnets": ["10.1.0.0/24"], "aux_addresses": ["r=10.9.0.1"]}, InvalidArgument, "not inside any"),
        ({"subnets": ["10.1.0.0/24"], "aux_addresses": ["r"]}, InvalidArgument, "KEY=VALUE"),
        ({"subnets": ["10.1.0.0/24"], "aux_addresses": ["r=10.1.0.5", "r=10.1.0.6"]}, InvalidArgument, "given twice"),
        ({"subnets": ["10.1.0.0/24"], "aux_addresses": ["r=x"]}, InvalidArgument, "aux-address r"),
        ({"subnets": ["10.1.0.0/24", "10.1.0.128/25"]}, Conflict, "overlap"),
        ({"subnets": ["10.1.0.0/24", "10.1.0.0/24"]}, Conflict, "overlap"),
        ({"subnets": ["fd00::/64", "fd00::/48"]}, Conflict, "overlap"),
    ],
)
def test_plan_subnets_errors(kwargs, exc, needle):
    with pytest.raises(exc) as ei:
        _plan(**kwargs)
    assert needle in str(ei.value)


@pytest.mark.parametrize(
    ("subnet_", "other"),
    [
        ("10.1.5.0/24", "10.1.0.0/16"),
        ("10.0.0.0/8", "10.200.3.0/24"),
        ("10.1.0.0/24", "10.1.0.0/24"),
        ("fd00:1::/64", "fd00::/16"),
    ],
)
def test_plan_subnets_may_overlap_other_networks(subnet_, other):
    """Docker v28: networks may overlap (two VLANs reusing one private subnet)."""
    plan = _plan(subnets=[subnet_], other=[other])
    assert str(plan.subnets[-1].subnet) == subnet_


def test_plan_subnets_explicit_subnet_may_be_a_host_route():
    """An explicit --subnet may be the host's own LAN; only the default pool avoids host routes."""
    plan = _plan(subnets=["192.168.1.0/24"], routes=["192.168.1.0/24"], nameservers=["192.168.1.1"])
    assert _summary(plan) == [("192.168.1.0/24", "192.168.1.1", None, {})]


def test_plan_subnets_other_families_do_not_overlap():
    plan = _plan(subnets=["10.1.0.0/24"], other=["fd00::/8", "10.2.0.0/16"])
    assert _summary(plan)[0][0] == "10.1.0.0/24"


@pytest.mark.parametrize(
    ("other", "routes", "nameservers", "expected"),
    [
        pytest.param([], [], [], "172.18.0.0/16", id="first-pool"),
        pytest.param(["172.18.0.0/16"], [], [], "172.19.0.0/16", id="skip-other-network"),
        pytest.param(["172.18.7.0/24"], [], [], "172.19.0.0/16", id="skip-partial-overlap"),
        pytest.param(["172.16.0.0/12"], [], [], "192.168.0.0/20", id="after-172-31-comes-192-168"),
        pytest.param(["172.16.0.0/12", "192.168.0.0/20"], [], [], "192.168.16.0/20", id="192-168-in-20s"),
        pytest.param(
            ["172.16.0.0/12"], ["192.168.0.0/24", "192.168.17.0/24"], [], "192.168.32.0/20", id="host-routes-in-192-168"
        ),
        pytest.param(["fd00::/8", "10.0.0.0/8"], [], [], "172.18.0.0/16", id="unrelated-others"),
        pytest.param([], ["172.18.0.0/15"], [], "172.20.0.0/16", id="skip-host-route"),
        pytest.param([], ["0.0.0.0/0", "::/0"], [], "172.18.0.0/16", id="default-route-ignored"),
        pytest.param([], ["172.0.0.0/8"], [], "192.168.0.0/20", id="wide-host-route"),
        pytest.param([], [], ["172.18.0.53"], "172.19.0.0/16", id="skip-nameserver"),
        pytest.param([], [], ["fd00::53", "8.8.8.8"], "172.18.0.0/16", id="unrelated-nameservers"),
        pytest.param(["172.18.0.0/16"], ["172.19.0.0/16"], ["172.20.1.1"], "172.21.0.0/16", id="all-three"),
    ],
)
def test_plan_subnets_default_v4_pool(other, routes, nameservers, expected):
    plan = _plan(other=other, routes=routes, nameservers=nameservers)
    assert len(plan.subnets) == 1
    cfg = plan.subnets[0]
    assert str(cfg.subnet) == expected
    assert cfg.gateway == cfg.subnet.network_address + 1
    assert plan.enable_ipv6 is False


def test_default_v4_pools_sequence():
    pools = [str(p) for p in ipam.default_v4_pools()]
    assert pools[:2] == ["172.18.0.0/16", "172.19.0.0/16"]
    assert pools[13] == "172.31.0.0/16"
    assert pools[14:16] == ["192.168.0.0/20", "192.168.16.0/20"]
    assert pools[-1] == "192.168.240.0/20"
    assert len(pools) == 14 + 16


def test_plan_subnets_all_default_pools_taken():
    with pytest.raises(Conflict) as ei:
        _plan(other=["172.16.0.0/12", "192.168.0.0/16"])
    assert "--subnet" in str(ei.value)


def test_plan_subnets_default_v4_avoids_the_requested_v6_only_and_other_subnets():
    plan = _plan(subnets=["fd00::/64"], other=["172.18.0.0/16"])
    assert [str(c.subnet) for c in plan.subnets] == ["172.19.0.0/16", "fd00::/64"]
    assert plan.enable_ipv6


def test_ula_prefix_is_a_deterministic_ula_48():
    p = ipam.ula_prefix("host-a")
    assert p.prefixlen == 48
    assert str(p).startswith("fd")
    assert p.subnet_of(N("fd00::/8"))
    assert ipam.ula_prefix("host-a") == p
    assert ipam.ula_prefix("host-b") != p
    assert int(p.network_address) & ((1 << 80) - 1) == 0  # a /48: nothing below the global id


@given(seed=st.text(max_size=40))
@settings(max_examples=100, deadline=None)
def test_ula_prefix_property(seed):
    p = ipam.ula_prefix(seed)
    assert p.prefixlen == 48 and str(p).startswith("fd") and p == ipam.ula_prefix(seed)


def test_plan_subnets_ipv6_flag_takes_a_64_from_the_ula():
    ula = ipam.ula_prefix("seed-1")
    plan = _plan(ipv6=True, ula48=ula)
    assert plan.enable_ipv6
    assert [c.version for c in plan.subnets] == [4, 6]
    assert str(plan.subnets[0].subnet) == "172.18.0.0/16"
    v6 = plan.subnets[1].subnet
    assert v6.prefixlen == 64 and v6.subnet_of(ula)
    assert v6 == next(ula.subnets(new_prefix=64))
    assert plan.subnets[1].gateway == v6.network_address + 1


def test_plan_subnets_ipv6_flag_skips_used_64s():
    ula = ipam.ula_prefix("seed-1")
    first, second, third = list(ula.subnets(new_prefix=64))[:3]
    plan = _plan(ipv6=True, ula48=ula, other=[str(first), str(second)])
    assert plan.subnets[1].subnet == third


def test_plan_subnets_ipv6_flag_with_v4_subnet():
    ula = ipam.ula_prefix("seed-2")
    plan = _plan(ipv6=True, ula48=ula, subnets=["10.5.0.0/24"], l3=True)
    assert [str(c.subnet) for c in plan.subnets] == ["10.5.0.0/24", str(next(ula.subnets(new_prefix=64)))]
    assert all(c.gateway is None for c in plan.subnets)


def test_plan_subnets_ipv6_flag_with_explicit_v6_subnet_uses_it():
    plan = _plan(ipv6=True, ula48=ipam.ula_prefix("x"), subnets=["10.5.0.0/24", "fd99::/64"])
    assert [str(c.subnet) for c in plan.subnets] == ["10.5.0.0/24", "fd99::/64"]


def test_plan_subnets_ipv6_flag_without_ula_is_an_error():
    with pytest.raises(InvalidArgument) as ei:
        _plan(ipv6=True)
    assert "--ipv6" in str(ei.value)


def test_plan_subnets_enable_ipv6():
    assert not _plan(subnets=["10.0.0.0/24"]).enable_ipv6
    assert _plan(subnets=["10.0.0.0/24", "fd00::/64"]).enable_ipv6


def test_pick_default_v6_exhausted():
    ula = ipam.ula_prefix("z")
    with pytest.raises(Conflict):
        ipam.pick_default_v6(ula, [ula])


def test_first_host():
    assert ipam.first_host(N("10.0.0.0/24")) == A("10.0.0.1")
    assert ipam.first_host(N("fd00::/64")) == A("fd00::1")
    assert ipam.first_host(N("10.0.0.4/31")) == A("10.0.0.4")


def test_overlaps_is_family_aware():
    assert ipam.overlaps(N("10.0.0.0/8"), N("10.1.0.0/16"))
    assert not ipam.overlaps(N("10.0.0.0/8"), N("11.0.0.0/8"))
    assert not ipam.overlaps(N("0.0.0.0/0"), N("::/0"))
