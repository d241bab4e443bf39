"""The read path (help, version, ls, inspect) as a real process: no root,
no kernel, and no pyroute2 import (start-up matters in shell loops)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ipvnet.model import Endpoint, Network, SubnetConfig
from ipvnet.store import State
from ipvnet.store.local import LocalStore


def ipvnet(*args: str, state: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "IPVNET_STATE_DIR": state}
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "ipvnet", *args], capture_output=True,
                          text=True, env=env)


def make_store(path: str) -> None:
    import ipaddress

    net = Network(
        name="web", id="ab" * 32, created="2026-01-01T00:00:00+00:00", driver="ipvlan", parent="eth0.20",
        parent_kind="vlan", subnets=(SubnetConfig(ipaddress.ip_network("192.168.20.0/24"),
                                                  ipaddress.ip_address("192.168.20.1")),),
        options={"parent": "eth0.20", "ipvlan_mode": "l2", "ipvlan_flag": "bridge"},
    ).with_endpoint(Endpoint("ns1", "eth0", "cd" * 32, 1, ipaddress.IPv4Interface("192.168.20.2/24")))
    state = State.from_networks({})
    state.networks["web"] = net
    LocalStore(path).save(state)


def test_ls_and_inspect_do_not_import_pyroute2(tmp_path):
    make_store(str(tmp_path))
    for args in (["network", "ls"], ["network", "inspect", "web"], ["--help"], ["--version"],
                 ["completion", "bash"], ["routes", "--help"]):
        r = ipvnet(*args, state=str(tmp_path))
        assert r.returncode == 0, r.stderr
        assert "pyroute2" not in r.stderr, f"{args} imported pyroute2"
    r = ipvnet("network", "ls", state=str(tmp_path))
    assert r.stdout.splitlines()[1].split() == ["abababababab", "web", "ipvlan", "l2", "eth0.20", "192.168.20.0/24"]
    data = json.loads(ipvnet("network", "inspect", "web", state=str(tmp_path)).stdout)
    assert data[0]["Containers"]["ns1"]["IPv4Address"] == "192.168.20.2/24"
    assert data[0]["IPAM"]["Config"] == [{"Subnet": "192.168.20.0/24", "Gateway": "192.168.20.1"}]


def test_dynamic_completion_does_not_import_pyroute2(tmp_path):
    make_store(str(tmp_path))
    env = {**os.environ, "IPVNET_STATE_DIR": str(tmp_path), "COMP_WORDS": "ipvnet attach ns1 w", "COMP_CWORD": "3",
           "_IPVNET_COMPLETE": "bash_complete"}
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "ipvnet"], capture_output=True, text=True, env=env)
    assert "plain,web" in r.stdout
    assert "pyroute2" not in r.stderr


def test_missing_network_is_one_line(tmp_path):
    make_store(str(tmp_path))
    r = ipvnet("network", "inspect", "nope", state=str(tmp_path))
    assert r.returncode == 3
    assert r.stderr.strip().splitlines()[-1] == "Error: network 'nope' not found (list networks with `ipvnet network ls`)"
    assert "Traceback" not in r.stderr


def test_fresh_host_read_creates_nothing(tmp_path):
    state = tmp_path / "never"
    r = ipvnet("network", "ls", "-q", state=str(state))
    assert r.returncode == 0 and r.stdout == ""
    assert not state.exists()


def test_debug_is_the_groups_option_not_any_word_in_argv(tmp_path):
    """`ipvnet exec NS -- tool --debug`: that --debug belongs to the tool, so an error stays one line."""
    r = subprocess.run([sys.executable, "-m", "ipvnet", "exec", "no-such-ns", "--", "ls", "--debug"],
                       capture_output=True, text=True, env={**os.environ, "IPVNET_STATE_DIR": str(tmp_path)})
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "Error: network namespace 'no-such-ns' does not exist (list them with `ip netns list`)"
    r = subprocess.run([sys.executable, "-m", "ipvnet", "--debug", "exec", "no-such-ns", "--", "ls"],
                       capture_output=True, text=True, env={**os.environ, "IPVNET_STATE_DIR": str(tmp_path)})
    assert r.returncode != 0 and "Traceback" in r.stderr
