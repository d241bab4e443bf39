"""model.py: name validation, option parsing, subnets and (de)serialisation."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvnet.errors import InvalidArgument
from ipvnet.model import (
    IFNAMSIZ,
    MAX_NAME,
    PARENT_DUMMY,
    PARENT_EXISTING,
    PARENT_VLAN,
    Endpoint,
    Network,
    ParentSpec,
    SubnetConfig,
    dummy_parent_name,
    normalize_options,
    parse_address,
    parse_key_values,
    parse_network,
    parse_parent,
    validate_ifname,
    validate_name,
)
from tests.unit.factories import endpoint, network, subnet

# --- names -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a", "ns1", "My-Net_2", "web.example", "0", "a" * MAX_NAME, "a.b.c", "x-", "x_"],
)
def test_validate_name_accepts(name):
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "/",
        "a/b",
        "../etc",
        "a/../b",
        "a..b",
        "a\x00b",
        "a\nb",
        "ns1\n",
        "-x",
        "_x",
        ".hidden",
        "trailingdot.",
        "a b",
        "a\tb",
        "a:b",
        "a*",
        "é",
        "a" * (MAX_NAME + 1),
    ],
)
def test_validate_name_rejects(name):
    with pytest.raises(InvalidArgument) as ei:
        validate_name(name, "namespace name")
    assert "namespace name" in str(ei.value)


def test_validate_name_custom_limit():
    assert validate_name("abcd", max_len=4) == "abcd"
    with pytest.raises(InvalidArgument):
        validate_name("abcde", max_len=4)


@pytest.mark.parametrize("name", ["eth0", "eth0.20", "veth-a_b", "a" * IFNAMSIZ, "br@x", "0"])
def test_validate_ifname_accepts(name):
    assert validate_ifname(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "a" * (IFNAMSIZ + 1), "a/b", "/", "..", ".", "a b", "a:b", "a\x00", "a\n", "-eth0", "eth\t0", "ethé"],
)
def test_validate_ifname_rejects(name):
    with pytest.raises(InvalidArgument):
        validate_ifname(name)


def test_validate_ifname_counts_bytes_not_characters():
    assert len("a" * 16) > IFNAMSIZ
    with pytest.raises(InvalidArgument) as ei:
        validate_ifname("x" * 16, "parent interface")
    assert "parent interface" in str(ei.value)


# --- parent ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("eth0", ParentSpec("eth0")),
        ("eth0.20", ParentSpec("eth0.20", "eth0", 20)),
        ("eth0.1", ParentSpec("eth0.1", "eth0", 1)),
        ("eth0.4094", ParentSpec("eth0.4094", "eth0", 4094)),
        ("bond0.100", ParentSpec("bond0.100", "bond0", 100)),
        ("eth0.20.30", ParentSpec("eth0.20.30", "eth0.20", 30)),  # QinQ: base is the outer vlan
        ("enp3s0", ParentSpec("enp3s0")),
        ("eth0.abc", ParentSpec("eth0.abc")),  # not IF.VID: an existing link with a dot
    ],
)
def test_parse_parent(value, expected):
    assert parse_parent(value) == expected


@pytest.mark.parametrize("value", ["eth0.0", "eth0.4095", "eth0.9999", "eth0.00000"])
def test_parse_parent_rejects_vlan_ids_out_of_range(value):
    with pytest.raises(InvalidArgument) as ei:
        parse_parent(value)
    assert "vlan id" in str(ei.value)


@pytest.mark.parametrize("value", ["lo", "lo.20"])
def test_parse_parent_rejects_lo(value):
    with pytest.raises(InvalidArgument) as ei:
        parse_parent(value)
    assert "lo" in str(ei.value)


@pytest.mark.parametrize("value", ["", "eth0/1", "averyveryverylong0", "eth 0", "-eth0"])
def test_parse_parent_rejects_bad_link_names(value):
    with pytest.raises(InvalidArgument):
        parse_parent(value)


# --- options ---------------------------------------------------------------


def test_normalize_options_ipvlan_defaults():
    assert normalize_options("ipvlan", {}) == {"ipvlan_mode": "l2", "ipvlan_flag": "bridge"}
    assert normalize_options("ipvlan", {"parent": "eth0.20"}) == {
        "parent": "eth0.20",
        "ipvlan_mode": "l2",
        "ipvlan_flag": "bridge",
    }


def test_normalize_options_macvlan_defaults():
    assert normalize_options("macvlan", {"parent": "eth0"}) == {"parent": "eth0", "macvlan_mode": "bridge"}


def test_normalize_options_keeps_given_values_and_lowercases():
    opts = normalize_options("ipvlan", {"ipvlan_mode": "L3S", "ipvlan_flag": "Private", "mtu": "1400"})
    assert opts == {"ipvlan_mode": "l3s", "ipvlan_flag": "private", "mtu": "1400"}
    assert normalize_options("macvlan", {"macvlan_mode": "passthru"})["macvlan_mode"] == "passthru"


def test_normalize_options_does_not_mutate_input():
    raw = {"parent": "eth0"}
    normalize_options("ipvlan", raw)
    assert raw == {"parent": "eth0"}


def test_normalize_options_canonicalises_mtu():
    assert normalize_options("ipvlan", {"mtu": "0068"})["mtu"] == "68"
    assert normalize_options("macvlan", {"mtu": "65535"})["mtu"] == "65535"


@pytest.mark.parametrize(
    ("driver", "raw", "needle"),
    [
        ("ipvlan", {"macvlan_mode": "bridge"}, "macvlan_mode"),
        ("macvlan", {"ipvlan_mode": "l2"}, "ipvlan_mode"),
        ("macvlan", {"ipvlan_flag": "bridge"}, "ipvlan_flag"),
        ("ipvlan", {"com.docker.network.bridge.name": "x"}, "com.docker.network.bridge.name"),
        ("ipvlan", {"Parent": "eth0"}, "Parent"),
    ],
)
def test_normalize_options_rejects_unknown_keys(driver, raw, needle):
    with pytest.raises(InvalidArgument) as ei:
        normalize_options(driver, raw)
    assert needle in str(ei.value)


@pytest.mark.parametrize(
    ("driver", "raw"),
    [
        ("ipvlan", {"ipvlan_mode": "l4"}),
        ("ipvlan", {"ipvlan_mode": ""}),
        ("ipvlan", {"ipvlan_flag": "passthru"}),
        ("macvlan", {"macvlan_mode": "l2"}),
        ("ipvlan", {"mtu": "67"}),
        ("ipvlan", {"mtu": "65536"}),
        ("ipvlan", {"mtu": "-1"}),
        ("ipvlan", {"mtu": "1500.0"}),
        ("macvlan", {"mtu": "abc"}),
        ("ipvlan", {"mtu": ""}),
        ("ipvlan", {"parent": "lo"}),
        ("ipvlan", {"parent": "eth0.4095"}),
        ("macvlan", {"parent": "eth0/1"}),
    ],
)
def test_normalize_options_rejects_bad_values(driver, raw):
    with pytest.raises(InvalidArgument):
        normalize_options(driver, raw)


def test_normalize_options_rejects_unknown_driver():
    with pytest.raises(InvalidArgument) as ei:
        normalize_options("bridge", {})
    assert "bridge" in str(ei.value)


# --- key=value, addresses, networks ----------------------------------------


def test_parse_key_values():
    assert parse_key_values(["a=1", "b=x=y", " c =", "d= spaced "], "label") == {
        "a": "1",
        "b": "x=y",
        "c": "",
        "d": " spaced ",
    }
    assert parse_key_values((), "label") == {}


@pytest.mark.parametrize("items", [["novalue"], ["=v"], ["a=1", "a=2"], ["a=x\ny"], ["a=\x00"], ["a\nb=1"]])
def test_parse_key_values_rejects(items):
    with pytest.raises(InvalidArgument):
        parse_key_values(items, "label")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("192.168.20.0/24", "192.168.20.0/24"),
        (" 192.168.20.0/24 ", "192.168.20.0/24"),
        ("10.1.2.3/32", "10.1.2.3/32"),
        ("fd00::/64", "fd00::/64"),
        ("fd00:0:0:1::/64", "fd00:0:0:1::/64"),
        ("2001:db8::/32", "2001:db8::/32"),
    ],
)
def test_parse_network_accepts(text, expected):
    assert parse_network(text) == ipaddress.ip_network(expected)


@pytest.mark.parametrize("text", ["10.0.0.1/24", "192.168.20.5/16", "fd00::1/64", "fd00::0:1/120", "10.0.0.128/24"])
def test_parse_network_rejects_host_bits(text):
    with pytest.raises(InvalidArgument) as ei:
        parse_network(text)
    assert "host bits" in str(ei.value)
    assert "did you mean" in str(ei.value)


@pytest.mark.parametrize("text", ["10.0.0.0", "fd00::", "10.0.0.0/33", "fd00::/129", "nonsense", "", "10.0.0/24/8"])
def test_parse_network_rejects_malformed(text):
    with pytest.raises(InvalidArgument):
        parse_network(text, "ip-range")


def test_parse_address():
    assert parse_address(" 10.0.0.1 ") == ipaddress.ip_address("10.0.0.1")
    assert parse_address("fd00::1") == ipaddress.ip_address("fd00::1")
    for bad in ("10.0.0.256", "10.0.0.1/24", "x", ""):
        with pytest.raises(InvalidArgument):
            parse_address(bad, "--ip")


# --- Network / Endpoint ----------------------------------------------------


def test_dummy_parent_name_is_15_bytes():
    nid = "0123456789abcdef" * 4
    assert dummy_parent_name("ipvlan", nid) == "di-0123456789ab"
    assert dummy_parent_name("macvlan", nid) == "dm-0123456789ab"
    assert len(dummy_parent_name("ipvlan", nid).encode()) == IFNAMSIZ
    validate_ifname(dummy_parent_name("macvlan", nid))


def test_network_properties():
    net = network(
        subnets=[subnet("10.0.0.0/24", "10.0.0.1"), subnet("fd00::/64", "fd00::1"), subnet("10.1.0.0/24")],
        mode="l3s",
        mtu=9000,
    )
    assert net.mode == "l3s"
    assert net.is_l3
    assert net.mtu == 9000
    assert [str(s.subnet) for s in net.subnets_of(4)] == ["10.0.0.0/24", "10.1.0.0/24"]
    assert [str(s.subnet) for s in net.subnets_of(6)] == ["fd00::/64"]
    assert net.subnet_for(ipaddress.ip_address("10.1.0.9")).subnet == ipaddress.ip_network("10.1.0.0/24")
    assert net.subnet_for(ipaddress.ip_address("fd00::9")).subnet == ipaddress.ip_network("fd00::/64")
    assert net.subnet_for(ipaddress.ip_address("10.2.0.1")) is None
    assert not network(mode="l2").is_l3
    assert network(mode="l3").is_l3
    assert network(driver="macvlan").mode == "bridge"
    assert not network(driver="macvlan").is_l3
    assert network().mtu is None


def test_with_and_without_endpoint_are_pure():
    net = network(subnets=[subnet("10.0.0.0/24", "10.0.0.1")])
    ep = endpoint("ns1", "10.0.0.2/24")
    net2 = net.with_endpoint(ep)
    assert net.endpoints == {}
    assert net2.endpoints == {"ns1": ep}
    net3 = net2.without_endpoint("ns1")
    assert net3.endpoints == {}
    assert net2.endpoints == {"ns1": ep}
    assert net3.without_endpoint("nope").endpoints == {}


def test_endpoint_addresses():
    assert endpoint("a").addresses() == []
    ep = endpoint("a", "10.0.0.2/24", "fd00::2/64")
    assert [str(a) for a in ep.addresses()] == ["10.0.0.2/24", "fd00::2/64"]
    assert [str(a) for a in endpoint("a", ipv6="fd00::2/64").addresses()] == ["fd00::2/64"]


def _full_network() -> Network:
    return network(
        "full",
        [
            subnet("10.0.0.0/24", "10.0.0.254", "10.0.0.128/25", {"router": "10.0.0.1", "printer": "10.0.0.2"}),
            subnet("fd00:1::/64", "fd00:1::1"),
        ],
        parent="eth0.20",
        parent_kind=PARENT_VLAN,
        internal=True,
        enable_ipv6=True,
        mtu=1400,
        labels={"team": "net", "com.example/x": "y=z"},
        endpoints=[
            endpoint("ns1", "10.0.0.129/24", "fd00:1::2/64", seq=3, aliases=("web", "www"), gw_priority=5),
            endpoint("ns2", "10.0.0.130/24", ifname="eth1", seq=7, created_ns=True, mac="02:00:00:00:00:01"),
            endpoint("ns3", ipv6="fd00:1::3/64", seq=9, gw_priority=-1),
        ],
    )


def test_network_round_trip():
    net = _full_network()
    d = net.to_dict()
    assert Network.from_dict("full", d) == net
    # the dict is plain data (TOML-able): strings, bools, ints, lists and dicts only
    assert d["subnets"][0] == {
        "subnet": "10.0.0.0/24",
        "gateway": "10.0.0.254",
        "ip_range": "10.0.0.128/25",
        "aux": {"router": "10.0.0.1", "printer": "10.0.0.2"},
    }
    assert d["subnets"][1] == {"subnet": "fd00:1::/64", "gateway": "fd00:1::1"}
    assert d["endpoints"]["ns1"]["ipv4"] == "10.0.0.129/24"
    assert d["endpoints"]["ns1"]["aliases"] == ["web", "www"]
    assert d["endpoints"]["ns2"]["created_ns"] is True
    assert "created_ns" not in d["endpoints"]["ns1"]


def test_network_round_trip_macvlan_dummy():
    net = network(
        "m",
        [subnet("172.18.0.0/16", "172.18.0.1")],
        driver="macvlan",
        mode="vepa",
        parent="dm-0123456789ab",
        parent_kind=PARENT_DUMMY,
        endpoints=[endpoint("a", "172.18.0.2/16", mac="02:42:ac:12:00:02")],
    )
    assert Network.from_dict("m", net.to_dict()) == net


def test_subnet_config_round_trip_minimal():
    cfg = subnet("fd00::/120")
    assert cfg.to_dict() == {"subnet": "fd00::/120"}
    assert SubnetConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.version == 6


def test_endpoint_round_trip():
    ep = endpoint(
        "ns1",
        "10.0.0.2/24",
        "fd00::2/64",
        ifname="eth3",
        seq=42,
        gw_priority=7,
        aliases=("a",),
        mac="02:00:00:00:00:09",
        created_ns=True,
    )
    assert Endpoint.from_dict("ns1", ep.to_dict()) == ep


def test_from_dict_of_older_network_gets_defaults():
    old = {"id": "ab" * 32, "subnets": [{"subnet": "192.168.1.0/24"}]}
    net = Network.from_dict("old", old)
    assert net.name == "old"
    assert net.driver == "ipvlan"
    assert net.options == {"ipvlan_mode": "l2", "ipvlan_flag": "bridge"}
    assert net.mode == "l2"
    assert net.parent_kind == PARENT_EXISTING
    assert net.parent == ""
    assert net.internal is False
    assert net.enable_ipv6 is False
    assert net.labels == {}
    assert net.endpoints == {}
    assert net.created == ""
    assert net.subnets == (subnet("192.168.1.0/24"),)


def test_from_dict_older_network_takes_parent_from_options():
    net = Network.from_dict("old", {"id": "x" * 64, "driver": "macvlan", "options": {"parent": "eth1"}})
    assert net.parent == "eth1"
    assert net.options == {"parent": "eth1", "macvlan_mode": "bridge"}


def test_from_dict_of_older_endpoint_gets_defaults():
    ep = Endpoint.from_dict("ns1", {"ipv4": "10.0.0.5/24"})
    assert ep == Endpoint(ns="ns1", ifname="eth0", endpoint_id="", seq=0, ipv4=ipaddress.IPv4Interface("10.0.0.5/24"))
    assert ep.aliases == ()
    assert ep.gw_priority == 0
    assert ep.created_ns is False
    assert ep.mac == ""
    assert ep.ipv6 is None


def test_from_dict_keeps_explicit_options_over_defaults():
    net = Network.from_dict("n", {"id": "x" * 64, "options": {"ipvlan_mode": "l3", "ipvlan_flag": "private"}})
    assert net.options == {"ipvlan_mode": "l3", "ipvlan_flag": "private"}
    assert net.is_l3


def test_from_dict_requires_id():
    with pytest.raises(KeyError):
        Network.from_dict("n", {"driver": "ipvlan"})


def test_stored_entries_stay_unparsed_and_their_highest_seq_is_an_integer():
    from ipvnet.model import Endpoints

    eps = Endpoints.from_raw({"a": {"ifname": "eth0", "seq": 3, "ipv4": "10.0.0.2/24"},
                              "b": {"ifname": "eth0", "seq": "7"}})  # "7": a hand edit
    assert eps.max_seq() == 7 and isinstance(eps.max_seq(), int)
    assert eps.with_(eps["a"]).max_seq() == 7  # parsed and unparsed entries alike
    assert Endpoints().max_seq() == 0
    with pytest.raises(ValueError):
        Endpoints.from_raw({"c": {"seq": "x"}})


def _walked_changes(old, new):
    """What Endpoints.changes must give, by comparing every entry (added in order)."""
    mine, theirs = old._items, new._items
    if any(mine[ns] is not theirs[ns] for ns in mine.keys() & theirs.keys()):
        return None, []
    return [ns for ns in theirs if ns not in mine], [ns for ns in mine if ns not in theirs]


@given(st.lists(st.tuples(st.sampled_from(["attach", "detach", "replace", "look"]), st.integers(0, 9)), max_size=12))
@settings(max_examples=150, deadline=None)
def test_derived_maps_know_their_changes_index_and_top_seq_without_walking(steps):
    """Maps made by with_/without from a loaded map (entries as dicts and as JSON
    text, as the store gives them) report the same changes as comparing every
    entry, and carry an address index and top seq equal to walking them (the
    top seq an upper bound once a member left)."""
    import json

    from ipvnet.model import Endpoints

    raw: dict[str, object] = {}
    for i in range(5):
        d = {"ifname": "eth0", "seq": i + 1, "ipv4": f"10.0.0.{i + 2}/24", "ipv6": f"fd00::{i + 2}/64"}
        raw[f"n{i}"] = json.dumps(d) if i % 2 else d
    root = Endpoints(raw)
    root.prime(Endpoints(root.to_dicts()).held(), 5)
    cur, seq, left = root, 5, False
    for op, i in steps:
        ns = f"n{i}"
        if op == "attach" and ns not in cur:
            seq += 1
            cur = cur.with_(endpoint(ns, f"10.0.1.{i + 2}/24", seq=seq))
        elif op == "detach":
            left = left or ns in cur
            cur = cur.without(ns)
        elif op == "replace" and ns in cur:
            cur = cur.with_(endpoint(ns, f"10.0.2.{i + 2}/24", seq=cur[ns].seq))
        elif op == "look" and ns in cur:
            assert cur[ns].ns == ns and cur.to_dict(ns)["ifname"] == "eth0"
        added, removed = root.changes(cur)
        want_added, want_removed = _walked_changes(root, cur)
        assert (added, sorted(removed)) == (want_added, sorted(want_removed))  # removals: any order
    walked = Endpoints(dict(cur.raw()))
    assert cur.held() == walked.held()
    assert cur.max_seq() >= walked.max_seq() and (left or cur.max_seq() == walked.max_seq())
    assert sorted(dict(cur.raw())) == sorted(cur)
