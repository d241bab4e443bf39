"""Multi-host L3 on the real kernel: etcd block claims, BIRD and FRR, hosts going
dark and coming back. The tests run in order and build on each other (one lab).

Figures (claim latency, convergence, withdrawal) are recorded as JUnit
properties; `scripts/kernel_tests.py` prints them after the run.
"""

from __future__ import annotations

import ipaddress
import json
import os
import statistics
import subprocess
import threading
import time

import pytest

from ipvnet.clusters import Membership
from ipvnet.model import IPNetwork
from ipvnet.store.cluster import ClusterBlocks, load_membership
from tests.cluster.conftest import CLUSTER, ENDPOINTS, V4, V6, Lab, ping, sh

pytestmark = pytest.mark.cluster
FIGURES: dict[str, object] = {}


@pytest.fixture(autouse=True)
def figures(record_property: object) -> None:
    yield
    for k, v in FIGURES.items():
        record_property(f"figure:{k}", json.dumps(v))  # type: ignore[operator]


def blocks_of(lab: Lab, host: str, net: str = "web") -> list[str]:
    data = json.loads(lab.ok(host, "network", "inspect", net).out)[0]
    return [c["Subnet"] for c in data["IPAM"]["Config"]]


def addr_of(lab: Lab, host: str, ns: str, family: int = 4, net: str = "web") -> str:
    c = json.loads(lab.ok(host, "network", "inspect", net).out)[0]["Containers"][ns]
    return c["IPv4Address" if family == 4 else "IPv6Address"].split("/")[0]


def etcd_blocks(lab: Lab) -> dict[str, str]:
    from ipvnet.etcd import EtcdClient

    prefix = f"/ipvnet/{CLUSTER}/blocks/"
    return {kv.key[len(prefix):]: kv.value for kv in EtcdClient(ENDPOINTS.split(",")).get_prefix(prefix)}


def bird_conf(lab: Lab, host: str, *args: str) -> str:
    return lab.ok(host, "cluster", "bird-config", *args, CLUSTER).out


# -- 1. the cluster, hosts and claims ---------------------------------------------------


def test_init_join_and_refusals(lab: Lab) -> None:
    r = lab.ok("h1", "cluster", "init", "--etcd", ENDPOINTS, "--cidr", V4, "--cidr", V6, CLUSTER)
    assert "10.244.0.0/23 in /26 blocks" in r.out and "fd00:244::/118 in /122 blocks" in r.out
    lab.ok("h2", "cluster", "init", "--etcd", ENDPOINTS, "--cidr", V4, "--cidr", V6, CLUSTER)  # same: fine
    r = lab.run("h2", "cluster", "init", "--etcd", ENDPOINTS, "--cidr", "10.99.0.0/16", CLUSTER)
    assert r.code == 4 and "exists with another definition" in r.err
    for h in ("h1", "h2", "h3"):
        lab.ok(h, "cluster", "join", "--etcd", ENDPOINTS, "--host", h, "--ttl", "60", CLUSTER)
        lab.ok(h, "network", "create", "-o", "ipvlan_mode=l3", "-o", "parent=eth0", "--cluster", CLUSTER, "web")
    r = lab.run("h1", "cluster", "join", "--etcd", ENDPOINTS, "--host", "h2", CLUSTER)
    assert r.code == 4 and "already a member" in r.err
    r = lab.run("h1", "network", "create", "--subnet", "10.1.0.0/24", "-o", "ipvlan_mode=l3", "-o", "parent=eth0",
                "--cluster", CLUSTER, "bad")
    assert r.code == 2 and "--subnet does not go with --cluster" in r.err


def test_concurrent_claims_give_distinct_blocks(lab: Lab) -> None:
    """Three hosts attach at once, each as a real process: each claims its own block."""
    results: dict[str, object] = {}

    def go(h: str) -> None:
        results[h] = lab.proc(h, "attach", "--create", f"a{h[1]}", "web")

    threads = [threading.Thread(target=go, args=(h,)) for h in ("h1", "h2", "h3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for h, r in results.items():
        assert r.returncode == 0, (h, r.stderr)  # type: ignore[attr-defined]
    owned = {h: blocks_of(lab, h) for h in ("h1", "h2", "h3")}
    v4 = [b for bs in owned.values() for b in bs if ":" not in b]
    assert len(v4) == 3 and len(set(v4)) == 3
    holders = etcd_blocks(lab)
    for h, bs in owned.items():
        for b in bs:
            assert holders[b.replace("/", "-")] == f"{h}/web"
        assert {r["dst"] for r in lab.routes(h) if r.get("type") == "blackhole"} == {b for b in bs if ":" not in b}


def race(members: list[ClusterBlocks], block: IPNetwork) -> list[bool]:
    """Both claim BLOCK at the same moment (a barrier), having both seen it free."""
    wins: list[bool] = []
    start = threading.Barrier(len(members))

    def claim(b: ClusterBlocks) -> None:
        start.wait()
        wins.append(b.claim(block, "race")[0])

    threads = [threading.Thread(target=claim, args=(m,)) for m in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wins


def test_head_to_head_race_has_one_winner(lab: Lab) -> None:
    free = ipaddress.ip_network("10.244.0.192/26")
    for _ in range(5):
        members = [ClusterBlocks(load_membership(lab.state(h), CLUSTER)) for h in ("h1", "h2")]
        assert sorted(race(members, free)) == [False, True]
        assert sum(m.release(free, "race") for m in members) == 1  # only the winner's release deletes
    m = ClusterBlocks(load_membership(lab.state("h1"), CLUSTER))
    times = []
    for _ in range(10):  # the claim latency an attach pays when it needs a block
        t = time.perf_counter()
        assert m.claim(free, "latency")[0]
        times.append(time.perf_counter() - t)
        m.release(free, "latency")
    FIGURES["claim_latency_ms_median"] = round(statistics.median(times) * 1000, 1)


# -- 2. BGP: a reflector and its clients ---------------------------------------------------


def test_bird_reflector_and_pings_between_every_host(lab: Lab) -> None:
    t0 = time.monotonic()
    lab.start_bird("h1", bird_conf(lab, "h1", "--reflector-for", "10.0.0.0/24", "--reflector-for", "fd00::/64"))
    for h in ("h2", "h3"):
        lab.start_bird(h, bird_conf(lab, h, "--peer", "10.0.0.1", "--peer", "fd00::1"))
    converge(lab, ["h1", "h2", "h3"], 15)
    FIGURES["bird_first_convergence_s"] = round(time.monotonic() - t0, 2)
    assert_all_pairs(lab, ["a1", "a2", "a3"])


def converge(lab: Lab, hosts: list[str], timeout: float) -> None:
    """Until every host's kernel has a route to every other host's blocks."""
    for h in hosts:
        for other in hosts:
            if other != h:
                for b in blocks_of(lab, other):
                    lab.wait_route(h, b, timeout=timeout)


def assert_all_pairs(lab: Lab, names: list[str], net: str = "web") -> None:
    addrs = {ns: (addr_of(lab, f"h{ns[1:]}", ns, 4, net), addr_of(lab, f"h{ns[1:]}", ns, 6, net)) for ns in names}
    for src in names:
        for dst, (a4, a6) in addrs.items():
            if dst != src:
                assert ping(src, a4), f"{src} -> {dst} {a4}"
                assert ping(src, a6), f"{src} -> {dst} {a6}"


def test_a_namespace_attached_later_is_reachable_at_once(lab: Lab) -> None:
    lab.ok("h2", "attach", "--create", "b2", "web")  # inside h2's block: nothing to announce
    assert ping("a1", addr_of(lab, "h2", "b2"))
    # a new block: claimed, routed, learned by BIRD, reflected, in h1's kernel
    before = set(blocks_of(lab, "h3"))
    t0 = time.monotonic()
    for i in range(62):  # fill h3's /26 (62 addresses after a3) to force a second block
        lab.ok("h3", "attach", "--create", f"f{i}", "web")
        if set(blocks_of(lab, "h3")) - before:
            break
    new = [b for b in set(blocks_of(lab, "h3")) - before if ":" not in b]
    assert new, "h3 never needed a second block"
    lab.wait_route("h1", new[0], timeout=5)
    last = f"f{i}"
    t1 = time.monotonic()
    while not ping("a1", addr_of(lab, "h3", last)):
        assert time.monotonic() - t1 < 5, "unreachable"
    FIGURES["new_block_to_remote_reply_s"] = round(time.monotonic() - t1, 3)
    FIGURES["fill_block_attaches_s"] = round(t1 - t0, 1)
    for j in range(i + 1):
        lab.ok("h3", "detach", f"f{j}", "web")


def test_etcd_stopped_attach_inside_blocks_still_works_claims_fail_cleanly(lab: Lab) -> None:
    lab.stop_etcd((2,))  # one of three members gone: claims still work (quorum)
    lab.ok("h1", "network", "create", "-o", "ipvlan_mode=l3", "-o", "parent=eth0", "--cluster", CLUSTER, "quorum")
    lab.ok("h1", "attach", "--create", "q1", "quorum")  # claims a block (one per family)
    assert [v for v in etcd_blocks(lab).values() if v == "h1/quorum"] == ["h1/quorum", "h1/quorum"]
    lab.stop_etcd((0, 1))
    try:
        lab.ok("h1", "attach", "--create", "q2", "web")  # inside h1's block: no etcd needed
        assert ping("a2", addr_of(lab, "h1", "q2"))
        lab.ok("h1", "network", "create", "-o", "ipvlan_mode=l3", "-o", "parent=eth0", "--cluster", CLUSTER, "web2")
        before = (sh("ip -j -d -n h1 route show"), sorted(os.listdir("/run/netns")),
                  open(os.path.join(lab.state("h1"), "networks", "web2.toml")).read())
        r = lab.run("h1", "attach", "--create", "q3", "web2")  # needs a block: etcd
        assert r.code == 10 and r.err.startswith("Error: ") and r.err.count("\n") == 1, r.err
        assert "etcd" in r.err
        after = (sh("ip -j -d -n h1 route show"), sorted(os.listdir("/run/netns")),
                 open(os.path.join(lab.state("h1"), "networks", "web2.toml")).read())
        assert after == before
        assert lab.run("h1", "cluster", "status", CLUSTER).code == 10
    finally:
        lab.start_etcd()
    lab.ok("h1", "network", "rm", "web2")
    lab.ok("h1", "network", "rm", "--force", "quorum")
    assert "h1/quorum" not in etcd_blocks(lab).values()
    lab.ok("h1", "detach", "q2", "web")


# -- 3. a host goes dark, and a fourth joins ---------------------------------------------------


def dark(lab: Lab, host: str, blocks: list[str], watcher: str) -> float:
    """Seconds from HOST's link going dark until WATCHER's kernel has lost its routes;
    then the link is back and the routes with it."""
    v4 = [b for b in blocks if ":" not in b]
    for b in v4:
        lab.wait_route(watcher, b, timeout=20)
    sh(f"ip link set v{host} down")
    try:
        t0 = time.monotonic()
        for b in v4:
            lab.wait_route(watcher, b, present=False, timeout=10)
        return time.monotonic() - t0
    finally:
        sh(f"ip link set v{host} up")
        for b in v4:
            lab.wait_route(watcher, b, timeout=20)


def test_dark_host_is_withdrawn_with_bfd_and_with_the_hold_timer(lab: Lab) -> None:
    h3 = blocks_of(lab, "h3")
    runs = [dark(lab, "h3", h3, "h2") for _ in range(3)]
    FIGURES["withdrawal_bfd_s"] = [round(x, 2) for x in runs]
    assert max(runs) < 1.5
    for h, args in (("h1", ("--reflector-for", "10.0.0.0/24", "--reflector-for", "fd00::/64")),
                    ("h2", ("--peer", "10.0.0.1", "--peer", "fd00::1")),
                    ("h3", ("--peer", "10.0.0.1", "--peer", "fd00::1"))):
        lab.reconfigure_bird(h, bird_conf(lab, h, "--no-bfd", *args))
    time.sleep(1)
    runs = [dark(lab, "h3", h3, "h2") for _ in range(2)]
    FIGURES["withdrawal_hold3_s"] = [round(x, 2) for x in runs]
    assert all(1.0 < x < 6 for x in runs)  # BFD takes ~0.4 s; the hold timer 3 s after the last keepalive
    assert ping("a2", addr_of(lab, "h3", "a3"))


def test_a_fourth_host_joins_through_the_reflector_with_no_change_elsewhere(lab: Lab) -> None:
    confs = {h: open(os.path.join(lab.root, f"bird-{h}.conf")).read() for h in ("h1", "h2", "h3")}
    lab.add_host(4)
    lab.ok("h4", "cluster", "join", "--etcd", ENDPOINTS, "--host", "h4", "--ttl", "60", CLUSTER)
    lab.ok("h4", "network", "create", "-o", "ipvlan_mode=l3", "-o", "parent=eth0", "--cluster", CLUSTER, "web")
    lab.ok("h4", "attach", "--create", "a4", "web")
    t0 = time.monotonic()
    lab.start_bird("h4", bird_conf(lab, "h4", "--peer", "10.0.0.1", "--peer", "fd00::1"))
    for b in blocks_of(lab, "h4"):
        lab.wait_route("h2", b, timeout=15)
    FIGURES["fourth_host_routes_s"] = round(time.monotonic() - t0, 2)
    assert_all_pairs(lab, ["a1", "a2", "a3", "a4"])
    assert confs == {h: open(os.path.join(lab.root, f"bird-{h}.conf")).read() for h in ("h1", "h2", "h3")}


# -- 4. leases, orphans and take-overs ----------------------------------------------------------


def test_lease_expiry_frees_a_block_and_another_host_claims_it(lab: Lab) -> None:
    h1 = load_membership(lab.state("h1"), CLUSTER)
    ghost = ClusterBlocks(Membership(h1.config, h1.endpoints, "ghost", ttl=2))
    ghost.register()
    held = etcd_blocks(lab)
    block = next(b for b in ipaddress.ip_network(V4).subnets(new_prefix=26) if str(b).replace("/", "-") not in held)
    assert ghost.claim(block, "web")[0]
    t0 = time.monotonic()
    while block.exploded and str(block).replace("/", "-") in etcd_blocks(lab):
        assert time.monotonic() - t0 < 10, "the lease never expired"
        time.sleep(0.1)
    FIGURES["lease2_expiry_s"] = round(time.monotonic() - t0, 2)
    h2 = ClusterBlocks(load_membership(lab.state("h2"), CLUSTER))
    assert h2.claim(block, "spare")[0] and h2.release(block, "spare")


def test_orphan_claim_is_found_and_released(lab: Lab) -> None:
    """Killed between the claim and the store write: etcd holds a block no local network records."""
    r = lab.proc("h1", "network", "create", "-o", "ipvlan_mode=l3", "-o", "parent=eth0", "--cluster", CLUSTER, "orph")
    assert r.returncode == 0, r.stderr
    r = lab.proc("h1", "attach", "--create", "o1", "orph", env={"IPVNET_FAULT": "kill@store"})
    assert r.returncode == -9
    holders = etcd_blocks(lab)
    claimed = [b for b, v in holders.items() if v == "h1/orph"]
    assert claimed
    r = lab.run("h1", "check", "--format", "json")
    kinds = {d["kind"] for d in json.loads(r.out)}
    assert r.code == 9 and {"orphan-claim", "interrupted"} <= kinds, r.out
    lab.ok("h1", "check", "--repair")
    assert not [b for b, v in etcd_blocks(lab).items() if v == "h1/orph"]
    assert json.loads(lab.ok("h1", "check", "--format", "json").out) == []
    lab.ok("h1", "network", "rm", "orph")


def test_taken_over_block_is_not_announced_again_and_check_names_its_namespaces(lab: Lab) -> None:
    h3_v4 = [b for b in blocks_of(lab, "h3") if ":" not in b]
    lab.ok("h1", "cluster", "release", "--host", "h3", CLUSTER)  # the operator declares h3 dead
    h2 = ClusterBlocks(load_membership(lab.state("h2"), CLUSTER))
    assert h2.claim(ipaddress.ip_network(h3_v4[0]), "web")[0]  # and h2 takes h3's block
    r = lab.run("h3", "check", "--format", "json")
    assert r.code == 9
    taken = [d for d in json.loads(r.out) if d["kind"] == "block-taken"]
    assert taken and "a3" in taken[0]["message"] and "h2/web" in taken[0]["message"]
    r = lab.run("h3", "cluster", "heartbeat")  # its lease was revoked: join again, re-claim what is free
    assert r.code == 9 and h3_v4[0] in r.err and "h2/web" in r.err, r.err
    r = lab.run("h3", "check", "--repair")
    assert r.code == 9  # the take-over cannot be repaired here...
    assert h3_v4[0] not in {x["dst"] for x in lab.routes("h3") if x.get("type") == "blackhole"}  # ...not announced
    h2.release(ipaddress.ip_network(h3_v4[0]), "web")
    lab.ok("h3", "check", "--repair")  # free again: re-claimed by CAS, announced again
    assert json.loads(lab.ok("h3", "check", "--format", "json").out) == []


def test_status_lists_hosts_blocks_and_routes(lab: Lab) -> None:
    st = json.loads(lab.ok("h2", "cluster", "status", "--format", "json", CLUSTER).out)
    assert set(st["hosts"]) == {"h1", "h2", "h3", "h4"}
    routes = {b["block"]: b["route"] for b in st["blocks"]}
    for b in blocks_of(lab, "h2"):
        assert routes[b] == "blackhole"
    for b in blocks_of(lab, "h1"):
        if ":" not in b:
            assert routes[b] == "via 10.0.0.1"
    r = lab.ok("h2", "routes", "web")
    assert all(b in r.out for b in blocks_of(lab, "h2"))


# -- 5. L3S, FRR, and leaving no trace -----------------------------------------------------------


def test_l3s_across_hosts(lab: Lab) -> None:
    for h in lab.hosts:
        for ns in [ns for ns in json.loads(lab.ok(h, "network", "inspect", "web").out)[0]["Containers"]]:
            lab.ok(h, "detach", ns, "web")
        lab.ok(h, "network", "rm", "web")
        lab.ok(h, "network", "create", "-o", "ipvlan_mode=l3s", "-o", "parent=eth0", "--cluster", CLUSTER, "web")
        lab.ok(h, "attach", f"a{h[1]}", "web")
    converge(lab, lab.hosts, 15)
    assert_all_pairs(lab, [f"a{h[1]}" for h in lab.hosts])


def test_namespaces_made_under_ip_netns_exec_outlive_it(lab: Lab) -> None:
    """`ip netns exec HOST ipvnet attach --create` runs in a private mount namespace; the new
    namespace's bind mount is made in the one that owns /run/netns, so it stays."""
    import sys

    base = ["ip", "netns", "exec", "h1", sys.executable, "-m", "ipvnet", "--state-dir", lab.state("h1")]
    r = subprocess.run([*base, "attach", "--create", "x1", "web"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "x1" in os.listdir("/run/netns") and ping("x1", addr_of(lab, "h2", "a2"))
    r = subprocess.run([*base, "run-ns", "--net", "web", "--name", "x2", "--rm", "--", "true"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "x2" not in os.listdir("/run/netns")
    lab.ok("h1", "detach", "x1", "web")


def test_frr_full_mesh(lab: Lab) -> None:
    for h in list(lab.daemons):
        lab.stop_daemons(h)
    peers = {h: [f"10.0.0.{o[1]}" for o in ("h1", "h2", "h3") if o != h] for h in ("h1", "h2", "h3")}
    t0 = time.monotonic()
    for h in ("h1", "h2", "h3"):
        args = [a for p in peers[h] for a in ("--peer", p)]
        lab.start_frr(h, lab.ok(h, "cluster", "frr-config", *args, CLUSTER).out)
    converge(lab, ["h1", "h2", "h3"], 20)
    FIGURES["frr_first_convergence_s"] = round(time.monotonic() - t0, 2)
    assert_all_pairs(lab, ["a1", "a2", "a3"])
    h3 = blocks_of(lab, "h3")
    FIGURES["frr_withdrawal_bfd_s"] = round(dark(lab, "h3", h3, "h1"), 2)


def test_teardown_leaves_no_link_route_claim_or_host_key(lab: Lab) -> None:
    for h in list(lab.daemons):
        lab.stop_daemons(h)
    for h in lab.hosts:
        lab.ok(h, "network", "rm", "--force", "web")
        lab.ok(h, "cluster", "leave", CLUSTER)
        assert not [r for r in lab.routes(h) if r.get("type") == "blackhole"]
        assert not [r for r in lab.routes(h, 6) if r.get("type") == "blackhole"]
        assert len(sh(f"ip -n {h} -o link show").splitlines()) == 2  # lo and eth0
    from ipvnet.etcd import EtcdClient

    keys = [kv.key for kv in EtcdClient(ENDPOINTS.split(",")).get_prefix(f"/ipvnet/{CLUSTER}/")]
    assert not [k for k in keys if "/blocks/" in k or "/hosts/" in k], keys
    for ns in os.listdir("/run/netns"):  # namespaces stay (detach never deletes one); their links do not
        if not ns.startswith("h"):
            assert sh(f"ip -n {ns} -o link show").split(":")[1].strip() == "lo"
            assert len(sh(f"ip -n {ns} -o link show").splitlines()) == 1
