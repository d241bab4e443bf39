"""Host access through a shim link, L3 route export, and check/restore of the shim."""

from __future__ import annotations

import json
import subprocess

from tests.kernel.helpers import cli, fails, link, netns_add, ok, ping


def host_ping(addr: str) -> bool:
    """From the sandbox's root namespace (the host here), never the real host's."""
    return subprocess.run(["ping", "-c1", "-W2", addr], capture_output=True).returncode == 0


def test_ipvlan_host_access_l2(eth0):
    ok("network", "create", "--subnet", "10.180.0.0/24", "--subnet", "2001:db8:180::/64", "-o", "parent=eth0",
       "-o", "host_access=10.180.0.250", "ha")
    net = json.loads(ok("network", "inspect", "ha").out)[0]
    shim = "ih-" + net["Id"][:12]
    li = link(shim)
    assert li["linkinfo"]["info_kind"] == "ipvlan" and "UP" in li["flags"]
    netns_add("a")
    ok("attach", "a", "ha")
    assert host_ping("10.180.0.2")
    assert ping("a", "10.180.0.250")
    routes = subprocess.run(["ip", "-j", "route", "show", "dev", shim], capture_output=True, text=True).stdout
    assert "10.180.0.0/24" in routes
    ok("network", "rm", "--force", "ha")
    assert link(shim) is None


def test_host_access_errors_leave_nothing(eth0):
    assert "not in a subnet" in fails(2, "network", "create", "--subnet", "10.181.0.0/24", "-o", "parent=eth0",
                                      "-o", "host_access=10.99.0.1", "x").err
    assert "gateway" in fails(2, "network", "create", "--subnet", "10.181.0.0/24", "-o", "parent=eth0",
                              "-o", "host_access=10.181.0.1", "x").err
    assert "invalid host_access" in fails(2, "network", "create", "--subnet", "10.181.0.0/24", "-o", "parent=eth0",
                                          "-o", "host_access=banana", "x").err
    assert link_names_root() == {"lo", "eth0"}


def link_names_root() -> set[str]:
    from tests.kernel.helpers import link_names

    return link_names()


def test_host_access_restored_by_repair(eth0):
    ok("network", "create", "--subnet", "10.182.0.0/24", "-o", "parent=eth0", "-o", "host_access=10.182.0.9", "hr")
    shim = "ih-" + json.loads(ok("network", "inspect", "hr").out)[0]["Id"][:12]
    subprocess.run(["ip", "link", "del", shim], check=True)
    r = cli("check", "--format", "json")
    assert r.code == 9 and any(d["subject"] == shim for d in json.loads(r.out))
    ok("check", "--repair")
    assert link(shim) is not None
    netns_add("b")
    ok("attach", "b", "hr")
    assert host_ping("10.182.0.2")


def test_routes_export_l3(eth0):
    subprocess.run(["ip", "addr", "add", "192.0.2.5/24", "dev", "eth0"], check=True)
    ok("network", "create", "--subnet", "10.190.1.0/24", "--subnet", "10.190.2.0/24", "--subnet", "2001:db8:190::/64",
       "-o", "ipvlan_mode=l3", "-o", "parent=eth0", "l3net")
    ok("network", "create", "--subnet", "10.191.0.0/24", "-o", "parent=eth0.191", "l2net")
    for ns, ip in (("a", "10.190.1.10"), ("b", "10.190.2.10")):
        netns_add(ns)
        ok("attach", "--ip", ip, ns, "l3net")
    netns_add("c")
    ok("attach", "c", "l2net")
    assert ok("routes").out.splitlines() == [
        "ip route add 10.190.1.10/32 via 192.0.2.5  # l3net/a",
        "# 2001:db8:190::1/128 (l3net/a): the parent has no IPv6 address to route via",
        "ip route add 10.190.2.10/32 via 192.0.2.5  # l3net/b",
        "# 2001:db8:190::2/128 (l3net/b): the parent has no IPv6 address to route via",
    ]
    assert ok("routes", "--format", "bird", "l3net").out.splitlines()[0] == "route 10.190.1.10/32 via 192.0.2.5;  # l3net/a"
    assert ok("routes", "--format", "frr", "--aggregate").out.splitlines()[:2] == [
        "ip route 10.190.1.0/24 192.0.2.5  ! l3net",
        "ip route 10.190.2.0/24 192.0.2.5  ! l3net",
    ]
    data = json.loads(ok("routes", "--format", "json").out)
    assert data[0] == {"network": "l3net", "namespace": "a", "destination": "10.190.1.10/32", "via": "192.0.2.5"}
    assert ok("routes", "l2net").out == ""
    assert "not found" in fails(3, "routes", "nope").err
