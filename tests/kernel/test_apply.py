"""`ipvnet apply` and multi-namespace attach against the real kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.kernel.helpers import addrs, cli, fails, link, link_names, ok, ping, store


def write(tmp_path, text: str) -> str:
    p = tmp_path / "site.toml"
    p.write_text(text)
    return str(p)


SITE = """
[networks.vlan20]
subnets = ["192.168.20.0/24"]
options = { parent = "eth0.20" }

[networks.vlan20.namespaces.web]
ip = "192.168.20.80"
aliases = ["www"]

[networks.vlan20.namespaces.db]

[networks.dual]
subnets = ["10.50.0.0/24", "2001:db8:50::/64"]
options = { parent = "eth0", ipvlan_mode = "l3" }

[networks.dual.namespaces.web]
ip6 = "2001:db8:50::80"
"""


def test_apply_creates_everything_and_is_idempotent(eth0, tmp_path):
    f = write(tmp_path, SITE)
    r = ok("apply", "--dry-run", f)
    assert r.out.splitlines() == ["+ network vlan20", "+ attach web vlan20", "+ attach db vlan20", "+ network dual",
                                  "+ attach web dual"]
    assert link("eth0.20") is None and not os.path.exists("/run/netns/web")
    ok("apply", f)
    assert link("eth0.20") is not None
    assert addrs("eth0", "web") == {"192.168.20.80/24"}
    assert addrs("eth1", "web") == {"10.50.0.1/24", "2001:db8:50::80/64"}
    assert addrs("eth0", "db") == {"192.168.20.2/24"}
    assert ping("db", "www") and ping("db", "web")
    before = store()
    assert ok("apply", f).out == "# nothing to change\n"
    assert store() == before
    assert json.loads(ok("check", "--format", "json").out) == []


def test_apply_changes_and_prunes(eth0, tmp_path):
    ok("apply", write(tmp_path, SITE))
    ok("network", "create", "--subnet", "10.70.0.0/24", "-o", "parent=eth0.70", "stale")
    changed = SITE.replace('ip = "192.168.20.80"', 'ip = "192.168.20.81"').replace(
        "[networks.vlan20.namespaces.db]\n", "")
    f = write(tmp_path, changed)
    r = ok("apply", "--prune", f)
    assert r.out.splitlines() == [
        "- detach web vlan20  (changed)",
        "- detach db vlan20  (not in the file)",
        "- network stale  (not in the file)",
        "+ attach web vlan20  (changed)",
    ]
    assert addrs("eth0", "web") == {"192.168.20.81/24"}
    assert link_names("db") == {"lo"}
    assert link("eth0.70") is None and "stale" not in store()["networks"]
    assert ok("apply", "--prune", f).out == "# nothing to change\n"


def test_apply_errors(eth0, tmp_path):
    assert "does not exist" in fails(3, "apply", str(tmp_path / "none.toml")).err
    assert "unknown key" in fails(2, "apply", write(tmp_path, "[networks.x]\nsubnett = []\n")).err
    ok("network", "create", "--subnet", "10.9.0.0/24", "-o", "parent=eth0", "vlan20")
    before = store()
    r = fails(4, "apply", write(tmp_path, SITE))
    assert "differs from the file" in r.err
    assert store() == before


def test_apply_failure_midway_keeps_what_was_done(eth0, tmp_path, monkeypatch):
    f = write(tmp_path, SITE)
    monkeypatch.setenv("IPVNET_FAULT", "addr_add:3")  # web(1), db(2), then web on dual
    r = fails(5, "apply", f)
    assert "of 5 changes were applied" in r.err
    s = store()["networks"]
    assert set(s["vlan20"]["endpoints"]) == {"web", "db"} and s["dual"]["endpoints"] == {}
    assert link_names("web") == {"lo", "eth0"}
    assert json.loads(ok("check", "--format", "json").out) == []
    monkeypatch.delenv("IPVNET_FAULT")
    ok("apply", f)
    assert addrs("eth1", "web") == {"10.50.0.1/24", "2001:db8:50::80/64"}


def test_apply_killed_midway_is_repaired(eth0, tmp_path):
    f = write(tmp_path, SITE)
    r = subprocess.run([sys.executable, "-m", "ipvnet", "apply", f], capture_output=True, text=True,
                       env={**os.environ, "IPVNET_FAULT": "kill@addr_add:3"})
    assert r.returncode == -9
    # nothing reached the store; the journals of the finished steps say what to undo
    assert not store().get("networks")
    r = cli("check", "--format", "json")
    assert r.code == 9 and {d["kind"] for d in json.loads(r.out)} >= {"interrupted"}
    ok("check", "--repair")
    assert json.loads(ok("check", "--format", "json").out) == []
    assert link("eth0.20") is None
    assert not os.path.exists("/run/netns/web")  # apply made it; the undo removed it
    ok("apply", f)
    assert ping("db", "www")


def test_attach_several_namespaces(eth0):
    ok("network", "create", "--subnet", "10.80.0.0/24", "-o", "parent=eth0", "many")
    r = ok("attach", "--create", "n1", "n2", "n3", "many")
    assert r.out.splitlines() == ["n1 eth0 10.80.0.2/24", "n2 eth0 10.80.0.3/24", "n3 eth0 10.80.0.4/24"]
    assert ping("n1", "n3")
    assert "one namespace" in fails(2, "attach", "--ip", "10.80.0.9", "n4", "n5", "many").err
    r = fails(4, "attach", "--create", "n4", "n1", "many")  # n1 already attached: n4 stays done
    assert set(store()["networks"]["many"]["endpoints"]) == {"n1", "n2", "n3", "n4"}
    assert json.loads(ok("check", "--format", "json").out) == []
