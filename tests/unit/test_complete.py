"""Dynamic completion through click's own protocol, as a shell would call it."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.unit.test_cli_readpath import make_store


def complete(words: str, state: str) -> list[str]:
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": str(cword), "_IPVNET_COMPLETE": "bash_complete",
           "IPVNET_STATE_DIR": state}
    out = subprocess.run([sys.executable, "-m", "ipvnet"], capture_output=True, text=True, env=env).stdout
    return [line.split(",", 1)[1] for line in out.splitlines()]


def test_network_names_complete(tmp_path):
    make_store(str(tmp_path))
    assert complete("ipvnet network inspect w", str(tmp_path)) == ["web"]
    assert complete("ipvnet attach ns1 ", str(tmp_path)) == ["web"]
    assert complete("ipvnet run-ns --net ", str(tmp_path)) == ["web"]


def test_option_keys_and_values_complete(tmp_path):
    keys = complete("ipvnet network create -o ipvlan", str(tmp_path))
    assert keys == ["ipvlan_mode=", "ipvlan_flag="]
    assert complete("ipvnet network create -o ipvlan_mode=l", str(tmp_path)) == [
        "ipvlan_mode=l2", "ipvlan_mode=l3", "ipvlan_mode=l3s"]
    assert complete("ipvnet network create -o macvlan_mode=p", str(tmp_path)) == [
        "macvlan_mode=private", "macvlan_mode=passthru"]
    parents = complete("ipvnet network create -o parent=", str(tmp_path))
    assert "parent=lo" not in parents
    assert set(parents) == {f"parent={n}" for n in os.listdir("/sys/class/net") if n != "lo"}


def test_subcommands_complete(tmp_path):
    assert complete("ipvnet network ", str(tmp_path)) == ["create", "inspect", "ls", "prune", "rm"]


def test_cluster_names_complete(tmp_path):
    os.makedirs(tmp_path / "clusters")
    (tmp_path / "clusters" / "prod.toml").write_text("")
    (tmp_path / "clusters" / "lab.toml").write_text("")
    assert complete("ipvnet cluster status ", str(tmp_path)) == ["lab", "prod"]
    assert complete("ipvnet network create --cluster p", str(tmp_path)) == ["prod"]
