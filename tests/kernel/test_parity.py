"""Docker parity on the real kernel: internal L3 routing (the guide's no-parent
example), gateways matched by containment, internal DNS and gateways, /31 and
/32, overlapping networks, --ipv4=false."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import time

import pytest
import tomli_w

from ipvnet import netns
from tests.kernel.helpers import (
    addrs,
    cli,
    default_routes,
    fails,
    ip,
    link_names,
    netns_add,
    network_file,
    ok,
    ping,
    store,
    store_bytes,
)


def routes(ns: str, family: int = 4) -> list[tuple[str, str]]:
    return [(r["dst"], r.get("dev", "")) for r in ip(f"-{family}", "route", "show", ns=ns)]


def unreachable(ns: str, target: str) -> str:
    """Ping TARGET from NS; returns ping's error text (no packet can leave: NS has no route)."""
    r = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W1", target], capture_output=True, text=True)
    assert r.returncode != 0
    return r.stdout + r.stderr


def sysctl(ns: str, key: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "cat", f"/proc/sys/net/{key}"],
                          capture_output=True, text=True, check=True).stdout.strip()


def inspect(net: str) -> dict:
    return json.loads(ok("network", "inspect", net).out)[0]


# --- 1. internal L3/L3S: the network's subnets reach each other, nothing else ---------


@pytest.mark.parametrize("mode", ["l3", "l3s"])
def test_guide_no_parent_l3_two_subnets_reach_each_other_and_nothing_else(mode):
    ok("network", "create", "--subnet=192.168.214.0/24", "--subnet=10.1.214.0/24", "-o", f"ipvlan_mode={mode}",
       "ipnet210")
    ok("attach", "--create", "--ip", "192.168.214.10", "a", "ipnet210")
    ok("attach", "--create", "--ip", "10.1.214.10", "b", "ipnet210")
    assert routes("a") == [("10.1.214.0/24", "eth0"), ("192.168.214.0/24", "eth0")]
    assert routes("b") == [("10.1.214.0/24", "eth0"), ("192.168.214.0/24", "eth0")]
    assert default_routes("a") == [] and default_routes("b") == []
    assert ping("a", "10.1.214.10") and ping("b", "192.168.214.10")
    assert ping("a", "b") and ping("b", "a")  # by name
    assert "Network is unreachable" in unreachable("a", "8.8.8.8")
    ok("check")
    # drift: a lost subnet route is reported and repaired
    subprocess.run(["ip", "-n", "a", "route", "del", "10.1.214.0/24", "dev", "eth0"], check=True)
    assert "route 10.1.214.0/24 dev eth0 of a is missing" in cli("check").out
    ok("check", "--repair")
    assert ping("a", "b")
    ok("network", "rm", "--force", "ipnet210")


def test_internal_l2_with_parent_has_no_gateway_no_default_route_and_reaches_nothing_else(eth0):
    ok("network", "create", "--internal", "--subnet", "10.70.0.0/24", "-o", "parent=eth0", "int2")
    assert "Gateway" not in inspect("int2")["IPAM"]["Config"][0]
    ok("attach", "--create", "i1", "int2")
    ok("attach", "--create", "i2", "int2")
    assert addrs("eth0", "i1") == {"10.70.0.1/24"}  # no gateway reserved: .1 is a namespace's
    assert default_routes("i1") == []
    assert ping("i1", "i2")
    assert "Network is unreachable" in unreachable("i1", "8.8.8.8")
    assert "eth0" in link_names()  # --internal with a parent keeps the parent


# --- 2. gateways, ranges and aux addresses by containment -------------------------------

ORDERS = [
    ["--subnet", "172.28.12.0/24", "--gateway", "172.28.12.254", "--subnet", "172.28.10.0/24",
     "--subnet", "2001:db8:abc7::/64", "--gateway", "2001:db8:abc7::254"],
    ["--gateway", "2001:db8:abc7::254", "--gateway", "172.28.12.254", "--subnet", "2001:db8:abc7::/64",
     "--subnet", "172.28.10.0/24", "--subnet", "172.28.12.0/24"],
    ["--subnet", "172.28.10.0/24", "--gateway", "2001:db8:abc7::254", "--subnet", "172.28.12.0/24",
     "--subnet", "2001:db8:abc7::/64", "--gateway", "172.28.12.254"],
]


@pytest.mark.parametrize("order", range(len(ORDERS)))
def test_dual_stack_multi_subnet_l2_gateways_in_any_order(eth0, order):
    ok("network", "create", *ORDERS[order], "-o", "parent=eth0.12", "dual")
    config = {c["Subnet"]: c.get("Gateway") for c in inspect("dual")["IPAM"]["Config"]}
    assert config == {"172.28.12.0/24": "172.28.12.254", "172.28.10.0/24": "172.28.10.1",
                      "2001:db8:abc7::/64": "2001:db8:abc7::254"}
    ok("attach", "--create", "--ip", "172.28.12.10", "--ip6", "2001:db8:abc7::10", "d1", "dual")
    ok("attach", "--create", "--ip", "172.28.10.10", "--ip6", "2001:db8:abc7::11", "d2", "dual")
    assert [r["gateway"] for r in default_routes("d1")] == ["172.28.12.254"]
    assert [r["gateway"] for r in default_routes("d1", 6)] == ["2001:db8:abc7::254"]
    assert [r["gateway"] for r in default_routes("d2")] == ["172.28.10.1"]
    assert ping("d1", "2001:db8:abc7::11", v6=True) and ping("d2", "d1")


def test_dual_stack_multi_subnet_l3_across_subnets(eth0):
    r = ok("network", "create", "--subnet", "10.81.0.0/24", "--gateway", "10.81.0.254", "--subnet", "fd81:1::/64",
           "--subnet", "10.82.0.0/24", "--subnet", "fd81:2::/64", "-o", "parent=eth0", "-o", "ipvlan_mode=l3", "l3d")
    assert "--gateway is ignored" in r.err
    ok("attach", "--create", "--ip", "10.81.0.5", "--ip6", "fd81:1::5", "x", "l3d")
    ok("attach", "--create", "--ip", "10.82.0.5", "--ip6", "fd81:2::5", "y", "l3d")
    assert [r.get("dev") for r in default_routes("x", 6)] == ["eth0"]
    assert ping("x", "10.82.0.5") and ping("y", "fd81:1::5", v6=True) and ping("x", "fd81:2::5", v6=True)


GATEWAY_ERRORS = [
    (["--subnet", "10.90.0.0/24", "--gateway", "10.91.0.1"], "gateway 10.91.0.1 is not in any --subnet"),
    (["--subnet", "10.90.0.0/24", "--gateway", "10.90.0.1", "--gateway", "10.90.0.2"], "two gateways for subnet"),
    (["--subnet", "10.90.0.0/24", "--ip-range", "10.90.0.0/25", "--ip-range", "10.90.0.128/25"], "two --ip-range"),
    (["--subnet", "10.90.0.0/24", "--ip-range", "10.92.0.0/25"], "not inside any --subnet"),
    (["--subnet", "10.90.0.0/24", "--aux-address", "r=10.93.0.1"], "not inside any subnet"),
    (["--ipv4=false", "--subnet", "10.90.0.0/24", "--ipv6"], "--ipv4=false with an IPv4 --subnet"),
    (["--ipv4=false"], "without addresses"),
]


@pytest.mark.parametrize("args,text", GATEWAY_ERRORS, ids=[e[1] for e in GATEWAY_ERRORS])
def test_containment_errors_are_one_line_and_leave_nothing(eth0, args, text):
    before_store, before_links = store_bytes(), link_names()
    assert text in fails(2, "network", "create", *args, "-o", "parent=eth0.90", "bad").err
    assert store_bytes() == before_store and link_names() == before_links


# --- 3. resolv.conf for internal, parent and mixed namespaces -------------------------------


@pytest.fixture
def host_resolv(tmp_path):
    """A known /etc/resolv.conf, bound over the real one in the sandbox's private mount namespace."""
    f = tmp_path / "resolv.conf"
    f.write_text("search example.com\nnameserver 127.0.0.53\nnameserver 192.0.2.53\n")
    target = os.path.realpath("/etc/resolv.conf").encode()  # a bind mount follows a symlink at its target
    libc = netns.libc()
    assert libc.mount(str(f).encode(), target, None, netns.MS_BIND, None) == 0, os.strerror(ctypes.get_errno())
    yield "192.0.2.53"
    libc.umount2(target, netns.MNT_DETACH)


def resolv(ns: str) -> str:
    with open(f"/etc/netns/{ns}/resolv.conf") as f:
        return f.read()


def test_resolv_conf_internal_parent_and_mixed(eth0, host_resolv):
    ok("network", "create", "--subnet", "10.95.0.0/24", "iso")                      # no parent: internal
    ok("network", "create", "--subnet", "10.96.0.0/24", "-o", "parent=eth0", "lan")
    ok("attach", "--create", "r1", "iso")
    ok("attach", "--create", "r2", "iso")
    ok("attach", "--create", "r3", "lan")
    assert "nameserver" not in resolv("r1").replace("name server", "")
    assert f"nameserver {host_resolv}" in resolv("r3") and "127.0.0.53" not in resolv("r3")
    t0 = time.monotonic()
    r = subprocess.run(["ip", "netns", "exec", "r1", "getent", "hosts", "outside.example.com"], capture_output=True)
    assert r.returncode != 0 and time.monotonic() - t0 < 2.0  # fails at once, no timeout
    assert b"r2" in subprocess.run(["ip", "netns", "exec", "r1", "getent", "hosts", "r2"], capture_output=True).stdout
    ok("attach", "r1", "lan")       # now also on a routed network: the host's servers
    assert f"nameserver {host_resolv}" in resolv("r1")
    ok("detach", "r1", "lan")       # internal only again
    assert "nameserver" not in resolv("r1").replace("name server", "")


# --- 4. /31 and /32 -------------------------------------------------------------------------

TINY = [
    (["-o", "parent=eth0"], "10.97.0.0/31", ["10.97.0.1/31"]),                      # L2: gateway .0 + one
    (["--internal", "-o", "parent=eth0"], "10.97.0.0/31", ["10.97.0.0/31", "10.97.0.1/31"]),
    (["-o", "ipvlan_mode=l3", "-o", "parent=eth0"], "10.97.0.0/31", ["10.97.0.0/31", "10.97.0.1/31"]),
    (["-o", "ipvlan_mode=l3s", "-o", "parent=eth0"], "10.97.0.0/31", ["10.97.0.0/31", "10.97.0.1/31"]),
    ([], "10.97.0.0/31", ["10.97.0.0/31", "10.97.0.1/31"]),                          # no parent: internal
    (["-o", "ipvlan_mode=l3", "-o", "parent=eth0"], "10.97.0.9/32", ["10.97.0.9/32"]),
    (["--internal", "-o", "parent=eth0"], "10.97.0.9/32", ["10.97.0.9/32"]),
]


@pytest.mark.parametrize("args,cidr,want", TINY, ids=[f"{' '.join(t[0])} {t[1]}" for t in TINY])
def test_tiny_subnets(eth0, args, cidr, want):
    ok("network", "create", "--subnet", cidr, *args, "tiny")
    got = []
    for i in range(len(want)):
        ok("attach", "--create", f"t{i}", "tiny")
        got.extend(addrs("eth0", f"t{i}"))
    assert got == want
    assert "no free IPv4 address" in fails(4, "attach", "--create", "extra", "tiny").err
    assert not os.path.exists("/run/netns/extra")
    if len(want) == 2:
        assert ping("t0", want[1].split("/")[0]) and ping("t1", want[0].split("/")[0])


def test_tiny_ipv6_subnets(eth0):
    ok("network", "create", "--subnet", "fd97::/127", "--subnet", "10.98.0.0/24", "-o", "parent=eth0",
       "-o", "ipvlan_mode=l3", "v6tiny")
    ok("attach", "--create", "u0", "v6tiny")
    ok("attach", "--create", "u1", "v6tiny")
    assert {a for a in addrs("eth0", "u0") if ":" in a} == {"fd97::/127"}
    assert {a for a in addrs("eth0", "u1") if ":" in a} == {"fd97::1/127"}
    assert ping("u0", "fd97::1", v6=True)
    assert "no free IPv6 address" in fails(4, "attach", "--create", "u2", "v6tiny").err


# --- 5. overlapping subnets ---------------------------------------------------------------------


def test_same_subnet_on_two_vlans_allocates_independently(eth0):
    ok("network", "create", "--subnet", "10.5.0.0/24", "-o", "parent=eth0.20", "t20")
    ok("network", "create", "--subnet", "10.5.0.0/24", "-o", "parent=eth0.30", "t30")
    for ns, net in (("a20", "t20"), ("b20", "t20"), ("a30", "t30"), ("b30", "t30")):
        ok("attach", "--create", ns, net)
    assert addrs("eth0", "a20") == addrs("eth0", "a30") == {"10.5.0.2/24"}
    assert ping("a20", "b20") and ping("a30", "b30")
    # the default pool still skips subnets in use by any network
    ok("network", "create", "--subnet", "172.18.0.0/16", "-o", "parent=eth0.40", "taken")
    ok("network", "create", "-o", "parent=eth0.41", "auto")
    assert [c["Subnet"] for c in inspect("auto")["IPAM"]["Config"]] == ["172.19.0.0/16"]


def test_overlapping_networks_on_one_parent_share_one_address_space(eth0):
    ok("network", "create", "--subnet", "10.6.0.0/24", "--ip-range", "10.6.0.0/25", "-o", "parent=eth0.44", "lo44")
    ok("network", "create", "--subnet", "10.6.0.0/24", "--ip-range", "10.6.0.128/25", "-o", "parent=eth0.44", "hi44")
    ok("attach", "--create", "a1", "lo44")
    assert addrs("eth0", "a1") == {"10.6.0.2/24"}
    netns_add("b1")
    before = store_bytes()
    err = fails(4, "attach", "--ip", "10.6.0.2", "b1", "hi44").err
    assert "10.6.0.2 is already in use by namespace a1 on network lo44" in err
    assert store_bytes() == before and link_names("b1") == {"lo"}
    ok("attach", "b1", "hi44")
    assert addrs("eth0", "b1") == {"10.6.0.128/24"}
    ok("attach", "--create", "--ip", "10.6.0.3", "b2", "hi44")   # outside hi44's range, free on the parent
    assert ping("a1", "10.6.0.128") and ping("b2", "10.6.0.2")  # one L2 domain (by address: other networks)
    ok("check")
    # a store that holds one address twice on one parent (hand-edited) is drift
    data = store()["networks"]["hi44"]
    data["endpoints"]["b1"]["ipv4"] = "10.6.0.2/24"
    with open(network_file("hi44"), "wb") as f:
        f.write(tomli_w.dumps(data).encode())
    r = cli("check", "--format", "json")
    assert r.code == 9
    dup = [d for d in json.loads(r.out) if d["kind"] == "duplicate-address"]
    assert [d["message"] for d in dup] == [
        "address 10.6.0.2 on parent eth0.44 is held by namespace b1 on network hi44 and by namespace a1 on network lo44"
    ]


def test_l3_subnet_over_the_parents_own_address_warns(eth0):
    subprocess.run(["ip", "addr", "add", "10.7.0.1/24", "dev", "eth0"], check=True)
    r = ok("network", "create", "--subnet", "10.7.0.0/24", "-o", "parent=eth0", "-o", "ipvlan_mode=l3", "l3h")
    assert "holds 10.7.0.1, an address of parent eth0" in r.err
    r = ok("network", "create", "--subnet", "10.7.0.0/24", "-o", "parent=eth0.7", "l2h")  # L2: the guide's case
    assert r.err == ""


# --- 6. --ipv4=false --------------------------------------------------------------------------------


def test_ipv4_false_gives_an_ipv6_only_network(eth0):
    ok("network", "create", "--ipv4=false", "--ipv6", "-o", "parent=eth0.61", "v6only")
    info = inspect("v6only")
    assert info["EnableIPv4"] is False and info["EnableIPv6"] is True
    assert [":" in c["Subnet"] for c in info["IPAM"]["Config"]] == [True]
    ok("attach", "--create", "s1", "v6only")
    ok("attach", "--create", "s2", "v6only")
    assert all(":" in a for a in addrs("eth0", "s1")) and len(addrs("eth0", "s1")) == 1
    assert sysctl("s1", "ipv6/conf/eth0/disable_ipv6") == "0"
    assert default_routes("s1") == [] and len(default_routes("s1", 6)) == 1
    assert ping("s1", "s2", v6=True)
    assert "no IPv4 subnet" in fails(2, "attach", "--create", "--ip", "10.0.0.5", "s3", "v6only").err
