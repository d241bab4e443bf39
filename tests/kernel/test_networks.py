"""`network create/rm/ls/inspect/prune` against a real kernel: each parent
case, each user error leaving kernel and store untouched."""

from __future__ import annotations

import json

import pytest

from tests.kernel.helpers import cli, fails, ip, link, link_names, ok, store, store_bytes


def test_seed_example_vlan_parent_created_and_removed(eth0):
    ok("network", "create", "-d", "ipvlan", "--subnet", "192.168.20.0/24", "-o", "parent=eth0.20", "vlan20")
    li = link("eth0.20")
    assert li is not None
    assert li["linkinfo"]["info_kind"] == "vlan"
    assert li["linkinfo"]["info_data"]["id"] == 20
    assert li["link"] == "eth0"
    assert "UP" in li["flags"]
    net = store()["networks"]["vlan20"]
    assert net["parent_kind"] == "vlan"
    assert net["subnets"] == [{"subnet": "192.168.20.0/24", "gateway": "192.168.20.1"}]
    ok("network", "rm", "vlan20")
    assert link("eth0.20") is None
    assert link("eth0") is not None
    assert store()["networks"] == {}


def test_existing_parent_is_used_and_kept(eth0):
    ok("network", "create", "--subnet", "10.5.0.0/24", "-o", "parent=eth0", "lan")
    assert store()["networks"]["lan"]["parent_kind"] == "existing"
    ok("network", "rm", "lan")
    assert link("eth0") is not None


def test_preexisting_vlan_with_any_name_is_kept(eth0):
    import subprocess

    subprocess.run(["ip", "link", "add", "link", "eth0", "name", "uplink7", "type", "vlan", "id", "7"], check=True)
    subprocess.run(["ip", "link", "add", "link", "eth0", "name", "eth0.8", "type", "vlan", "id", "8"], check=True)
    ok("network", "create", "--subnet", "10.7.0.0/24", "-o", "parent=uplink7", "v7")
    ok("network", "create", "--subnet", "10.8.0.0/24", "-o", "parent=eth0.8", "v8")
    assert store()["networks"]["v8"]["parent_kind"] == "existing"
    ok("network", "rm", "v7", "v8")
    assert link("uplink7") is not None
    assert link("eth0.8") is not None


def test_dummy_parent_created_and_removed():
    r = ok("network", "create", "--subnet", "10.9.0.0/24", "iso")
    net_id = r.out.strip()
    assert len(net_id) == 64
    name = "di-" + net_id[:12]
    assert len(name) == 15
    li = link(name)
    assert li is not None and li["linkinfo"]["info_kind"] == "dummy"
    inspect = json.loads(ok("network", "inspect", "iso").out)[0]
    assert inspect["Internal"] is True
    assert inspect["Options"]["parent"] == name
    ok("network", "rm", "iso")
    assert link(name) is None


def test_macvlan_dummy_parent_name():
    r = ok("network", "create", "-d", "macvlan", "--subnet", "10.19.0.0/24", "mv")
    assert link("dm-" + r.out.strip()[:12]) is not None
    ok("network", "rm", "mv")
    assert not any(n.startswith("dm-") for n in link_names())


def test_shared_vlan_parent_removed_with_last_network(eth0):
    ok("network", "create", "--subnet", "10.20.1.0/24", "-o", "parent=eth0.20", "a")
    ok("network", "create", "--subnet", "10.20.2.0/24", "-o", "parent=eth0.20", "b")
    ok("network", "rm", "a")
    assert link("eth0.20") is not None  # b still uses it
    ok("network", "rm", "b")
    assert link("eth0.20") is None


def test_shared_parent_conflicting_mode_refused(eth0):
    ok("network", "create", "--subnet", "10.21.1.0/24", "-o", "parent=eth0.21", "a")
    before = store_bytes()
    r = fails(4, "network", "create", "--subnet", "10.21.2.0/24", "-o", "parent=eth0.21", "-o", "ipvlan_mode=l3", "b")
    assert "network a" in r.err and "ipvlan_mode" in r.err
    r = fails(4, "network", "create", "--subnet", "10.21.3.0/24", "-o", "parent=eth0.21", "-o", "ipvlan_flag=private", "c")
    assert store_bytes() == before
    r = fails(4, "network", "create", "-d", "macvlan", "--subnet", "10.21.4.0/24", "-o", "parent=eth0.21", "d")
    assert store_bytes() == before


def test_modes_and_flags_are_recorded(eth0):
    ok("network", "create", "--subnet", "10.22.0.0/24", "-o", "parent=eth0", "-o", "ipvlan_mode=l3s",
       "-o", "ipvlan_flag=vepa", "-o", "mtu=1400", "--gateway", "10.22.0.254", "l3s")
    r = ok("network", "inspect", "l3s")
    net = json.loads(r.out)[0]
    assert net["Options"] == {"parent": "eth0", "ipvlan_mode": "l3s", "ipvlan_flag": "vepa", "mtu": "1400"}
    assert net["IPAM"]["Config"] == [{"Subnet": "10.22.0.0/24"}]  # l3: gateway ignored


def test_l3_gateway_warning(eth0):
    r = ok("network", "create", "--subnet", "10.23.0.0/24", "--gateway", "10.23.0.1", "-o", "parent=eth0",
           "-o", "ipvlan_mode=l3", "l3")
    assert "ignored" in r.err


def test_default_pool_and_v6(eth0):
    ok("network", "create", "-o", "parent=eth0", "p1")
    ok("network", "create", "-o", "parent=eth0", "p2")
    ok("network", "create", "-o", "parent=eth0", "--ipv6", "p3")
    ok("network", "create", "-o", "parent=eth0", "--subnet", "2001:db8:1::/64", "v6only")
    nets = {n["Name"]: n for n in json.loads(ok("network", "inspect", "p1", "p2", "p3", "v6only").out)}
    assert nets["p1"]["IPAM"]["Config"][0] == {"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}
    assert nets["p2"]["IPAM"]["Config"][0]["Subnet"] == "172.19.0.0/16"
    p3 = nets["p3"]["IPAM"]["Config"]
    assert p3[0]["Subnet"] == "172.20.0.0/16" and p3[1]["Subnet"].startswith("fd") and p3[1]["Subnet"].endswith("/64")
    assert nets["p3"]["EnableIPv6"] is True
    v6 = nets["v6only"]["IPAM"]["Config"]
    assert [c["Subnet"] for c in v6] == ["172.21.0.0/16", "2001:db8:1::/64"]


def test_default_pool_skips_host_routes(eth0):
    import subprocess

    subprocess.run(["ip", "addr", "add", "172.18.5.1/24", "dev", "eth0"], check=True)
    ok("network", "create", "-o", "parent=eth0", "p")
    assert store()["networks"]["p"]["subnets"][0]["subnet"] == "172.19.0.0/16"


def test_ls_and_json(eth0):
    ok("network", "create", "--subnet", "10.30.0.0/24", "-o", "parent=eth0.30", "vlan30")
    r = ok("network", "ls")
    lines = r.out.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "MODE", "PARENT", "SUBNETS"]
    assert lines[1].split()[1:] == ["vlan30", "ipvlan", "l2", "eth0.30", "10.30.0.0/24"]
    assert "\x1b[" not in r.out
    assert ok("network", "ls", "-q").out == "vlan30\n"
    rows = json.loads(ok("network", "ls", "--format", "json").out)
    assert rows[0]["NAME"] == "vlan30"


def test_prune_removes_unused(eth0):
    ok("network", "create", "--subnet", "10.31.0.0/24", "-o", "parent=eth0.31", "a")
    ok("network", "create", "--subnet", "10.32.0.0/24", "b")
    r = ok("network", "prune")
    assert "a" in r.out.split() and "b" in r.out.split()
    assert store()["networks"] == {}
    assert link_names() == {"lo", "eth0"}


def test_dry_run_changes_nothing(eth0):
    r = ok("network", "create", "--dry-run", "--subnet", "10.33.0.0/24", "-o", "parent=eth0.33", "d")
    assert "ip link add eth0.33 link eth0 type vlan id 33" in r.out
    assert link("eth0.33") is None
    assert store_bytes() is None


# Each user error: one clear line, its exit status, and nothing left behind.
ERRORS = [
    (2, ["--subnet", "10.0.0.0/33"], "invalid subnet"),
    (2, ["--subnet", "10.40.0.1/24"], "host bits"),
    (2, ["--subnet", "10.40.0.0/24", "--gateway", "10.41.0.1"], "not in any --subnet"),
    (4, ["--subnet", "10.51.0.0/16", "--subnet", "10.51.3.0/24"], "overlap"),
    (2, ["-o", "ipvlan_mode=l4"], "ipvlan_mode"),
    (2, ["-o", "ipvlan_flag=nope"], "ipvlan_flag"),
    (2, ["-o", "bogus=1"], "unknown option"),
    (2, ["-o", "parent=eth0.4095"], "vlan id"),
    (2, ["-o", "parent=eth0.0"], "vlan id"),
    (2, ["-o", "parent=averyveryverylongname.20"], "invalid parent"),
    (3, ["-o", "parent=nosuch0.20"], "base interface"),
    (3, ["-o", "parent=nosuch0"], "does not exist"),
    (2, ["-o", "parent=lo"], "'lo' cannot be a parent"),
    (2, ["-o", "mtu=abc"], "mtu"),
]


@pytest.mark.parametrize("code,args,text", ERRORS, ids=[e[2] for e in ERRORS])
def test_user_errors_leave_nothing(eth0, code, args, text):
    ok("network", "create", "--subnet", "10.50.0.0/24", "-o", "parent=eth0.50", "existing")
    before_store, before_links = store_bytes(), link_names()
    r = fails(code, "network", "create", *args, "newnet")
    assert text in r.err
    assert store_bytes() == before_store
    assert link_names() == before_links


def test_duplicate_name_and_bad_name(eth0):
    ok("network", "create", "--subnet", "10.60.0.0/24", "-o", "parent=eth0", "dup")
    before = store_bytes()
    assert "already exists" in fails(4, "network", "create", "--subnet", "10.61.0.0/24", "dup").err
    assert "invalid network name" in fails(2, "network", "create", "../etc", "--subnet", "10.62.0.0/24").err
    assert store_bytes() == before
    assert link_names() == {"lo", "eth0"}


def test_rm_unknown_network():
    assert "not found" in fails(3, "network", "rm", "ghost").err


def test_kernel_failure_rolls_back(eth0, monkeypatch):
    """A failure after the vlan link exists (bringing it up) removes it again."""
    monkeypatch.setenv("IPVNET_FAULT", "link_set")
    fails(5, "network", "create", "--subnet", "10.70.0.0/24", "-o", "parent=eth0.70", "f")
    assert link("eth0.70") is None
    assert store_bytes() is None


def test_version_and_help():
    assert cli("--version").out.startswith("ipvnet, version")
    assert "Examples:" in ok("network", "create", "--help").out


def test_subnet_config_inspect_shape(eth0):
    ok("network", "create", "--subnet", "10.80.0.0/24", "--ip-range", "10.80.0.128/25", "--aux-address",
       "router=10.80.0.2", "--label", "team=net", "-o", "parent=eth0", "shape")
    n = json.loads(ok("network", "inspect", "shape").out)[0]
    assert set(n) >= {"Name", "Id", "Created", "Driver", "EnableIPv6", "Internal", "IPAM", "Options", "Labels", "Containers"}
    assert n["IPAM"]["Driver"] == "default"
    assert n["IPAM"]["Config"] == [
        {"Subnet": "10.80.0.0/24", "IPRange": "10.80.0.128/25", "Gateway": "10.80.0.1",
         "AuxiliaryAddresses": {"router": "10.80.0.2"}}
    ]
    assert n["Labels"] == {"team": "net"}
    assert ip("link", "show")  # kernel readable
