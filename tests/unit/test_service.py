"""The service layer over the recording fake engine: every command's exact
operation list (as sqlite-utils pins its SQL), rollback of kernel work and
files on failure, savepoints in batches, dry runs. No root, no kernel."""

from __future__ import annotations

import os

import pytest

from ipvnet.errors import Conflict, ErrorList, KernelError, NotFound
from ipvnet.fault import Faults
from ipvnet.kernel import Engine
from ipvnet.ops import AddrAdd, LinkAdd
from ipvnet.requests import AttachSpec, NetworkSpec
from ipvnet.service import Random, Service
from tests.unit.fake_engine import FakeEngine, FakeKernel, conforms


class SeqRandom(Random):
    """Predictable identifiers: 00000001, 00000002, ..."""

    def __init__(self) -> None:
        self.n = 0

    def hex(self, nbytes: int) -> str:
        self.n += 1
        return f"{self.n:0{2 * nbytes}x}"

    def mac(self) -> str:
        self.n += 1
        return f"02:00:00:00:00:{self.n:02x}"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setattr("ipvnet.service.require_root", lambda what: None)
    monkeypatch.setenv("IPVNET_ETC_NETNS", str(tmp_path / "etc-netns"))
    kernel = FakeKernel()
    kernel.add_link(None, "eth0", "dummy", "02:00:00:00:00:e0")
    engine = FakeEngine(kernel)

    def service(**kw) -> Service:
        return Service(str(tmp_path / "state"), engine=engine, rand=SeqRandom(), **kw)

    return service, engine, tmp_path


def store_files(tmp_path) -> dict[str, bytes]:
    out = {}
    for root, _dirs, files in os.walk(tmp_path / "state"):
        for f in files:
            if "journal" not in root and "cache" not in root and f != "lock":
                out[os.path.relpath(os.path.join(root, f), tmp_path)] = open(os.path.join(root, f), "rb").read()
    return out


VLAN20 = NetworkSpec("vlan20", subnets=("192.168.20.0/24",), options={"parent": "eth0.20"})
ATTACH_NS1 = [
    "ip netns add ns1",
    "ip link add ipv00000002 link eth0.20 netns ns1 type ipvlan mode l2 bridge",
    "ip -n ns1 link set ipv00000002 name eth0",
    "ip netns exec ns1 sysctl -w net/ipv6/conf/eth0/disable_ipv6=1",
    "ip netns exec ns1 sysctl -w net/ipv4/conf/eth0/arp_notify=1",
    "ip -n ns1 addr add 192.168.20.2/24 dev eth0",
    "ip -n ns1 link set lo up",
    "ip -n ns1 link set eth0 up",
    "ip -n ns1 route add default via 192.168.20.1 dev eth0",
]


def test_the_fake_implements_the_engine_protocol():
    assert conforms() and isinstance(FakeEngine(), Engine)


def test_create_and_remove_a_vlan_network(env):
    service, engine, tmp = env
    res = service().create_network(VLAN20)
    assert engine.take_log() == ["ip link add eth0.20 link eth0 type vlan id 20", "ip link set eth0.20 up"]
    assert [op.describe() for op in res.ops] == ["ip link add eth0.20 link eth0 type vlan id 20",
                                                   "ip link set eth0.20 up"]
    assert res.network is not None and res.network.parent_kind == "vlan" and res.network.id == f"{1:064x}"
    assert list(service().read().networks) == ["vlan20"]
    service().remove_networks(("vlan20",))
    assert engine.take_log() == ["ip link del eth0.20"]
    assert service().read().networks == {}


def test_attach_runs_exactly_the_planned_operations(env):
    service, engine, tmp = env
    service().create_network(VLAN20)
    engine.take_log()
    res = service().attach(AttachSpec("ns1", "vlan20", create=True))
    assert engine.take_log() == ATTACH_NS1
    ep = res.endpoint
    assert ep is not None and str(ep.ipv4) == "192.168.20.2/24" and ep.created_ns
    assert ep.mac == engine.k.links[None]["eth0.20"].mac  # ipvlan: the parent's MAC, known before the kernel work
    assert (tmp / "etc-netns" / "ns1" / "hosts").is_symlink()
    net = service().read().networks["vlan20"]
    assert list(net.endpoints) == ["ns1"]


def test_a_second_network_with_higher_priority_takes_the_default_route(env):
    service, engine, tmp = env
    svc = service()
    svc.create_network(VLAN20)
    svc.create_network(NetworkSpec("v30", subnets=("10.30.0.0/24",), options={"parent": "eth0.30"}))
    svc.attach(AttachSpec("ns1", "vlan20", create=True))
    engine.take_log()
    service().attach(AttachSpec("ns1", "v30", gw_priority=5))
    log = engine.take_log()
    assert log[0] == "ip link add ipv00000002 link eth0.30 netns ns1 type ipvlan mode l2 bridge"
    assert log[-2:] == ["ip -n ns1 route del default via 192.168.20.1 dev eth0",
                        "ip -n ns1 route add default via 10.30.0.1 dev eth1"]
    service().detach("ns1", "v30")
    assert engine.take_log() == ["ip -n ns1 link del eth1", "ip -n ns1 route add default via 192.168.20.1 dev eth0"]


def test_a_kernel_failure_undoes_the_kernel_work_files_and_store(env):
    service, engine, tmp = env
    service().create_network(VLAN20)
    before = store_files(tmp)
    engine.take_log()
    engine.fail = lambda op: KernelError("boom") if isinstance(op, AddrAdd) else None
    with pytest.raises(KernelError) as ei:
        service().attach(AttachSpec("ns1", "vlan20", create=True))
    assert str(ei.value).startswith("attach ns1 to vlan20: boom")
    assert engine.take_log() == ATTACH_NS1[:6] + [
        "ip -n ns1 link del eth0", "ip -n ns1 link del ipv00000002", "ip netns del ns1"]
    assert store_files(tmp) == before
    assert not (tmp / "etc-netns" / "ns1").exists() and not (tmp / "state" / "hosts" / "vlan20").exists()
    assert engine.k.namespaces == set()
    assert os.listdir(tmp / "state" / "journal") == []


def test_a_failure_after_the_hosts_files_undoes_them_too(env):
    service, engine, tmp = env
    service().create_network(VLAN20)
    service().attach(AttachSpec("ns1", "vlan20", create=True))
    hosts = (tmp / "state" / "hosts" / "vlan20").read_text()
    before = store_files(tmp)
    engine.take_log()
    with pytest.raises(KernelError):
        service(faults=Faults.parse("store")).attach(AttachSpec("ns2", "vlan20", create=True))
    log = engine.take_log()
    assert log[-3:] == ["ip -n ns2 link del eth0", "ip -n ns2 link del ipv00000002", "ip netns del ns2"]
    assert (tmp / "state" / "hosts" / "vlan20").read_text() == hosts  # the appended line is gone again
    assert not (tmp / "etc-netns" / "ns2").exists()
    assert store_files(tmp) == before


def test_detach_of_a_namespace_that_is_gone_releases_its_addresses(env):
    service, engine, tmp = env
    service().create_network(VLAN20)
    service().attach(AttachSpec("ns1", "vlan20", create=True))
    engine.k.namespaces.discard("ns1")
    engine.take_log()
    service().detach("ns1", "vlan20")
    assert engine.take_log() == []
    assert service().read().networks["vlan20"].endpoints == {}
    with pytest.raises(NotFound):
        service().detach("ns1", "vlan20")


def test_rm_force_detaches_then_removes_the_parent(env):
    service, engine, tmp = env
    service().create_network(VLAN20)
    service().attach_many([AttachSpec(ns, "vlan20", create=True) for ns in ("a", "b")])
    engine.take_log()
    with pytest.raises(Conflict) as ei:
        service().remove_networks(("vlan20",))
    assert "a, b" in str(ei.value)
    service().remove_networks(("vlan20",), force=True)
    assert engine.take_log() == ["ip -n a link del eth0", "ip -n b link del eth0", "ip link del eth0.20"]
    assert not (tmp / "etc-netns" / "a").exists() and not (tmp / "state" / "hosts" / "vlan20").exists()


def test_rm_of_several_keeps_going_and_reports_every_failure(env):
    service, engine, tmp = env
    service().create_network(VLAN20)
    with pytest.raises(ErrorList) as ei:
        service().remove_networks(("nope", "vlan20", "gone"))
    assert [e.exit_code for e in ei.value.errors] == [3, 3] and ei.value.exit_code == 3
    assert service().read().networks == {}


def test_prune_removes_only_unused_networks(env):
    service, engine, tmp = env
    service().create_network(VLAN20)
    service().create_network(NetworkSpec("iso", subnets=("10.9.0.0/24",)))
    service().attach(AttachSpec("ns1", "vlan20", create=True))
    engine.take_log()
    res = service().prune()
    assert res.removed == ["iso"] and engine.take_log() == ["ip link del di-000000000000"]


def test_batch_attach_keeps_the_steps_before_a_failure(env):
    service, engine, tmp = env
    service().create_network(VLAN20)
    engine.fail = lambda op: KernelError("no") if isinstance(op, LinkAdd) and op.target_ns == "b" else None
    with pytest.raises(KernelError) as ei:
        service().attach_many([AttachSpec(ns, "vlan20", create=True) for ns in ("a", "b", "c")])
    assert "attach b:" in str(ei.value) and "1 of 3 changes were applied" in str(ei.value)
    assert list(service().read().networks["vlan20"].endpoints) == ["a"]
    assert engine.k.namespaces == {"a"}


def test_dry_run_runs_nothing_and_writes_nothing(env):
    service, engine, tmp = env
    service().create_network(VLAN20)
    before = store_files(tmp)
    engine.take_log()
    res = service(dry_run=True).attach(AttachSpec("ns1", "vlan20", create=True))
    assert [op.describe() for op in res.ops] == ATTACH_NS1
    assert engine.take_log() == [] and store_files(tmp) == before and not (tmp / "etc-netns").exists()


SITE = """
[networks.vlan20]
subnets = ["192.168.20.0/24"]
options = { parent = "eth0.20" }
[networks.vlan20.namespaces.web]
ip = "192.168.20.80"
[networks.vlan20.namespaces.db]
"""


def test_apply_creates_attaches_once_and_prunes(env):
    service, engine, tmp = env
    actions = service().apply(SITE, "site.toml")
    assert [a.describe() for a in actions] == ["+ network vlan20", "+ attach web vlan20", "+ attach db vlan20"]
    log = engine.take_log()
    assert log[:2] == ["ip link add eth0.20 link eth0 type vlan id 20", "ip link set eth0.20 up"]
    assert "ip -n web addr add 192.168.20.80/24 dev eth0" in log and "ip -n db addr add 192.168.20.2/24 dev eth0" in log
    assert service().apply(SITE, "site.toml") == [] and engine.take_log() == []
    service().apply('[networks.vlan20]\nsubnets = ["192.168.20.0/24"]\noptions = { parent = "eth0.20" }\n',
                    "site.toml", prune=True)
    assert engine.take_log() == ["ip -n db link del eth0", "ip -n web link del eth0"]


def test_check_finds_drift_and_repair_fixes_it(env):
    service, engine, tmp = env
    service().create_network(VLAN20)
    service().attach(AttachSpec("ns1", "vlan20", create=True))
    engine.k.links["ns1"].pop("eth0")
    engine.k.routes["ns1"] = []
    engine.take_log()
    drift, failures = service().check()
    assert [d.kind for d in drift] == ["missing-link", "route"] and failures == []
    assert engine.take_log() == []
    drift, failures = service().check(repair=True)
    assert failures == []
    log = engine.take_log()
    assert log[0].startswith("ip link add ipv") and log[-1] == "ip -n ns1 route add default via 192.168.20.1 dev eth0"
    assert service().check() == ([], [])


def test_restore_after_a_reboot_recreates_parents_namespaces_and_links(env):
    service, engine, tmp = env
    service().create_network(VLAN20)
    service().attach(AttachSpec("ns1", "vlan20", create=True))
    engine.k.namespaces.clear()  # a reboot: namespaces and created links vanish
    engine.k.links = {None: {"eth0": engine.k.links[None]["eth0"]}}
    engine.k.routes = {None: []}
    engine.k.addrs = {}
    engine.take_log()
    drift, failures = service().check(repair=True)
    assert [d.kind for d in drift] == ["missing-parent", "missing-namespace", "missing-link", "route"]
    log = engine.take_log()
    assert log[:3] == ["ip link add eth0.20 link eth0 type vlan id 20", "ip link set eth0.20 up", "ip netns add ns1"]
    assert log[-1] == "ip -n ns1 route add default via 192.168.20.1 dev eth0"
    assert service().check() == ([], [])


def test_interrupted_transaction_is_undone_by_repair(env):
    service, engine, tmp = env
    service().create_network(VLAN20)
    engine.take_log()
    from ipvnet.journal import Journal
    from ipvnet.ops import NetnsAdd

    j = Journal(str(tmp / "state"), "attach ns9 to vlan20")  # as a killed process leaves it
    j.record([NetnsAdd(None, "ns9")])
    j.close()
    engine.k.add_namespace("ns9")
    drift, _ = service().check()
    assert [(d.kind, d.subject) for d in drift] == [("interrupted", "attach ns9 to vlan20")]
    service().check(repair=True)
    assert engine.take_log() == ["ip netns del ns9"] and service().check() == ([], [])
