"""The declarative file: parsing, validation and the diff against the store."""

from __future__ import annotations

import ipaddress

import pytest

from ipvnet.apply import diff, parse_spec
from ipvnet.errors import Conflict, InvalidArgument
from ipvnet.model import Endpoint, Network, SubnetConfig

FILE = """
[networks.vlan20]
subnets = ["192.168.20.0/24"]
options = { parent = "eth0.20" }

[networks.vlan20.namespaces.ns1]
ip = "192.168.20.10"
aliases = ["web"]

[networks.vlan20.namespaces.ns2]

[networks.iso]
subnets = ["10.9.0.0/24"]
"""


def net(name: str, subnet: str, eps: dict[str, str] | None = None, parent: str = "eth0.20") -> Network:
    n = Network(name=name, id="a" * 64, created="", driver="ipvlan", parent=parent, parent_kind="vlan",
                subnets=(SubnetConfig(ipaddress.ip_network(subnet), ipaddress.ip_network(subnet)[1]),),
                options={"parent": parent, "ipvlan_mode": "l2", "ipvlan_flag": "bridge"})
    for i, (ns, ip) in enumerate((eps or {}).items()):
        n = n.with_endpoint(Endpoint(ns, "eth0", "e" * 64, i, ipaddress.IPv4Interface(f"{ip}/24")))
    return n


def test_parse_spec():
    specs = parse_spec(FILE, "f.toml")
    assert [s.name for s in specs] == ["vlan20", "iso"]
    ns1 = specs[0].namespaces[0]
    assert (ns1.ns, ns1.ip, ns1.aliases) == ("ns1", "192.168.20.10", ("web",))
    assert specs[0].namespaces[1].ip is None


@pytest.mark.parametrize("bad,text", [
    ("[networks.x]\nsubnet = ['10.0.0.0/24']\n", "unknown key 'subnet'"),
    ("[networks.x]\noptions = { bogus = '1' }\n", "unknown option"),
    ("[networks.'../x']\n", "invalid network name"),
    ("[networks.x.namespaces.'a/b']\n", "invalid namespace name"),
    ("[networks.x.namespaces.a]\nip = 5\n", "wrong type"),
    ("[other]\n", "unknown top-level key"),
    ("[networks.x\n", "not valid TOML"),
])
def test_parse_errors_name_the_problem(bad, text):
    with pytest.raises(InvalidArgument) as e:
        parse_spec(bad, "f.toml")
    assert text in str(e.value)


def test_diff_from_empty_creates_then_attaches_in_file_order():
    acts = [a.describe() for a in diff(parse_spec(FILE, "f"), {}, prune=False)]
    assert acts == ["+ network vlan20", "+ attach ns1 vlan20", "+ attach ns2 vlan20", "+ network iso"]


def test_diff_is_empty_when_matching():
    nets = {"vlan20": net("vlan20", "192.168.20.0/24", {"ns1": "192.168.20.10", "ns2": "192.168.20.2"}),
            "iso": net("iso", "10.9.0.0/24", parent="di-aaaaaaaaaaaa")}
    nets["vlan20"] = nets["vlan20"].with_endpoint(
        Endpoint("ns1", "eth0", "e" * 64, 0, ipaddress.IPv4Interface("192.168.20.10/24"), aliases=("web",)))
    iso = nets["iso"]
    opts = dict(iso.options)
    opts.pop("parent")
    from ipvnet.record import replace
    nets["iso"] = replace(iso, options=opts)
    assert diff(parse_spec(FILE, "f"), nets, prune=False) == []


def test_diff_reattaches_changed_and_prunes_unlisted():
    nets = {"vlan20": net("vlan20", "192.168.20.0/24", {"ns1": "192.168.20.11", "old": "192.168.20.3"}),
            "stale": net("stale", "10.1.0.0/24", parent="eth0")}
    acts = [a.describe() for a in diff(parse_spec(FILE, "f"), nets, prune=True)]
    assert acts == [
        "- detach ns1 vlan20  (changed)",
        "- detach old vlan20  (not in the file)",
        "- network stale  (not in the file)",
        "+ attach ns1 vlan20  (changed)",
        "+ attach ns2 vlan20",
        "+ network iso",
    ]
    assert "old" not in [a.ns for a in diff(parse_spec(FILE, "f"), nets, prune=False) if a.kind == "detach"]


def test_diff_refuses_a_different_network():
    nets = {"vlan20": net("vlan20", "192.168.21.0/24")}
    with pytest.raises(Conflict) as e:
        diff(parse_spec(FILE, "f"), nets, prune=False)
    assert "differs" in str(e.value)


def test_cluster_networks_in_a_file():
    from ipvnet.apply import diff, parse_spec

    [f] = parse_spec('[networks.web]\ncluster = "prod"\noptions = { parent = "eth0", ipvlan_mode = "l3" }\n'
                     '[networks.web.namespaces.a]\n', "site.toml")
    assert f.spec.cluster == "prod" and f.spec.validated().cluster == "prod"
    from tests.unit.factories import network

    net = network("web", [], mode="l3")
    net = type(net)(**{**{k: getattr(net, k) for k in ("name", "id", "created", "driver", "parent", "parent_kind",
                                                       "subnets", "options", "labels")}, "cluster": "prod"})
    assert [a.describe() for a in diff([f], {"web": net}, prune=False)] == ["+ attach a web"]
    other = type(net)(**{**{k: getattr(net, k) for k in ("name", "id", "created", "driver", "parent",
                                                         "parent_kind", "subnets", "options", "labels")}})
    import pytest

    from ipvnet.errors import Conflict

    with pytest.raises(Conflict) as ei:
        diff([f], {"web": other}, prune=False)
    assert "cluster (none), file says prod" in str(ei.value)
