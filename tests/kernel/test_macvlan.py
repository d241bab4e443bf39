"""The macvlan driver. These need only veth and macvlan, so `make test` runs
them on this host's own kernel (in the sandbox, with a veth `eth0`) as well
as in the UML guest (with a dummy `eth0`)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.kernel.helpers import addrs, default_routes, fails, link, link_names, netns_add, ok, ping, store, store_bytes

pytestmark = pytest.mark.hostkernel


def test_macvlan_l2_ping_routes_and_macs(eth0):
    ok("network", "create", "-d", "macvlan", "--subnet", "10.160.0.0/24", "--subnet", "2001:db8:160::/64",
       "-o", "parent=eth0", "mac")
    netns_add("mv1")
    netns_add("mv2")
    ok("attach", "--mac", "02:00:00:00:00:aa", "mv1", "mac")
    ok("attach", "mv2", "mac")
    li = link("eth0", "mv1")
    assert li["linkinfo"]["info_kind"] == "macvlan" and li["linkinfo"]["info_data"]["mode"] == "bridge"
    assert li["address"] == "02:00:00:00:00:aa"
    mac2 = link("eth0", "mv2")["address"]
    assert mac2 != li["address"] and int(mac2.split(":")[0], 16) & 0x03 == 0x02  # unicast, locally administered
    assert json.loads(ok("network", "inspect", "mac").out)[0]["Containers"]["mv2"]["MacAddress"] == mac2
    assert addrs("eth0", "mv1") == {"10.160.0.2/24", "2001:db8:160::2/64"}
    assert default_routes("mv1")[0]["gateway"] == "10.160.0.1"
    assert default_routes("mv1", 6)[0]["gateway"] == "2001:db8:160::1"
    assert ping("mv1", "mv2") and ping("mv2", "mv1", v6=True)
    ok("detach", "mv1", "mac")
    assert link_names("mv1") == {"lo"}


@pytest.mark.parametrize("mode", ["vepa", "private", "passthru"])
def test_macvlan_modes_recorded_in_kernel(eth0, mode):
    ok("network", "create", "-d", "macvlan", "--subnet", "10.161.0.0/24", "-o", "parent=eth0",
       "-o", f"macvlan_mode={mode}", "m")
    netns_add("a")
    ok("attach", "a", "m")
    assert link("eth0", "a")["linkinfo"]["info_data"]["mode"] == mode


def test_passthru_allows_one_link_and_no_sharing(eth0):
    ok("network", "create", "-d", "macvlan", "--subnet", "10.162.0.0/24", "-o", "parent=eth0",
       "-o", "macvlan_mode=passthru", "pt")
    netns_add("a")
    netns_add("b")
    ok("attach", "a", "pt")
    before = store_bytes()
    assert "passthru" in fails(4, "attach", "b", "pt").err
    assert "passthru" in fails(4, "network", "create", "-d", "macvlan", "--subnet", "10.163.0.0/24",
                               "-o", "parent=eth0", "other").err
    assert store_bytes() == before and link_names("b") == {"lo"}


def test_macvlan_shares_parent_but_not_with_ipvlan(eth0):
    ok("network", "create", "-d", "macvlan", "--subnet", "10.164.0.0/24", "-o", "parent=eth0", "m1")
    ok("network", "create", "-d", "macvlan", "--subnet", "10.165.0.0/24", "-o", "parent=eth0", "m2")
    assert "macvlan" in fails(4, "network", "create", "--subnet", "10.166.0.0/24", "-o", "parent=eth0", "ip").err


@pytest.mark.parametrize("fault", ["link_add", "link_set", "addr_add", "route_add"])
def test_macvlan_attach_rollback(eth0, monkeypatch, fault):
    ok("network", "create", "-d", "macvlan", "--subnet", "10.167.0.0/24", "-o", "parent=eth0", "rb")
    netns_add("v")
    before = store_bytes()
    monkeypatch.setenv("IPVNET_FAULT", fault)
    fails(5, "attach", "v", "rb")
    assert link_names("v") == {"lo"} and store_bytes() == before and not os.path.exists("/etc/netns/v")


def test_macvlan_run_ns_and_names(eth0):
    ok("network", "create", "-d", "macvlan", "--subnet", "10.168.0.0/24", "-o", "parent=eth0", "rn")
    netns_add("srv")
    ok("attach", "--alias", "web", "srv", "rn")
    from tests.kernel.helpers import cli

    r = cli("run-ns", "--net", "rn", "--rm", "--", "ping", "-c1", "-W2", "web")
    assert r.code == 0, r.err
    assert os.listdir("/run/netns") == ["srv"]
    assert list(store()["networks"]["rn"]["endpoints"]) == ["srv"]


def test_macvlan_host_access(eth0):
    ok("network", "create", "-d", "macvlan", "--subnet", "10.169.0.0/24", "-o", "parent=eth0",
       "-o", "host_access=10.169.0.250", "ha")
    r = json.loads(ok("network", "inspect", "ha").out)[0]
    shim = "mh-" + r["Id"][:12]
    assert link(shim)["linkinfo"]["info_kind"] == "macvlan"
    assert r["IPAM"]["Config"][0]["AuxiliaryAddresses"] == {"host_access": "10.169.0.250"}
    netns_add("h")
    ok("attach", "h", "ha")
    # from the sandbox's root namespace (the "host" here) to the namespace, and back
    assert subprocess.run(["ping", "-c1", "-W2", "10.169.0.2"], capture_output=True).returncode == 0
    assert ping("h", "10.169.0.250")
    assert "aux-address host_access" in fails(2, "attach", "--ip", "10.169.0.250", "--create", "x", "ha").err
    ok("network", "rm", "--force", "ha")
    assert link(shim) is None and link("eth0") is not None


def test_kernel_without_ipvlan_is_one_clear_line(eth0):
    """On this host's kernel (no ipvlan module) the error path runs for real;
    in the UML guest, which has ipvlan, the same attach simply works."""
    from tests.kernel.conftest import full_kernel

    ok("network", "create", "--subnet", "10.170.0.0/24", "-o", "parent=eth0", "ipv")
    netns_add("k")
    before = store_bytes()
    if full_kernel() is None:
        ok("attach", "k", "ipv")
        assert link("eth0", "k")["linkinfo"]["info_kind"] == "ipvlan"
        return
    r = fails(5, "attach", "k", "ipv")
    assert "does not support ipvlan links" in r.err and "doctor" in r.err
    assert link_names("k") == {"lo"} and store_bytes() == before
    assert not any(name.startswith("ipv") for name in link_names())


def test_doctor_reports_this_kernel(eth0):
    from tests.kernel.conftest import full_kernel

    r = ok("doctor", "--format", "json") if full_kernel() is None else fails_doctor()
    checks = {c["check"]: c["ok"] for c in json.loads(r.out)}
    assert checks["root"] and checks["netns"] and checks["macvlan"]
    assert checks["ipvlan"] is (full_kernel() is None)


def fails_doctor():
    from tests.kernel.helpers import cli

    r = cli("doctor", "--format", "json")
    assert r.code == 5
    return r
