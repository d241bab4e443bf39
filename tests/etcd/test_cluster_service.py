"""Cluster networks in the service layer: a real etcd (on 127.0.0.1) and the
recording fake engine. Pins the operations (blackhole routes), the claims in
etcd, rollback of a claim when the attach fails, orphan claims, and the pure
parts (cluster definitions, candidate blocks, BGP configurations)."""

from __future__ import annotations

import ipaddress
import json
import os

import pytest

from ipvnet import bgpconf
from ipvnet.clusters import ClusterConfig, block_name, candidates, make_config
from ipvnet.errors import ClusterError, Conflict, InvalidArgument, KernelError
from ipvnet.ops import AddrAdd
from ipvnet.requests import AttachSpec, NetworkSpec
from ipvnet.service import Service
from ipvnet.service.cluster import EtcdOptions, heartbeat, init, join
from tests.etcd.test_etcd_client import Etcd, launch
from tests.unit.fake_engine import FakeEngine, FakeKernel
from tests.unit.test_service import SeqRandom


@pytest.fixture(scope="module")
def etcd():
    server = launch()
    yield server
    server.stop()


@pytest.fixture
def hosts(tmp_path, monkeypatch, etcd: Etcd, request):
    """Two hosts (h1, h2) with their own state dir and fake kernel, joined to a fresh cluster."""
    monkeypatch.setattr("ipvnet.service.require_root", lambda what: None)
    monkeypatch.setenv("IPVNET_ETC_NETNS", str(tmp_path / "etc-netns"))
    monkeypatch.setenv("IPVNET_RT_PROTOS_DIR", str(tmp_path / "rt_protos.d"))
    name = request.node.name.replace("_", "-")[:40].strip("-")
    opts = EtcdOptions((etcd.url,), prefix="/t")
    init(opts, name, ("10.244.0.0/25", "fd00:244::/120"), 26, 122)
    out = {}
    for h in ("h1", "h2"):
        kernel = FakeKernel()
        kernel.add_link(None, "eth0", "veth", "02:00:00:00:00:e1")
        engine = FakeEngine(kernel)

        def service(h=h, engine=engine, **kw) -> Service:
            return Service(str(tmp_path / h), engine=engine, rand=SeqRandom(), **kw)

        join(service(), opts, name, h, 30)
        out[h] = (service, engine)
    return name, out


def web(cluster: str) -> NetworkSpec:
    return NetworkSpec("web", options={"parent": "eth0", "ipvlan_mode": "l3"}, cluster=cluster)


def holders(svc: Service, cluster: str) -> dict[str, str]:
    from ipvnet.store.cluster import ClusterBlocks, load_membership

    return {k: v.value for k, v in ClusterBlocks(load_membership(svc.store.dir, cluster)).holders().items()}


def test_attach_claims_a_block_per_family_and_routes_it(hosts) -> None:
    cluster, h = hosts
    svc, engine = h["h1"]
    svc().create_network(web(cluster))
    assert engine.take_log() == []  # no blocks until a namespace needs an address
    res = svc().attach(AttachSpec("a1", "web", create=True))
    log = engine.take_log()
    assert log[:2] == ["ip route add blackhole 10.244.0.0/26 proto 250",
                       "ip -6 route add blackhole fd00:244::/122 proto 250"]
    assert "ip -n a1 route add default dev eth0" in log and "ip -6 -n a1 route add default dev eth0" in log
    assert str(res.endpoint.ipv4) == "10.244.0.1/26" and str(res.endpoint.ipv6) == "fd00:244::1/122"
    assert holders(svc(), cluster) == {"10.244.0.0-26": "h1/web", "fd00:244::-122": "h1/web"}
    svc().attach(AttachSpec("a2", "web", create=True))  # inside the owned blocks: no claim, no route
    assert not [x for x in engine.take_log() if "blackhole" in x]
    svc2, engine2 = h["h2"]
    svc2().create_network(web(cluster))
    svc2().attach(AttachSpec("b1", "web", create=True))
    assert engine2.take_log()[0] == "ip route add blackhole 10.244.0.64/26 proto 250"


def test_a_failed_attach_releases_the_block_it_claimed(hosts) -> None:
    cluster, h = hosts
    svc, engine = h["h1"]
    svc().create_network(web(cluster))
    engine.fail = lambda op: KernelError("boom") if isinstance(op, AddrAdd) else None
    with pytest.raises(KernelError):
        svc().attach(AttachSpec("a1", "web", create=True))
    log = engine.take_log()
    assert "ip route del blackhole 10.244.0.0/26 proto 250" in log
    assert holders(svc(), cluster) == {}
    assert svc().read().networks["web"].subnets == ()


def test_static_address_must_be_in_an_owned_block(hosts) -> None:
    cluster, h = hosts
    svc, _ = h["h1"]
    svc().create_network(web(cluster))
    with pytest.raises(InvalidArgument) as ei:
        svc().attach(AttachSpec("a1", "web", ip="10.244.0.70", create=True))
    assert "not in a block this host holds" in str(ei.value)


def test_rm_deletes_the_routes_and_releases_the_blocks(hosts) -> None:
    cluster, h = hosts
    svc, engine = h["h1"]
    svc().create_network(web(cluster))
    svc().attach(AttachSpec("a1", "web", create=True))
    engine.take_log()
    svc().remove_networks(("web",), force=True)
    log = engine.take_log()
    assert "ip route del blackhole 10.244.0.0/26 proto 250" in log
    assert "ip -6 route del blackhole fd00:244::/122 proto 250" in log
    assert holders(svc(), cluster) == {}


def test_full_cluster_is_one_clear_conflict(hosts) -> None:
    cluster, h = hosts
    svc, _ = h["h1"]
    svc().create_network(web(cluster))
    s2, _ = h["h2"]
    s2().create_network(web(cluster))
    s2().attach(AttachSpec("b1", "web", create=True))  # takes one of the two /26s
    for i in range(62):
        svc().attach(AttachSpec(f"a{i}", "web", create=True))
    with pytest.raises(Conflict) as ei:
        svc().attach(AttachSpec("full", "web", create=True))
    assert "no free /26 block left in cluster" in str(ei.value)


def test_orphan_claim_is_reported_and_repaired(hosts) -> None:
    cluster, h = hosts
    svc, engine = h["h1"]
    svc().create_network(web(cluster))
    from ipvnet.store.cluster import ClusterBlocks, load_membership

    blocks = ClusterBlocks(load_membership(svc().store.dir, cluster))
    assert blocks.claim(ipaddress.ip_network("10.244.0.64/26"), "web")[0]  # as a killed attach leaves it
    drift, _ = svc().check()
    assert [(d.kind, d.subject) for d in drift] == [("orphan-claim", "10.244.0.64/26")]
    svc().check(repair=True)
    assert holders(svc(), cluster) == {} and svc().check() == ([], [])


def test_heartbeat_after_an_expired_lease_reclaims_and_reports_taken_blocks(hosts) -> None:
    cluster, h = hosts
    svc, engine = h["h1"]
    svc().create_network(web(cluster))
    svc().attach(AttachSpec("a1", "web", create=True))
    from ipvnet.store.cluster import ClusterBlocks, load_membership

    m1 = ClusterBlocks(load_membership(svc().store.dir, cluster))
    m1.etcd.lease_revoke(m1.m.lease)  # as if h1 had been away longer than its TTL
    s2, _ = h["h2"]
    m2 = ClusterBlocks(load_membership(s2().store.dir, cluster))
    assert m2.claim(ipaddress.ip_network("fd00:244::/122"), "web")[0]  # h2 took the v6 block meanwhile
    lost = heartbeat(svc(), cluster)
    assert lost == ["fd00:244::/122 of network web (now h2/web)"]
    assert holders(svc(), cluster)["10.244.0.0-26"] == "h1/web"
    drift, _ = svc().check()
    taken = [d for d in drift if d.kind == "block-taken"]
    assert taken and "a1" in taken[0].message and not taken[0].fixable


def test_etcd_unreachable_is_one_clear_error_and_changes_nothing(hosts, tmp_path) -> None:
    cluster, h = hosts
    svc, engine = h["h1"]
    svc().create_network(web(cluster))
    path = os.path.join(svc().store.dir, "clusters", f"{cluster}.toml")
    text = open(path).read()
    open(path, "w").write(text.replace("127.0.0.1", "127.0.0.2").replace("timeout = 2.0", "timeout = 0.5"))
    before = open(os.path.join(svc().store.dir, "networks", "web.toml")).read()
    with pytest.raises(ClusterError) as ei:
        svc().attach(AttachSpec("a1", "web", create=True))
    assert ei.value.exit_code == 10 and "etcd" in str(ei.value)
    assert engine.k.namespaces == set() and not [x for x in engine.take_log() if "add" in x and "netns" not in x]
    assert open(os.path.join(svc().store.dir, "networks", "web.toml")).read() == before


# -- pure parts ------------------------------------------------------------------------------


def test_cluster_definitions() -> None:
    c = make_config("prod", ("10.244.0.0/16", "fd00:244::/56"), None, None)
    assert c.describe() == "10.244.0.0/16 in /26 blocks, fd00:244::/56 in /122 blocks"
    assert ClusterConfig.from_json(c.to_json()) == c
    for bad, needle in (((), "needs a --cidr"), (("10.0.0.0/8", "10.1.0.0/16"), "one --cidr per family"),
                        (("10.0.0.0/28",), "does not fit")):
        with pytest.raises(InvalidArgument) as ei:
            make_config("x", bad, None, None)
        assert needle in str(ei.value)


def test_candidates_prefer_never_used_blocks() -> None:
    cidr = ipaddress.ip_network("10.0.0.0/24")
    held = {block_name(ipaddress.ip_network("10.0.0.0/26"))}
    used = {block_name(ipaddress.ip_network("10.0.0.64/26"))}
    assert [str(b) for b in candidates(cidr, 26, held, used)] == ["10.0.0.128/26", "10.0.0.192/26", "10.0.0.64/26"]


def test_bird_and_frr_configurations() -> None:
    c = make_config("prod", ("10.244.0.0/16", "fd00:244::/56"), None, None)
    mesh = bgpconf.BgpParams(c, "h1", "10.0.0.1", peers=("10.0.0.2", "fd00::2")).check()
    text = bgpconf.bird(mesh)
    assert "import where krt_source = 250 && net ~ [ 10.244.0.0/16{26,26} ]" in text
    assert "protocol bgp peer4_0 from ipvnet4 { neighbor 10.0.0.2 as 64512; }" in text
    assert "protocol bgp peer6_0 from ipvnet6 { neighbor fd00::2 as 64512; }" in text
    assert "hold time 3;" in text and "bfd on;" in text and "next hop self" in text
    rr = bgpconf.bird(bgpconf.BgpParams(c, "h1", "10.0.0.1", reflect=("10.0.0.0/24",), bfd=False).check())
    assert "neighbor range 10.0.0.0/24 internal; rr client;" in rr and "bfd" not in rr
    frr = bgpconf.frr(mesh)
    assert "ip prefix-list IPVNET4 seq 10 permit 10.244.0.0/16 ge 26 le 26" in frr
    assert "ipv6 prefix-list IPVNET6 seq 10 permit fd00:244::/56 ge 122 le 122" in frr
    assert " redistribute kernel route-map IPVNET4" in frr and " neighbor 10.0.0.2 peer-group IPVNET" in frr
    assert "timers bgp 1 3" in frr
    with pytest.raises(InvalidArgument):
        bgpconf.BgpParams(c, "h1", "10.0.0.1").check()
    assert json.loads(c.to_json())["cidrs"] == ["10.244.0.0/16", "fd00:244::/56"]
