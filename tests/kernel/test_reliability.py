"""Crash safety, check/repair, restore after a simulated reboot, concurrency
and hostile input, against the real kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kernel.helpers import (
    addrs,
    default_routes,
    fails,
    link,
    link_names,
    netns_add,
    network_file,
    ok,
    ping,
    store,
    store_bytes,
)


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ipvnet", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def all_links() -> dict[str, set[str]]:
    out = {"": link_names()}
    for ns in os.listdir("/run/netns"):
        out[ns] = link_names(ns)
    return out


def drifted(*args: str):
    """`check` found drift: exit 9, a report on stdout."""
    from tests.kernel.helpers import cli

    r = cli(*args)
    assert r.code == 9, f"ipvnet {' '.join(args)} -> {r.code}, wanted 9\n{r.out}\n{r.err}"
    assert "Traceback" not in r.err
    return r


def assert_check_clean() -> None:
    r = ok("check", "--format", "json")
    assert json.loads(r.out) == []


def kill_then_repair(args: list[str], step: str) -> subprocess.CompletedProcess:
    r = run(*args, env={"IPVNET_FAULT": f"kill@{step}"})
    assert r.returncode == -9, f"{args} at {step}: not killed ({r.returncode}): {r.stderr}"
    return r


KILL_CREATE = ["link_add", "journal", "link_set", "hosts", "store"]


@pytest.mark.parametrize("step", KILL_CREATE)
def test_kill_during_create(eth0, step):
    kill_then_repair(["network", "create", "--subnet", "10.1.0.0/24", "-o", "parent=eth0.11", "k"], step)
    if step == "link_add":
        # killed before the vlan link (the first kernel change): only the journal is left
        assert link("eth0.11") is None
    r = drifted("check", "--format", "json")
    assert [d["kind"] for d in json.loads(r.out)] == ["interrupted"]
    ok("check", "--repair")
    assert_check_clean()
    assert link("eth0.11") is None  # the store never recorded the network
    assert store().get("networks", {}) == {}


KILL_ATTACH = ["journal", "link_add", "link_set", "sysctl", "addr_add", "link_set:3", "route_add", "hosts", "store"]


@pytest.mark.parametrize("step", KILL_ATTACH)
def test_kill_during_attach(eth0, step):
    ok("network", "create", "--subnet", "10.2.0.0/24", "--subnet", "2001:db8:2::/64", "-o", "parent=eth0", "ka")
    netns_add("peer")
    ok("attach", "peer", "ka")
    netns_add("k")
    before = store_bytes()
    kill_then_repair(["attach", "k", "ka"], step)
    assert store_bytes() == before
    r = drifted("check", "--format", "json")
    assert any(d["kind"] == "interrupted" for d in json.loads(r.out))
    ok("check", "--repair")
    assert_check_clean()
    assert link_names("k") == {"lo"}
    ok("attach", "k", "ka")  # the address is free again
    assert "10.2.0.3/24" in addrs("eth0", "k")


KILL_DETACH = ["journal", "link_del", "hosts", "store"]


@pytest.mark.parametrize("step", KILL_DETACH)
def test_kill_during_detach(eth0, step):
    ok("network", "create", "--subnet", "10.3.0.0/24", "-o", "parent=eth0", "kd")
    netns_add("k")
    ok("attach", "k", "kd")
    kill_then_repair(["detach", "k", "kd"], step)
    drifted("check")
    ok("check", "--repair")
    assert_check_clean()
    # the detach did not happen as far as the store knows: the attachment is whole again
    assert "10.3.0.2/24" in addrs("eth0", "k")
    assert default_routes("k")[0]["gateway"] == "10.3.0.1"
    ok("detach", "k", "kd")
    assert link_names("k") == {"lo"}


@pytest.mark.parametrize("step", ["journal", "link_del", "store"])
def test_kill_during_rm(eth0, step):
    ok("network", "create", "--subnet", "10.4.0.0/24", "-o", "parent=eth0.14", "kr")
    kill_then_repair(["network", "rm", "kr"], step)
    drifted("check")
    ok("check", "--repair")
    assert_check_clean()
    assert link("eth0.14") is not None and "kr" in store()["networks"]
    ok("network", "rm", "kr")
    assert link("eth0.14") is None


@pytest.mark.parametrize("step", ["link_add", "link_set", "store"])
def test_error_during_create_rolls_back(eth0, monkeypatch, step):
    monkeypatch.setenv("IPVNET_FAULT", step)
    fails(5, "network", "create", "--subnet", "10.5.0.0/24", "-o", "parent=eth0.15", "e")
    assert link("eth0.15") is None and store_bytes() is None
    assert_check_clean()


@pytest.mark.parametrize("step", ["link_del", "hosts", "store"])
def test_error_during_detach_and_rm_leaves_state(eth0, monkeypatch, step):
    ok("network", "create", "--subnet", "10.6.0.0/24", "-o", "parent=eth0", "ed")
    netns_add("x")
    ok("attach", "x", "ed")
    before = store_bytes()
    monkeypatch.setenv("IPVNET_FAULT", step)
    fails(5, "detach", "x", "ed")
    assert store_bytes() == before
    monkeypatch.delenv("IPVNET_FAULT")
    ok("check", "--repair")  # a deleted link (no undo) is recreated from the store
    assert_check_clean()
    assert "10.6.0.2/24" in addrs("eth0", "x")


def simulate_reboot() -> None:
    """What a reboot does to ipvnet's world: namespaces and created links vanish, the boot id changes."""
    for ns in os.listdir("/run/netns"):
        subprocess.run(["ip", "netns", "del", ns], check=True)
    for name in link_names():
        if name not in ("lo", "eth0"):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
    for d in os.listdir("/etc/netns"):
        subprocess.run(["rm", "-rf", os.path.join("/etc/netns", d)], check=True)
    path = os.path.join(os.environ["IPVNET_STATE_DIR"], "host.toml")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace('boot_id = "', 'boot_id = "old-'))


def test_restore_after_reboot(eth0):
    ok("network", "create", "--subnet", "10.7.0.0/24", "--subnet", "2001:db8:7::/64", "-o", "parent=eth0.17", "r1")
    ok("network", "create", "--subnet", "10.8.0.0/24", "-o", "ipvlan_mode=l3", "-o", "parent=eth0", "r2")
    ok("network", "create", "--subnet", "10.9.0.0/24", "iso")
    for ns in ("a", "b"):
        netns_add(ns)
        ok("attach", ns, "r1")
    ok("attach", "--ip", "10.8.0.50", "a", "r2")
    ok("attach", "--create", "c", "iso")
    before = {ns: (addrs("eth0", ns), default_routes(ns), default_routes(ns, 6)) for ns in ("a", "b", "c")}
    before_a1 = addrs("eth1", "a")
    simulate_reboot()
    assert link("eth0.17") is None and not os.path.exists("/run/netns/a")
    r = drifted("check")
    assert "missing" in r.out
    r = ok("restore")
    assert "restored" in r.out
    after = {ns: (addrs("eth0", ns), default_routes(ns), default_routes(ns, 6)) for ns in ("a", "b", "c")}
    assert after == before
    assert addrs("eth1", "a") == before_a1
    assert link("eth0.17")["linkinfo"]["info_data"]["id"] == 17
    assert ping("a", "b") and ping("b", "a", v6=True)
    r = ok("restore")
    assert "nothing to restore" in r.out
    assert_check_clean()
    assert store()["boot_id"] == open("/proc/sys/kernel/random/boot_id").read().strip()


def test_check_reports_stray_and_missing_without_deleting_foreign(eth0):
    ok("network", "create", "--subnet", "10.10.0.0/24", "-o", "parent=eth0", "c1")
    netns_add("n")
    ok("attach", "n", "c1")
    subprocess.run(["ip", "-n", "n", "link", "del", "eth0"], check=True)
    subprocess.run(["ip", "link", "add", "di-0123456789ab", "type", "dummy"], check=True)
    subprocess.run(["ip", "link", "add", "mine", "type", "dummy"], check=True)
    kinds = {d["kind"] for d in json.loads(drifted("check", "--format", "json").out)}
    assert {"missing-link", "stray-link", "route"} <= kinds
    ok("check", "--repair")
    assert_check_clean()
    assert link("di-0123456789ab") is None and link("mine") is not None
    assert "10.10.0.2/24" in addrs("eth0", "n")


def test_missing_existing_parent_is_reported_not_fixed(eth0):
    subprocess.run(["ip", "link", "add", "up9", "type", "dummy"], check=True)
    ok("network", "create", "--subnet", "10.11.0.0/24", "-o", "parent=up9", "p")
    subprocess.run(["ip", "link", "del", "up9"], check=True)
    r = drifted("check")
    assert "does not exist" in r.out
    res = run("check", "--repair")
    assert res.returncode == 9 and link("up9") is None


def test_concurrent_attach_32(eth0):
    ok("network", "create", "--subnet", "10.12.0.0/24", "-o", "parent=eth0", "conc")
    names = [f"c{i}" for i in range(32)]
    for ns in names:
        netns_add(ns)
    procs = [subprocess.Popen([sys.executable, "-m", "ipvnet", "attach", ns, "conc"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for ns in names]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in results), [e for rc, e in results if rc]
    eps = store()["networks"]["conc"]["endpoints"]
    got = [eps[ns]["ipv4"] for ns in names]
    assert len(set(got)) == 32
    assert {a for ns in names for a in addrs("eth0", ns)} == set(got)
    assert_check_clean()


def test_concurrent_mixed(eth0):
    ok("network", "create", "--subnet", "10.13.0.0/24", "-o", "parent=eth0", "base")
    for i in range(6):
        netns_add(f"m{i}")
    for i in range(3):
        ok("attach", f"m{i}", "base")
    cmds = [["detach", f"m{i}", "base"] for i in range(3)]
    cmds += [["attach", f"m{i}", "base"] for i in range(3, 6)]
    cmds += [["network", "create", "--subnet", f"10.14.{i}.0/24", "-o", f"parent=eth0.{40 + i}", f"n{i}"]
             for i in range(4)]
    cmds += [["network", "create", "--subnet", "10.15.0.0/24", "gone"], ["network", "rm", "gone"]]
    procs = [subprocess.Popen([sys.executable, "-m", "ipvnet", *c], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for c in cmds]
    results = [(c, p.wait(timeout=600), p.stderr.read()) for c, p in zip(cmds, procs, strict=True)]
    for c, rc, err in results:
        # `rm gone` may run before its create: then "not found" is the clean failure
        if c[:2] == ["network", "rm"]:
            assert rc in (0, 3), err
        else:
            assert rc == 0, (c, err)
    s = store()["networks"]
    assert set(s["base"]["endpoints"]) == {"m3", "m4", "m5"}
    assert {f"n{i}" for i in range(4)} <= set(s)
    v4 = [e["ipv4"] for e in s["base"]["endpoints"].values()]
    assert len(set(v4)) == 3
    kinds = json.loads(ok("check", "--format", "json").out)
    assert kinds == []


def test_lock_timeout_is_clear(eth0, monkeypatch):
    import fcntl

    ok("network", "create", "--subnet", "10.16.0.0/24", "-o", "parent=eth0", "lk")
    fd = os.open(os.path.join(os.environ["IPVNET_STATE_DIR"], "lock"), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        r = run("network", "create", "--subnet", "10.17.0.0/24", "x", env={"IPVNET_LOCK_TIMEOUT": "0.5"})
        assert r.returncode == 7 and "timed out" in r.stderr and "Traceback" not in r.stderr
    finally:
        os.close(fd)


def test_non_root_is_refused(eth0, monkeypatch):
    ok("network", "create", "--subnet", "10.18.0.0/24", "-o", "parent=eth0", "nr")
    before = store_bytes()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for args in (["network", "create", "--subnet", "10.19.0.0/24", "y"], ["network", "rm", "nr"],
                 ["attach", "--create", "z", "nr"], ["check", "--repair"], ["restore"]):
        r = fails(6, *args)
        assert "root" in r.err
    ok("network", "ls")  # reading needs no root
    assert store_bytes() == before


def test_truncated_store_is_reported_not_rewritten(eth0):
    ok("network", "create", "--subnet", "10.20.0.0/24", "-o", "parent=eth0", "t")
    path = network_file("t")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: data.index(b'id = "') + 10])  # inside a quoted value, as a torn write would
    cut = open(path, "rb").read()
    r = fails(8, "network", "create", "--subnet", "10.21.0.0/24", "-o", "parent=eth0", "u")
    assert path in r.err
    fails(8, "network", "ls")
    assert open(path, "rb").read() == cut
    assert link_names() == {"lo", "eth0"}


def test_symlinks_planted_are_not_followed(eth0, tmp_path):
    ok("network", "create", "--subnet", "10.22.0.0/24", "-o", "parent=eth0", "s")
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.makedirs("/etc/netns/sy", exist_ok=True)
    os.symlink(victim, "/etc/netns/sy/hosts")
    os.symlink(victim, "/etc/netns/sy/resolv.conf")
    netns_add("sy")
    ok("attach", "sy", "s")
    assert victim.read_text() == "precious\n"
    assert os.readlink("/etc/netns/sy/hosts").endswith("/hosts/s")
    # a symlink at the store path is refused, the target untouched
    path = network_file("s")
    os.replace(path, str(tmp_path / "real.toml"))
    os.symlink(victim, path)
    fails(8, "network", "ls")
    assert victim.read_text() == "precious\n"


NAME = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=20)
CIDR = st.one_of(
    st.text(max_size=20),
    st.builds(lambda a, b, c, d, p: f"{a}.{b}.{c}.{d}/{p}", *[st.integers(0, 300)] * 4, st.integers(0, 40)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=NAME, subnet=CIDR, opt=st.sampled_from(["parent=eth0", "ipvlan_mode=x", "mtu=0", "parent=eth0.9999",
                                                    "parent=../x", "bogus", "parent=eth0\nx", "ipvlan_flag=vepa"]),
       ns=NAME, ip=st.text(max_size=16))
def test_fuzz_cli_inputs(eth0_session, name, subnet, opt, ns, ip):
    before_store, before_links = store_bytes(), all_links()
    from tests.kernel.helpers import cli

    r = cli("network", "create", "--subnet", subnet, "-o", opt, "--", name)
    assert "Traceback" not in r.err
    if r.code == 0:
        ok("network", "rm", name)
    else:
        assert r.err.startswith("Error: ") or r.err.startswith("Usage:"), r.err
    r = cli("attach", "--ip", ip, "--", ns, "fz")
    assert r.code != 0 and "Traceback" not in r.err
    assert store_bytes() == before_store and all_links() == before_links


@pytest.fixture
def eth0_session(eth0):
    ok("network", "create", "--subnet", "10.250.0.0/24", "-o", "parent=eth0", "fz")
    return eth0


def test_state_of_the_previous_release_is_migrated_restored_and_used(eth0):
    """A state directory written by the schema-1 release (tests/fixtures/state-schema1: three
    networks and a journal left by a killed attach) is read, migrated on the first change,
    restored, and then works."""
    import shutil

    state = os.environ["IPVNET_STATE_DIR"]
    shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "fixtures", "state-schema1"), state)
    r = ok("network", "ls")
    assert {line.split()[1] for line in r.out.splitlines()[1:]} == {"iso", "mac", "vlan20"}
    r = drifted("check", "--format", "json")
    kinds = {d["kind"] for d in json.loads(r.out)}
    assert {"interrupted", "missing-parent", "missing-namespace"} <= kinds
    r = ok("restore")  # undoes the killed attach, recreates parents, namespaces and links
    assert os.path.exists(os.path.join(state, "host.toml")) and os.path.exists(os.path.join(state, "networks.toml.schema1"))
    assert not os.path.exists(os.path.join(state, "networks.toml"))
    assert addrs("eth0", "web") == {"192.168.20.2/24", "fd00:20::2/64"} and addrs("eth1", "db") == {"10.10.0.2/24"}
    assert link("eth0.20")["linkinfo"]["info_data"]["id"] == 20
    assert ping("web", "db") and ping("db", "www", v6=True)
    ok("attach", "--create", "job", "vlan20")  # the killed attach's address is free again
    assert addrs("eth0", "job") == {"192.168.20.4/24", "fd00:20::4/64"}
    assert_check_clean()
    assert sorted(os.listdir(os.path.join(state, "networks"))) == ["iso.toml", "mac.toml", "vlan20.toml"]
