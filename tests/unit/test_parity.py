"""Docker parity in the pure core: gateways matched by containment, internal
networks without a gateway, /31 and /32, overlapping networks, --ipv4=false."""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvnet import ipam
from ipvnet.errors import Conflict, InvalidArgument
from ipvnet.ipam import SubnetRequest, assign, plan_subnets
from ipvnet.names import INTERNAL_RESOLV, ns_resolv_text
from tests.unit.factories import endpoint, network, subnet

A = ipaddress.ip_address


def _plan(subnets=(), gateways=(), ip_ranges=(), aux=(), *, l3=False, internal=False, ipv4=True, ipv6=False):
    return plan_subnets(SubnetRequest(tuple(subnets), tuple(gateways), tuple(ip_ranges), tuple(aux), ipv6, ipv4),
                        l3=l3, internal=internal)


# --- containment matching ---------------------------------------------------------


@st.composite
def subnet_layout(draw):
    """Distinct non-overlapping subnets of both families, each with an optional
    gateway, ip-range and aux address inside it."""
    n4 = draw(st.integers(0, 3))
    n6 = draw(st.integers(0 if n4 else 1, 3))
    v4 = [ipaddress.ip_network(f"10.{i}.0.0/24") for i in draw(st.lists(st.integers(0, 255), min_size=n4,
                                                                       max_size=n4, unique=True))]
    v6 = [ipaddress.ip_network(f"fd00:{i:x}::/64") for i in draw(st.lists(st.integers(1, 0xffff), min_size=n6,
                                                                         max_size=n6, unique=True))]
    out = []
    for net in v4 + v6:
        gw = net.network_address + draw(st.integers(1, 100)) if draw(st.booleans()) else None
        rng = ipaddress.ip_network((int(net.network_address) + 128, net.max_prefixlen - 7)) if draw(st.booleans()) \
            else None
        aux = net.network_address + draw(st.integers(101, 120)) if draw(st.booleans()) else None
        out.append((net, gw, rng, aux))
    return out


@settings(max_examples=200, deadline=None)
@given(subnet_layout(), st.randoms(use_true_random=False))
def test_gateways_ranges_and_aux_go_to_the_subnet_that_contains_them_in_any_order(layout, rnd):
    subnets = [str(n) for n, *_ in layout]
    gateways = [str(g) for _, g, _, _ in layout if g is not None]
    ranges = [str(r) for _, _, r, _ in layout if r is not None]
    aux = [f"h{i}={a}" for i, (_, _, _, a) in enumerate(layout) if a is not None]
    want = _plan(subnets, gateways, ranges, aux).subnets
    for lst in (subnets, gateways, ranges, aux):
        rnd.shuffle(lst)
    got = _plan(subnets, gateways, ranges, aux).subnets
    assert sorted(got, key=lambda c: str(c.subnet)) == sorted(want, key=lambda c: str(c.subnet))
    by = {c.subnet: c for c in got}
    for net, gw, rng, a in layout:
        cfg = by[net]
        assert cfg.gateway == (gw if gw is not None else ipam.first_host(net))
        assert cfg.ip_range == rng
        assert [x for _, x in cfg.aux] == ([a] if a is not None else [])


def test_issue_example_dual_stack_gateways_in_mixed_order():
    plan = _plan(["172.28.12.0/24", "172.28.10.0/24", "2001:db8:abc7::/64"],
                 ["172.28.12.254", "2001:db8:abc7::254"])
    assert [(str(c.subnet), str(c.gateway)) for c in plan.subnets] == [
        ("172.28.12.0/24", "172.28.12.254"),
        ("172.28.10.0/24", "172.28.10.1"),
        ("2001:db8:abc7::/64", "2001:db8:abc7::254"),
    ]
    assert plan.enable_ipv6


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"subnets": ["10.0.0.0/24"], "gateways": ["10.9.0.1"]}, "gateway 10.9.0.1 is not in any --subnet"),
        ({"subnets": ["10.0.0.0/24"], "gateways": ["10.0.0.1", "10.0.0.2"]}, "two gateways for subnet 10.0.0.0/24"),
        ({"subnets": ["10.0.0.0/24"], "ip_ranges": ["10.0.0.0/26", "10.0.0.64/26"]}, "two --ip-range"),
        ({"subnets": ["10.0.0.0/24"], "ip_ranges": ["10.0.1.0/26"]}, "not inside any --subnet"),
        ({"subnets": ["10.0.0.0/24", "fd00::/64"], "ip_ranges": ["fd01::/120"]}, "not inside any --subnet"),
    ],
)
def test_containment_errors(kw, needle):
    with pytest.raises(InvalidArgument) as ei:
        _plan(**kw)
    assert needle in str(ei.value)


# --- internal networks and tiny subnets -------------------------------------------


def test_internal_l2_reserves_no_gateway_unless_given():
    assert [c.gateway for c in _plan(["10.0.0.0/24"], internal=True).subnets] == [None]
    assert [str(c.gateway) for c in _plan(["10.0.0.0/24"], ["10.0.0.9"], internal=True).subnets] == ["10.0.0.9"]


@pytest.mark.parametrize(
    ("cidr", "kw", "expected"),
    [
        ("10.0.0.0/31", {"internal": True}, ["10.0.0.0/31", "10.0.0.1/31"]),
        ("10.0.0.0/31", {"l3": True}, ["10.0.0.0/31", "10.0.0.1/31"]),
        ("10.0.0.0/31", {}, ["10.0.0.1/31"]),  # L2 with a parent: gateway plus one
        ("10.0.0.7/32", {"internal": True}, ["10.0.0.7/32"]),
        ("10.0.0.7/32", {"l3": True}, ["10.0.0.7/32"]),
        ("fd00::/127", {"internal": True}, ["fd00::/127", "fd00::1/127"]),
        ("fd00::/127", {"l3": True}, ["fd00::/127", "fd00::1/127"]),
        ("fd00::/127", {}, ["fd00::1/127"]),
        ("fd00::9/128", {"l3": True}, ["fd00::9/128"]),
    ],
)
def test_tiny_subnets_use_every_address_where_no_gateway_is_reserved(cidr, kw, expected):
    cfgs = _plan([cidr, "10.200.0.0/24"] if ":" in cidr else [cidr], **kw).subnets
    net = network("tiny", cfgs)
    version = ipaddress.ip_network(cidr).version
    got = []
    for i in range(len(expected) + 1):
        try:
            v4, v6 = assign(net, f"ns{i}", None, None)
        except Conflict as e:
            assert "no free" in str(e)
            break
        addr = v4 if version == 4 else v6
        got.append(str(addr))
        net = net.with_endpoint(endpoint(f"ns{i}", str(v4) if v4 else None, str(v6) if v6 else None, seq=i + 1))
    assert got == expected


# --- overlapping networks -----------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_networks_on_one_parent_share_one_address_space(steps):
    """Random attaches and detaches on two overlapping networks of one parent
    never hand one address to two namespaces; networks on another parent
    allocate independently."""
    a = network("a", [subnet("10.0.0.0/24", "10.0.0.1")], parent="eth0.20")
    b = network("b", [subnet("10.0.0.0/25", "10.0.0.1", ip_range="10.0.0.0/26")], parent="eth0.20")
    nets = {"a": a, "b": b}
    rnd = random.Random(len(steps))
    for i, (on_a, attach) in enumerate(steps):
        name = "a" if on_a else "b"
        net, sib = nets[name], nets["b" if on_a else "a"]
        if attach or not net.endpoints:
            v4, _ = assign(net, f"n{i}", None, None, [sib])
            nets[name] = net.with_endpoint(endpoint(f"n{i}", str(v4), seq=i + 1))
        else:
            nets[name] = net.without_endpoint(rnd.choice(sorted(net.endpoints)))
        held = [ep.ipv4.ip for n in nets.values() for ep in n.endpoints.values()]
        assert len(held) == len(set(held))
        assert A("10.0.0.1") not in held
    other = network("c", [subnet("10.0.0.0/24", "10.0.0.1")], parent="eth0.30")
    assert str(assign(other, "x", None, None, [])[0]) == "10.0.0.2/24"


def test_static_address_held_on_a_sibling_network_is_refused_naming_the_holder():
    a = network("a", [subnet("10.0.0.0/24", "10.0.0.1")], endpoints=[endpoint("web", "10.0.0.5/24")])
    b = network("b", [subnet("10.0.0.0/24", "10.0.0.254")])
    with pytest.raises(Conflict) as ei:
        assign(b, "db", "10.0.0.5", None, [a])
    assert "10.0.0.5 is already in use by namespace web on network a" in str(ei.value)
    with pytest.raises(Conflict) as ei:
        assign(b, "db", "10.0.0.1", None, [a])  # a's gateway: a real router on that link
    assert "network a" in str(ei.value)
    assert str(assign(b, "db", None, None, [a])[0]) == "10.0.0.2/24"
    assert str(assign(b, "db", "10.0.0.5", None, [])[0]) == "10.0.0.5/24"  # another parent: independent


# --- --ipv4=false -------------------------------------------------------------------


def test_ipv4_false_makes_an_ipv6_only_network():
    plan = _plan(["fd00:1::/64"], ipv4=False)
    assert [str(c.subnet) for c in plan.subnets] == ["fd00:1::/64"]
    assert (plan.enable_ipv4, plan.enable_ipv6) == (False, True)
    net = network("v6", plan.subnets)
    v4, v6 = assign(net, "ns", None, None)
    assert v4 is None and str(v6) == "fd00:1::2/64"
    with pytest.raises(InvalidArgument) as ei:
        assign(net, "ns", "10.0.0.2", None)
    assert "no IPv4 subnet" in str(ei.value)


def test_default_keeps_a_v4_subnet_for_an_ipv6_network():
    plan = _plan(["fd00:1::/64"])
    assert [c.version for c in plan.subnets] == [4, 6] and plan.enable_ipv4


# --- resolv.conf ----------------------------------------------------------------------


def test_resolv_conf_for_internal_parent_and_mixed_namespaces():
    host = "search example.com\nnameserver 127.0.0.53\nnameserver 192.0.2.53\n"
    internal = network("i", [subnet("10.0.0.0/24")], internal=True)
    routed = network("r", [subnet("10.1.0.0/24", "10.1.0.1")])
    only_internal = ns_resolv_text([internal], host)
    assert only_internal == INTERNAL_RESOLV and "nameserver" not in only_internal.replace("name server", "")
    assert "nameserver 192.0.2.53" in ns_resolv_text([routed], host)
    mixed = ns_resolv_text([internal, routed], host)
    assert "nameserver 192.0.2.53" in mixed and "127.0.0.53" not in mixed
