"""plan.py: ordered operations with undos, route ownership and parent links."""

from __future__ import annotations

import pytest

from ipvnet import record as dataclasses
from ipvnet.model import PARENT_DUMMY, PARENT_EXISTING, PARENT_VLAN
from ipvnet.ops import AddrDel, LinkAdd, LinkDel, LinkSet, NetnsDel, Op, RouteDel, Sysctl, op_from_dict
from ipvnet.plan import (
    Route,
    next_ifname,
    parent_still_used,
    plan_attach,
    plan_create_parent,
    plan_detach,
    plan_remove_parent,
    plan_route_handover,
    route_of,
    route_owner,
)
from tests.unit.factories import endpoint, network, subnet


def args(op: Op) -> dict:
    """The operation's arguments as the journal stores them (only those set)."""
    return op.to_dict()["args"]


def l2_net(name="l2net", **kw):
    return network(name, [subnet("10.0.0.0/24", "10.0.0.1"), subnet("fd00::/64", "fd00::1")], **kw)


def l3_net(name="l3net", mode="l3", **kw):
    return network(name, [subnet("10.3.0.0/24"), subnet("fd03::/64")], mode=mode, **kw)


def steps(ops):
    return [(op.action, op.ns) for op in ops]


# --- plan_attach -----------------------------------------------------------------


def test_plan_attach_l2_dual_stack_order_and_args():
    net = l2_net()
    ep = endpoint("ns1", "10.0.0.2/24", "fd00::2/64")
    ops = plan_attach(net, ep, "ipv-tmp1", [], create_ns=False)
    assert steps(ops) == [
        ("link_add", None),
        ("link_set", "ns1"),
        ("sysctl", "ns1"),
        ("sysctl", "ns1"),
        ("sysctl", "ns1"),
        ("addr_add", "ns1"),
        ("link_set", "ns1"),
        ("link_set", "ns1"),
        ("addr_add", "ns1"),
        ("route_add", "ns1"),
        ("route_add", "ns1"),
    ]
    assert [args(op) for op in ops if op.action == "sysctl"] == [
        {"key": "ipv6/conf/eth0/disable_ipv6", "value": "0"},
        {"key": "ipv6/conf/eth0/ndisc_notify", "value": "1"},
        {"key": "ipv4/conf/eth0/arp_notify", "value": "1"},
    ]
    assert [op.describe() for op in ops if op.action != "sysctl"] == [
        "ip link add ipv-tmp1 link eth0 netns ns1 type ipvlan mode l2 bridge",
        "ip -n ns1 link set ipv-tmp1 name eth0",
        "ip -n ns1 addr add 10.0.0.2/24 dev eth0",
        "ip -n ns1 link set lo up",
        "ip -n ns1 link set eth0 up",
        "ip -n ns1 addr add fd00::2/64 dev eth0 nodad",
        "ip -n ns1 route add default via 10.0.0.1 dev eth0",
        "ip -6 -n ns1 route add default via fd00::1 dev eth0",
    ]
    link_add = ops[0]
    # the link is born in the target namespace, under its temporary name, from the host side
    assert link_add.action == "link_add" and link_add.ns is None
    assert args(link_add) == {
        "name": "ipv-tmp1",
        "link": "eth0",
        "target_ns": "ns1",
        "kind": "ipvlan",
        "mode": "l2",
        "flag": "bridge",
    }
    assert args(ops[5]) == {"ifname": "eth0", "address": "10.0.0.2/24", "nodad": False}
    assert args(ops[8]) == {"ifname": "eth0", "address": "fd00::2/64", "nodad": True}
    assert all(op.ns == "ns1" for op in ops[1:])
    assert all(op.what for op in ops)


def test_plan_attach_undos():
    net = l2_net()
    ep = endpoint("ns1", "10.0.0.2/24", "fd00::2/64")
    ops = plan_attach(net, ep, "ipv-tmp1", [], create_ns=True)
    by = {op.describe(): op.undo() for op in ops}
    assert ops[0].action == "netns_add" and args(ops[0]) == {"name": "ns1"}
    assert ops[0].undo() == NetnsDel(None, "ns1")
    # link_add is undone by deleting the temporary link inside NS
    link_add = ops[1]
    assert link_add.undo().action == "link_del" and link_add.undo().ns == "ns1"
    assert args(link_add.undo()) == {"name": "ipv-tmp1"}
    # rename is undone by deleting the renamed link
    rename = ops[2]
    assert args(rename) == {"name": "ipv-tmp1", "new_name": "eth0"}
    assert rename.undo().describe() == "ip -n ns1 link del eth0"
    for op in ops:
        if op.action == "addr_add":
            assert op.undo().action == "addr_del" and op.undo().ns == "ns1"
            assert args(op.undo()) == {k: v for k, v in args(op).items() if k != "nodad"}
        if op.action == "route_add":
            assert op.undo().action == "route_del" and op.undo().ns == "ns1" and args(op.undo()) == args(op)
        if op.action == "sysctl" or (op.action == "link_set" and "up" in args(op)):
            assert op.undo() is None  # nothing to undo: the link's deletion takes it along
    assert by["ip -n ns1 addr add fd00::2/64 dev eth0 nodad"].describe() == "ip -n ns1 addr del fd00::2/64 dev eth0"
    assert by["ip -n ns1 route add default via 10.0.0.1 dev eth0"].describe() == (
        "ip -n ns1 route del default via 10.0.0.1 dev eth0"
    )
    # every op but the fire-and-forget ones can be undone, newest first
    undone = [op.undo().action for op in reversed(ops) if op.undo()]
    assert undone == ["route_del", "route_del", "addr_del", "addr_del", "link_del", "link_del", "netns_del"]


def test_plan_attach_create_ns_comes_first():
    ops = plan_attach(l2_net(), endpoint("ns1", "10.0.0.2/24"), "t", [], create_ns=True)
    assert steps(ops)[:2] == [("netns_add", None), ("link_add", None)]
    assert ops[0].describe() == "ip netns add ns1"
    assert ops[0].undo().describe() == "ip netns del ns1"
    assert "netns_add" not in [op.action for op in plan_attach(l2_net(), endpoint("ns1"), "t", [], False)]


def test_plan_attach_v4_only_disables_ipv6_and_has_no_v6_route():
    ops = plan_attach(l2_net(), endpoint("ns1", "10.0.0.2/24"), "t", [], create_ns=False)
    sysctls = [(args(op)["key"], args(op)["value"]) for op in ops if op.action == "sysctl"]
    assert sysctls == [("ipv6/conf/eth0/disable_ipv6", "1"), ("ipv4/conf/eth0/arp_notify", "1")]
    routes = [args(op) for op in ops if op.action == "route_add"]
    assert routes == [{"family": 4, "ifname": "eth0", "gateway": "10.0.0.1"}]
    assert [args(op)["address"] for op in ops if op.action == "addr_add"] == ["10.0.0.2/24"]


def test_plan_attach_v6_only_has_no_arp_notify():
    ops = plan_attach(l2_net(), endpoint("ns1", ipv6="fd00::2/64"), "t", [], create_ns=False)
    sysctls = [(args(op)["key"], args(op)["value"]) for op in ops if op.action == "sysctl"]
    assert sysctls == [("ipv6/conf/eth0/disable_ipv6", "0"), ("ipv6/conf/eth0/ndisc_notify", "1")]
    assert [args(op) for op in ops if op.action == "route_add"] == [
        {"family": 6, "ifname": "eth0", "gateway": "fd00::1"}
    ]


def test_plan_attach_without_ipv6_skips_ipv6_sysctls():
    ops = plan_attach(l2_net(), endpoint("ns1", "10.0.0.2/24"), "t", [], create_ns=False, ipv6_available=False)
    assert [args(op)["key"] for op in ops if op.action == "sysctl"] == ["ipv4/conf/eth0/arp_notify"]


def test_plan_attach_l3_routes_have_no_gateway():
    for mode in ("l3", "l3s"):
        net = l3_net(mode=mode)
        ops = plan_attach(net, endpoint("ns1", "10.3.0.2/24", "fd03::2/64"), "t", [], create_ns=False)
        assert args(ops[0])["mode"] == mode
        routes = [op.describe() for op in ops if op.action == "route_add"]
        assert routes == ["ip -n ns1 route add default dev eth0", "ip -6 -n ns1 route add default dev eth0"]


def test_plan_attach_internal_l2_network_gets_no_route():
    ops = plan_attach(l2_net(internal=True), endpoint("ns1", "10.0.0.2/24", "fd00::2/64"), "t", [], create_ns=False)
    assert not [op for op in ops if op.action.startswith("route_")]
    assert ops[-1].describe() == "ip -n ns1 addr add fd00::2/64 dev eth0 nodad"


def test_plan_attach_internal_l3_routes_only_to_the_networks_other_subnets():
    """The guide's no-parent L3 example: two subnets reach each other, nothing else (no default)."""
    net = network("l3i", [subnet("192.168.214.0/24"), subnet("10.1.214.0/24"), subnet("fd03::/64"),
                          subnet("fd04::/64")], mode="l3s", internal=True)
    ops = plan_attach(net, endpoint("ns1", "192.168.214.2/24"), "t", [], create_ns=False)
    routes = [op for op in ops if op.action.startswith("route_")]
    assert [op.describe() for op in routes] == ["ip -n ns1 route add 10.1.214.0/24 dev eth0"]
    assert routes[0].undo().describe() == "ip -n ns1 route del 10.1.214.0/24 dev eth0"
    ops = plan_attach(net, endpoint("ns2", "10.1.214.3/24", "fd04::3/64"), "t", [], create_ns=False)
    assert [op.describe() for op in ops if op.action == "route_add"] == [
        "ip -n ns2 route add 192.168.214.0/24 dev eth0",
        "ip -6 -n ns2 route add fd03::/64 dev eth0",
    ]


def test_plan_attach_internal_l3_skips_subnets_another_attachment_already_routes():
    a = network("a", [subnet("10.1.0.0/24"), subnet("10.2.0.0/24")], mode="l3", internal=True, parent="di-a")
    b = network("b", [subnet("10.2.0.0/24"), subnet("10.3.0.0/24")], mode="l3", internal=True, parent="di-b")
    first = endpoint("ns1", "10.1.0.2/24")
    second = endpoint("ns1", "10.3.0.2/24", ifname="eth1", seq=2)
    ops = plan_attach(b, second, "t", [(a, first)], create_ns=False)
    assert [op.describe() for op in ops if op.action == "route_add"] == []  # 10.2.0.0/24 already dev eth0


def test_plan_attach_non_internal_l3_has_default_route_and_no_subnet_routes():
    net = network("l3", [subnet("10.1.0.0/24"), subnet("10.2.0.0/24")], mode="l3")
    ops = plan_attach(net, endpoint("ns1", "10.1.0.2/24"), "t", [], create_ns=False)
    assert [op.describe() for op in ops if op.action == "route_add"] == ["ip -n ns1 route add default dev eth0"]


def test_plan_attach_subnet_without_gateway_gets_no_route_in_l2():
    net = network("nogw", [subnet("10.0.0.0/24")])
    ops = plan_attach(net, endpoint("ns1", "10.0.0.2/24"), "t", [], create_ns=False)
    assert not [op for op in ops if op.action == "route_add"]


def test_plan_attach_macvlan_with_mac_and_mtu():
    net = network("mac", [subnet("10.0.0.0/24", "10.0.0.1")], driver="macvlan", mode="vepa", mtu=1400)
    ep = endpoint("ns1", "10.0.0.2/24", mac="02:00:00:00:00:01")
    ops = plan_attach(net, ep, "t", [], create_ns=False)
    assert args(ops[0]) == {
        "name": "t",
        "link": "eth0",
        "target_ns": "ns1",
        "kind": "macvlan",
        "mode": "vepa",
        "address": "02:00:00:00:00:01",
        "mtu": 1400,
    }
    assert (
        ops[0].describe()
        == "ip link add t link eth0 netns ns1 mtu 1400 address 02:00:00:00:00:01 type macvlan mode vepa"
    )


def test_plan_attach_ipvlan_private_flag_and_custom_ifname():
    net = network("p", [subnet("10.0.0.0/24", "10.0.0.1")], parent="eth0.20")
    net = dataclasses.replace(net, options={**net.options, "ipvlan_flag": "private"})
    ops = plan_attach(net, endpoint("ns1", "10.0.0.2/24", ifname="lan0"), "t", [], create_ns=False)
    assert ops[0].describe() == "ip link add t link eth0.20 netns ns1 type ipvlan mode l2 private"
    assert ops[1].describe() == "ip -n ns1 link set t name lan0"
    assert ops[-1].describe() == "ip -n ns1 route add default via 10.0.0.1 dev lan0"


def test_plan_attach_second_network_lower_priority_keeps_route():
    a = l2_net("a")
    ea = endpoint("ns1", "10.0.0.2/24", seq=1)
    b = network("b", [subnet("10.9.0.0/24", "10.9.0.1")])
    eb = endpoint("ns1", "10.9.0.2/24", ifname="eth1", seq=2)
    ops = plan_attach(b, eb, "t", [(a, ea)], create_ns=False)
    assert not [op for op in ops if op.action.startswith("route_")]


def test_plan_attach_second_network_higher_priority_takes_route():
    a = l2_net("a")
    ea = endpoint("ns1", "10.0.0.2/24", seq=1)
    b = network("b", [subnet("10.9.0.0/24", "10.9.0.1")])
    eb = endpoint("ns1", "10.9.0.2/24", ifname="eth1", seq=2, gw_priority=10)
    ops = plan_attach(b, eb, "t", [(a, ea)], create_ns=False)
    routes = [op for op in ops if op.action.startswith("route_")]
    assert [op.describe() for op in routes] == [
        "ip -n ns1 route del default via 10.0.0.1 dev eth0",
        "ip -n ns1 route add default via 10.9.0.1 dev eth1",
    ]
    # the route move is reversible: deleting the old route is undone by adding it back
    assert routes[0].undo().describe() == "ip -n ns1 route add default via 10.0.0.1 dev eth0"
    assert ops.index(routes[0]) > [op.action for op in ops].index("link_set")


# --- route ownership --------------------------------------------------------------


def test_route_of():
    net = l2_net()
    ep = endpoint("ns1", "10.0.0.2/24", "fd00::2/64")
    assert route_of(net, ep, 4) == Route(4, "eth0", "10.0.0.1")
    assert route_of(net, ep, 6) == Route(6, "eth0", "fd00::1")
    assert route_of(net, endpoint("ns1", "10.0.0.2/24"), 6) is None
    assert route_of(l3_net(), endpoint("ns1", "10.3.0.2/24"), 4) == Route(4, "eth0", None)
    assert route_of(l3_net(), endpoint("ns1", "10.3.0.2/24"), 6) is None
    assert route_of(l2_net(internal=True), ep, 4) is None
    mac = network("m", [subnet("10.0.0.0/24", "10.0.0.1")], driver="macvlan")
    assert route_of(mac, endpoint("ns1", "10.0.0.2/24"), 4) == Route(4, "eth0", "10.0.0.1")
    assert Route(4, "eth0", None).add("ns").describe() == "ip -n ns route add default dev eth0"


def _att(name, prio, seq, internal=False, ifname=None, v6=False):
    net = network(name, [subnet(f"10.{seq}.0.0/24", f"10.{seq}.0.1")], internal=internal)
    ep = endpoint("ns", f"10.{seq}.0.2/24", ifname=ifname or f"eth{seq}", seq=seq, gw_priority=prio)
    return net, ep


@pytest.mark.parametrize(
    ("spec", "winner"),
    [
        ([("a", 0, 1), ("b", 0, 2)], "a"),  # tie: earliest attached
        ([("b", 0, 2), ("a", 0, 1)], "a"),  # order of the list does not matter
        ([("a", 0, 1), ("b", 5, 2)], "b"),  # highest priority
        ([("a", -1, 1), ("b", 0, 2)], "b"),
        ([("a", 3, 5), ("b", 3, 4), ("c", 1, 1)], "b"),
        ([("a", 9, 1, True), ("b", 0, 2)], "b"),  # internal networks own no route
        ([("a", 9, 1, True)], None),
        ([], None),
    ],
)
def test_route_owner(spec, winner):
    atts = [_att(*s) for s in spec]
    owner = route_owner(atts, 4)
    assert (owner[0].name if owner else None) == winner
    assert route_owner(atts, 6) is None  # nobody has a v6 address


# --- handover on detach --------------------------------------------------------


def test_plan_detach_hands_route_to_next_owner_without_deleting_gone_link_routes():
    a, ea = _att("a", 5, 1)
    b, eb = _att("b", 0, 2)
    c, ec = _att("c", 1, 3)
    existing = [(a, ea), (b, eb), (c, ec)]
    ops = plan_detach(a, ea, existing, ns_exists=True, link_exists=True)
    assert [op.describe() for op in ops] == [
        "ip -n ns link del eth1",
        "ip -n ns route add default via 10.3.0.1 dev eth3",  # c: priority 1 beats b's 0
    ]
    assert ops[1].undo().action == "route_del"


def test_plan_detach_of_non_owner_touches_no_route():
    a, ea = _att("a", 5, 1)
    b, eb = _att("b", 0, 2)
    ops = plan_detach(b, eb, [(a, ea), (b, eb)], ns_exists=True, link_exists=True)
    assert [op.describe() for op in ops] == ["ip -n ns link del eth2"]


def test_plan_detach_last_attachment():
    a, ea = _att("a", 0, 1)
    assert [op.describe() for op in plan_detach(a, ea, [(a, ea)], True, True)] == ["ip -n ns link del eth1"]


def test_plan_detach_link_already_gone_still_hands_over():
    a, ea = _att("a", 0, 1)
    b, eb = _att("b", 0, 2)
    ops = plan_detach(a, ea, [(a, ea), (b, eb)], ns_exists=True, link_exists=False)
    assert [op.describe() for op in ops] == ["ip -n ns route add default via 10.2.0.1 dev eth2"]


def test_plan_detach_namespace_gone_is_nothing_to_do():
    a, ea = _att("a", 0, 1)
    assert plan_detach(a, ea, [(a, ea)], ns_exists=False, link_exists=False) == []


def test_plan_route_handover_dual_stack_and_l3():
    a = l2_net("a")
    ea = endpoint("ns", "10.0.0.2/24", "fd00::2/64", ifname="eth0", seq=1)
    b = l3_net("b")
    eb = endpoint("ns", "10.3.0.2/24", "fd03::2/64", ifname="eth1", seq=2)
    ops = plan_route_handover("ns", [(a, ea), (b, eb)], [(b, eb)], gone="eth0")
    assert [op.describe() for op in ops] == [
        "ip -n ns route add default dev eth1",
        "ip -6 -n ns route add default dev eth1",
    ]
    # when the old owner's link stays (not `gone`), its route is deleted explicitly
    ops = plan_route_handover("ns", [(a, ea), (b, eb)], [(b, eb)])
    assert [op.describe() for op in ops] == [
        "ip -n ns route del default via 10.0.0.1 dev eth0",
        "ip -n ns route add default dev eth1",
        "ip -6 -n ns route del default via fd00::1 dev eth0",
        "ip -6 -n ns route add default dev eth1",
    ]


def test_plan_route_handover_no_change():
    a, ea = _att("a", 0, 1)
    assert plan_route_handover("ns", [(a, ea)], [(a, ea)]) == []
    assert plan_route_handover("ns", [], []) == []


# --- parents ------------------------------------------------------------------------


def test_plan_create_parent_vlan():
    net = network("v", parent="eth0.20", parent_kind=PARENT_VLAN)
    ops = plan_create_parent(net, parent_exists=False)
    assert [op.describe() for op in ops] == ["ip link add eth0.20 link eth0 type vlan id 20", "ip link set eth0.20 up"]
    assert args(ops[0]) == {"name": "eth0.20", "kind": "vlan", "link": "eth0", "vlan_id": 20}
    assert ops[0].undo() == LinkDel(None, "eth0.20")
    assert all(op.ns is None for op in ops)
    assert plan_create_parent(net, parent_exists=True) == []


def test_plan_create_parent_dummy():
    net = network("d", parent="di-0123456789ab", parent_kind=PARENT_DUMMY, mtu=9000)
    ops = plan_create_parent(net, parent_exists=False)
    assert [op.describe() for op in ops] == [
        "ip link add di-0123456789ab mtu 9000 type dummy",
        "ip link set di-0123456789ab up",
    ]
    assert ops[0].undo().describe() == "ip link del di-0123456789ab"
    net = network("d", parent="dm-0123456789ab", parent_kind=PARENT_DUMMY, driver="macvlan")
    assert args(plan_create_parent(net, False)[0]) == {"name": "dm-0123456789ab", "kind": "dummy"}
    assert plan_create_parent(net, parent_exists=True) == []


def test_plan_create_parent_existing_is_never_created():
    assert plan_create_parent(network("e", parent="eth0.20", parent_kind=PARENT_EXISTING), False) == []
    assert plan_create_parent(network("e", parent="eth0", parent_kind=PARENT_EXISTING), False) == []


def test_plan_remove_parent():
    v = network("v", parent="eth0.20", parent_kind=PARENT_VLAN)
    ops = plan_remove_parent(v, [v], parent_exists=True)
    assert [op.describe() for op in ops] == ["ip link del eth0.20"]
    d = network("d", parent="di-0123456789ab", parent_kind=PARENT_DUMMY)
    assert [op.describe() for op in plan_remove_parent(d, [], True)] == ["ip link del di-0123456789ab"]
    assert plan_remove_parent(v, [], parent_exists=False) == []


def test_plan_remove_parent_keeps_a_parent_still_in_use():
    v = network("v", parent="eth0.20", parent_kind=PARENT_VLAN)
    w = network("w", parent="eth0.20", parent_kind=PARENT_VLAN)
    other = network("o", parent="eth0.30", parent_kind=PARENT_VLAN)
    assert parent_still_used(v, [v, w])
    assert not parent_still_used(v, [v, other])
    assert plan_remove_parent(v, [v, w], parent_exists=True) == []
    assert plan_remove_parent(v, [v, other], parent_exists=True) != []
    # the other user may hold it as "existing": still in use
    x = network("x", parent="eth0.20", parent_kind=PARENT_EXISTING)
    assert plan_remove_parent(v, [x], parent_exists=True) == []


@pytest.mark.parametrize("parent", ["eth0", "eth0.20", "di-0123456789ab"])
def test_plan_remove_parent_never_removes_existing(parent):
    e = network("e", parent=parent, parent_kind=PARENT_EXISTING)
    assert plan_remove_parent(e, [], parent_exists=True) == []
    assert plan_remove_parent(e, [e], parent_exists=True) == []


# --- describe -----------------------------------------------------------------------


DESCRIBE = [
        (LinkAdd(None, "eth0.20", "vlan", link="eth0", vlan_id=20), "ip link add eth0.20 link eth0 type vlan id 20"),
        (LinkAdd(None, "d0", "dummy"), "ip link add d0 type dummy"),
        (LinkDel("ns1", "eth0"), "ip -n ns1 link del eth0"),
        (LinkDel(None, "eth0.20"), "ip link del eth0.20"),
        (LinkSet(None, "x", mtu=1400), "ip link set x mtu 1400"),
        (LinkSet("n", "x", up=False), "ip -n n link set x down"),
        (AddrDel("n", "eth0", "fd00::2/64"), "ip -n n addr del fd00::2/64 dev eth0"),
        (RouteDel("n", 6, "eth1", None), "ip -6 -n n route del default dev eth1"),
        (RouteDel(None, 4, None, None, "10.244.0.64/26", blackhole=True, proto=250),
         "ip route del blackhole 10.244.0.64/26 proto 250"),
        (NetnsDel(None, "ns1"), "ip netns del ns1"),
]


@pytest.mark.parametrize(("op", "text"), DESCRIBE)
def test_describe(op, text):
    assert op.describe() == text


def test_unknown_journal_action_is_an_error():
    with pytest.raises(ValueError):
        op_from_dict({"action": "frobnicate", "ns": "ns1", "args": {"x": 1}})


def test_every_op_round_trips_through_the_journal_shape():
    """What the journal stores (the previous release's shape) reads back as the same typed operation."""
    for op, _ in DESCRIBE:
        d = op.to_dict()
        assert set(d) >= {"action", "ns", "args", "what"}
        assert op_from_dict(d) == op
        if op.undo() is not None:
            assert op_from_dict(d["undo"]) == op.undo()


def test_describe_sysctl_is_a_working_command():
    op = Sysctl("ns1", "ipv6/conf/eth0/disable_ipv6", "1")
    assert op.describe() == "ip netns exec ns1 sysctl -w net/ipv6/conf/eth0/disable_ipv6=1"


# --- next_ifname ----------------------------------------------------------------------


def test_next_ifname():
    assert next_ifname(set()) == "eth0"
    assert next_ifname({"eth0"}) == "eth1"
    assert next_ifname({"eth0", "eth2"}) == "eth1"
    assert next_ifname({"eth1"}) == "eth0"
    assert next_ifname({"eth0", "eth1"}, "lan7") == "lan7"
