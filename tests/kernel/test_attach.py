"""Namespaces on networks: the seed document's examples as tests, plus
rollback, detach edge cases, several networks per namespace and run-ns."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.kernel.helpers import (
    addrs,
    cli,
    default_routes,
    fails,
    ip,
    link,
    link_names,
    netns_add,
    ok,
    ping,
    store,
    store_bytes,
)


def ns_links(ns: str) -> set[str]:
    return link_names(ns)


def endpoints(net: str) -> dict:
    return json.loads(ok("network", "inspect", net).out)[0]["Containers"]


def test_l2_default_gateway_and_ping_by_name(eth0):
    ok("network", "create", "--subnet", "192.168.1.0/24", "-o", "parent=eth0", "-o", "ipvlan_mode=l2", "ipnet")
    netns_add("ns1")
    netns_add("ns2")
    r = ok("attach", "ns1", "ipnet")
    assert r.out.split() == ["ns1", "eth0", "192.168.1.2/24"]
    ok("attach", "ns2", "ipnet")
    li = link("eth0", "ns1")
    assert li["linkinfo"]["info_kind"] == "ipvlan"
    assert li["linkinfo"]["info_data"]["mode"] == "l2"
    assert "UP" in li["flags"]
    assert "UP" in link("lo", "ns1")["flags"]
    assert addrs("eth0", "ns1") == {"192.168.1.2/24"}
    assert addrs("eth0", "ns2") == {"192.168.1.3/24"}
    routes = default_routes("ns1")
    assert [(r["gateway"], r["dev"]) for r in routes] == [("192.168.1.1", "eth0")]
    # no IPv6 address: IPv6 is disabled on the link
    out = subprocess.run(["ip", "netns", "exec", "ns1", "cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"],
                         capture_output=True, text=True).stdout
    assert out.strip() == "1"
    assert ping("ns1", "ns2") and ping("ns2", "ns1")
    assert ping("ns1", "192.168.1.3")
    c = endpoints("ipnet")
    assert c["ns1"]["IPv4Address"] == "192.168.1.2/24" and len(c["ns1"]["EndpointID"]) == 64
    assert c["ns1"]["MacAddress"] == link("eth0", "ns1")["address"]


def test_l2_explicit_gateway(eth0):
    ok("network", "create", "--subnet", "192.168.1.0/24", "--gateway", "192.168.1.254", "-o", "parent=eth0", "gw")
    netns_add("a")
    ok("attach", "a", "gw")
    assert addrs("eth0", "a") == {"192.168.1.1/24"}  # .1 is free: .254 is the gateway
    assert default_routes("a")[0]["gateway"] == "192.168.1.254"


def test_vlans_20_and_30(eth0):
    ok("network", "create", "--subnet", "192.168.20.0/24", "-o", "parent=eth0.20", "ipvlan20")
    ok("network", "create", "--subnet", "192.168.30.0/24", "-o", "parent=eth0.30", "ipvlan30")
    for ns, net in (("a20", "ipvlan20"), ("b20", "ipvlan20"), ("a30", "ipvlan30"), ("b30", "ipvlan30")):
        netns_add(ns)
        ok("attach", ns, net)
    assert ping("a20", "b20") and ping("a30", "b30")
    assert not ping("a20", "192.168.30.2")
    assert not ping("a20", "a30")  # not even a name: different networks do not see each other
    ok("network", "rm", "--force", "ipvlan20", "ipvlan30")
    assert link("eth0.20") is None and link("eth0.30") is None
    assert ns_links("a20") == {"lo"}


def test_multi_subnet_l2_static_ip_and_gateway(eth0):
    ok("network", "create", "--subnet", "192.168.114.0/24", "--subnet", "192.168.116.0/24",
       "--gateway", "192.168.114.254", "--gateway", "192.168.116.254", "-o", "parent=eth0.114", "multi")
    for ns, addr in (("m1", "192.168.114.10"), ("m2", "192.168.114.11"), ("m3", "192.168.116.10"),
                     ("m4", "192.168.116.11")):
        netns_add(ns)
        ok("attach", "--ip", addr, ns, "multi")
    assert default_routes("m1")[0]["gateway"] == "192.168.114.254"
    assert default_routes("m3")[0]["gateway"] == "192.168.116.254"
    assert addrs("eth0", "m3") == {"192.168.116.10/24"}
    assert ping("m1", "m2") and ping("m3", "m4")


def test_l3_two_subnets_route_to_each_other(eth0):
    ok("network", "create", "--subnet", "192.168.214.0/24", "--subnet", "10.1.214.0/24",
       "-o", "ipvlan_mode=l3", "-o", "parent=eth0", "l3net")
    netns_add("x")
    netns_add("y")
    ok("attach", "--ip", "192.168.214.10", "x", "l3net")
    ok("attach", "--ip", "10.1.214.10", "y", "l3net")
    assert link("eth0", "x")["linkinfo"]["info_data"]["mode"] == "l3"
    for ns in ("x", "y"):
        routes = default_routes(ns)
        assert len(routes) == 1 and "gateway" not in routes[0] and routes[0]["dev"] == "eth0"
    assert ping("x", "10.1.214.10") and ping("y", "192.168.214.10")
    assert ping("x", "y")


def test_v6_only_l2(eth0):
    ok("network", "create", "--subnet", "2001:db8:abc2::/64", "--gateway", "2001:db8:abc2::22",
       "-o", "parent=eth0", "--ipv6", "v6net")
    netns_add("p")
    netns_add("q")
    ok("attach", "p", "v6net")
    ok("attach", "q", "v6net")
    a = addrs("eth0", "p")
    assert "2001:db8:abc2::1/64" in a
    assert any(x.startswith("172.18.") for x in a)  # the default v4 subnet too
    r6 = default_routes("p", 6)
    assert r6 and r6[0]["gateway"] == "2001:db8:abc2::22"
    assert ping("p", "2001:db8:abc2::2", v6=True)
    assert ping("q", "p", v6=True)


@pytest.mark.parametrize("mode", ["l2", "l3"])
def test_dual_stack_static(eth0, mode):
    ok("network", "create", "--subnet", "192.168.50.0/24", "--subnet", "2001:db8:50::/64",
       "-o", f"ipvlan_mode={mode}", "-o", "parent=eth0.50", "dual")
    netns_add("d1")
    netns_add("d2")
    ok("attach", "--ip", "192.168.50.10", "--ip6", "2001:db8:50::10", "d1", "dual")
    ok("attach", "--ip", "192.168.50.11", "--ip6", "2001:db8:50::11", "d2", "dual")
    assert addrs("eth0", "d1") == {"192.168.50.10/24", "2001:db8:50::10/64"}
    r4, r6 = default_routes("d1", 4), default_routes("d1", 6)
    if mode == "l2":
        assert r4[0]["gateway"] == "192.168.50.1" and r6[0]["gateway"] == "2001:db8:50::1"
    else:
        assert "gateway" not in r4[0] and "gateway" not in r6[0]
    assert ping("d1", "192.168.50.11") and ping("d1", "2001:db8:50::11", v6=True)
    assert ping("d2", "d1", v6=True)
    c = endpoints("dual")["d1"]
    assert c["IPv4Address"] == "192.168.50.10/24" and c["IPv6Address"] == "2001:db8:50::10/64"


def test_reuse_released_ip6(eth0):
    ok("network", "create", "--subnet", "2001:db8:60::/64", "-o", "parent=eth0", "v6")
    netns_add("r")
    for _ in range(3):
        ok("attach", "--ip6", "2001:db8:60::50", "r", "v6")
        assert "2001:db8:60::50/64" in addrs("eth0", "r")
        ok("detach", "r", "v6")
        assert ns_links("r") == {"lo"}
    assert store()["networks"]["v6"]["endpoints"] == {}


ATTACH_STEPS = ["link_add", "link_set", "sysctl", "addr_add", "link_set:2", "link_set:3", "route_add"]


@pytest.mark.parametrize("fault", ATTACH_STEPS)
def test_attach_rollback_at_each_step(eth0, monkeypatch, fault):
    ok("network", "create", "--subnet", "10.90.0.0/24", "--subnet", "2001:db8:90::/64", "-o", "parent=eth0", "rb")
    netns_add("victim")
    before = store_bytes()
    monkeypatch.setenv("IPVNET_FAULT", fault)
    fails(5, "attach", "victim", "rb")
    assert ns_links("victim") == {"lo"}
    assert ip("addr", "show", ns="victim")[0].get("addr_info", []) in ([], None) or all(
        a["scope"] == "host" for a in ip("addr", "show", ns="victim")[0]["addr_info"])
    assert default_routes("victim") == []
    assert store_bytes() == before
    assert not os.path.exists("/etc/netns/victim")
    monkeypatch.delenv("IPVNET_FAULT")
    ok("attach", "victim", "rb")  # and the address is still free
    assert "10.90.0.2/24" in addrs("eth0", "victim")


def test_attach_create_rollback_removes_namespace(eth0, monkeypatch):
    ok("network", "create", "--subnet", "10.91.0.0/24", "-o", "parent=eth0", "rbc")
    monkeypatch.setenv("IPVNET_FAULT", "addr_add")
    fails(5, "attach", "--create", "fresh", "rbc")
    assert not os.path.exists("/run/netns/fresh")


def test_detach_when_namespace_already_deleted(eth0):
    ok("network", "create", "--subnet", "10.92.0.0/24", "-o", "parent=eth0", "gone")
    netns_add("g")
    ok("attach", "--ip", "10.92.0.9", "g", "gone")
    subprocess.run(["ip", "netns", "del", "g"], check=True)
    ok("detach", "g", "gone")
    assert store()["networks"]["gone"]["endpoints"] == {}
    netns_add("h")
    ok("attach", "--ip", "10.92.0.9", "h", "gone")  # address was released
    r = fails(3, "detach", "g", "gone")
    assert "not attached" in r.err


def test_two_networks_one_default_route_and_handover(eth0):
    ok("network", "create", "--subnet", "10.100.0.0/24", "--subnet", "2001:db8:100::/64", "-o", "parent=eth0.100", "n1")
    ok("network", "create", "--subnet", "10.101.0.0/24", "--subnet", "2001:db8:101::/64", "-o", "parent=eth0.101", "n2")
    netns_add("multi")
    ok("attach", "multi", "n1")
    ok("attach", "multi", "n2")
    assert ns_links("multi") == {"lo", "eth0", "eth1"}
    assert [(r["gateway"], r["dev"]) for r in default_routes("multi")] == [("10.100.0.1", "eth0")]
    assert [(r["gateway"], r["dev"]) for r in default_routes("multi", 6)] == [("2001:db8:100::1", "eth0")]
    ok("detach", "multi", "n1")
    assert [(r["gateway"], r["dev"]) for r in default_routes("multi")] == [("10.101.0.1", "eth1")]
    assert [(r["gateway"], r["dev"]) for r in default_routes("multi", 6)] == [("2001:db8:101::1", "eth1")]
    # gw-priority beats attach order
    ok("attach", "--gw-priority", "5", "multi", "n1")
    assert [(r["gateway"], r["dev"]) for r in default_routes("multi")] == [("10.100.0.1", "eth0")]
    ok("detach", "multi", "n2")
    assert [(r["gateway"], r["dev"]) for r in default_routes("multi")] == [("10.100.0.1", "eth0")]


def test_internal_network_has_no_default_route():
    ok("network", "create", "--subnet", "10.110.0.0/24", "iso")
    netns_add("i1")
    netns_add("i2")
    ok("attach", "i1", "iso")
    ok("attach", "i2", "iso")
    assert default_routes("i1") == []
    assert ping("i1", "i2")


def test_hosts_and_resolv_conf(eth0):
    ok("network", "create", "--subnet", "10.120.0.0/24", "-o", "parent=eth0", "names")
    ok("network", "create", "--subnet", "10.121.0.0/24", "-o", "parent=eth0.121", "other")
    for ns in ("h1", "h2", "h3"):
        netns_add(ns)
    ok("attach", "--alias", "web", "h1", "names")
    ok("attach", "h2", "names")
    ok("attach", "h3", "other")
    ok("attach", "h2", "other")  # h2 is multi-homed: a combined file
    assert os.path.islink("/etc/netns/h1/hosts")
    assert not os.path.islink("/etc/netns/h2/hosts")
    hosts = lambda ns: subprocess.run(["ip", "netns", "exec", ns, "cat", "/etc/hosts"],  # noqa: E731
                                      capture_output=True, text=True).stdout
    assert "10.120.0.2\th1 web" in hosts("h2") and "10.121.0.2\th3" in hosts("h2")
    assert "10.120.0.3\th2" in hosts("h1") and "h3" not in hosts("h1")
    assert ping("h2", "web") and ping("h2", "h3") and ping("h3", "h2")
    with open("/etc/netns/h1/resolv.conf") as f:
        text = f.read()
    assert "nameserver 127." not in text
    ok("detach", "h1", "names")
    assert not os.path.exists("/etc/netns/h1")
    assert "h1" not in hosts("h2")


def test_run_ns_runs_and_cleans_up(eth0):
    ok("network", "create", "--subnet", "10.130.0.0/24", "-o", "parent=eth0", "run")
    netns_add("peer")
    ok("attach", "peer", "run")
    r = cli("run-ns", "--net", "run", "--name", "job", "--rm", "--", "ping", "-c1", "-W2", "peer")
    assert r.code == 0, r.err
    assert not os.path.exists("/run/netns/job")
    assert list(store()["networks"]["run"]["endpoints"]) == ["peer"]
    r = cli("run-ns", "--net", "run", "--rm", "--", "sh", "-c", "exit 7")
    assert r.code == 7
    assert os.listdir("/run/netns") == ["peer"]
    assert list(store()["networks"]["run"]["endpoints"]) == ["peer"]
    r = cli("run-ns", "--net", "run", "--name", "keep", "--", "true")
    assert r.code == 0 and os.path.exists("/run/netns/keep")
    assert "10.130.0.3/24" in addrs("eth0", "keep")


def test_exec_binds_hosts(eth0):
    ok("network", "create", "--subnet", "10.131.0.0/24", "-o", "parent=eth0", "ex")
    netns_add("e1")
    netns_add("e2")
    ok("attach", "e1", "ex")
    ok("attach", "e2", "ex")
    r = subprocess.run([os.sys.executable, "-m", "ipvnet", "exec", "e1", "--", "ping", "-c1", "-W2", "e2"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([os.sys.executable, "-m", "ipvnet", "exec", "e1", "--", "sh", "-c", "exit 3"])
    assert r.returncode == 3


def test_bad_attach_inputs_leave_nothing(eth0):
    ok("network", "create", "--subnet", "10.140.0.0/24", "-o", "parent=eth0", "bad")
    netns_add("b1")
    netns_add("b2")
    ok("attach", "--ip", "10.140.0.5", "b1", "bad")
    before = store_bytes()
    assert "not found" in fails(3, "attach", "b2", "nonet").err
    assert "does not exist" in fails(3, "attach", "nons", "bad").err
    assert "in use by namespace b1" in fails(4, "attach", "--ip", "10.140.0.5", "b2", "bad").err
    assert "not in a subnet" in fails(2, "attach", "--ip", "10.141.0.5", "b2", "bad").err
    assert "gateway" in fails(2, "attach", "--ip", "10.140.0.1", "b2", "bad").err
    assert "broadcast" in fails(2, "attach", "--ip", "10.140.0.255", "b2", "bad").err
    assert "already attached" in fails(4, "attach", "b1", "bad").err
    assert "invalid namespace" in fails(2, "attach", "../x", "bad").err
    assert "no IPv6 subnet" in fails(2, "attach", "--ip6", "2001:db8::1", "b2", "bad").err
    assert store_bytes() == before
    assert ns_links("b2") == {"lo"}
    assert not os.path.exists("/run/netns/nons")


def test_rm_refuses_while_attached_then_force(eth0):
    ok("network", "create", "--subnet", "10.150.0.0/24", "-o", "parent=eth0.150", "busy")
    netns_add("u1")
    netns_add("u2")
    ok("attach", "u1", "busy")
    ok("attach", "u2", "busy")
    r = fails(4, "network", "rm", "busy")
    assert "u1, u2" in r.err
    ok("network", "rm", "--force", "busy")
    assert ns_links("u1") == {"lo"} and link("eth0.150") is None


def test_kernel_rejects_duplicate_address_clearly(eth0):
    """The kernel refuses an address a sibling on the same parent holds (a
    second guard behind IPAM): here the sibling was made by hand."""
    ok("network", "create", "--subnet", "10.170.0.0/24", "-o", "parent=eth0", "dupk")
    netns_add("manual")
    subprocess.run(["ip", "link", "add", "mv0", "link", "eth0", "netns", "manual", "type", "ipvlan", "mode", "l2"],
                   check=True)
    subprocess.run(["ip", "-n", "manual", "addr", "add", "10.170.0.2/24", "dev", "mv0"], check=True)
    subprocess.run(["ip", "-n", "manual", "link", "set", "mv0", "up"], check=True)
    netns_add("k")
    before = store_bytes()
    r = fails(4, "attach", "k", "dupk")
    assert "already assigned" in r.err
    assert ns_links("k") == {"lo"} and store_bytes() == before


def test_rm_force_many_namespaces_with_few_file_descriptors(eth0, tmp_path):
    """rm --force (and restore, apply) visit every namespace: sockets must not pile up."""
    import resource

    ok("network", "create", "--subnet", "10.200.0.0/16", "-o", "parent=eth0.200", "wide")
    names = [f"w{i}" for i in range(100)]
    (tmp_path / "f.toml").write_text('[networks.wide]\nsubnets = ["10.200.0.0/16"]\noptions = { parent = "eth0.200" }\n'
                                     + "".join(f"[networks.wide.namespaces.{n}]\n" for n in names))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # each pyroute2 socket holds ~4 fds
    try:
        ok("apply", str(tmp_path / "f.toml"))
        assert len(store()["networks"]["wide"]["endpoints"]) == 100
        ok("network", "rm", "--force", "wide")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert link("eth0.200") is None
    assert all(link_names(n) == {"lo"} for n in names)
