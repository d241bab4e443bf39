"""A small `make bench` (N = 5) in every test run, so the benchmark cannot rot:
every peer must run and pass its ping check, and the report must compute the
ratios. The native part (macvlan, cold processes) also runs on this host's
own kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "scripts", "bench.py")


def test_bench_small(tmp_path):
    env = {**os.environ, "IPVNET_BENCH_N": "5", "IPVNET_BENCH_SLOW_MAX": "5", "IPVNET_BENCH_RUNS": "2"}
    k, h = str(tmp_path / "k.json"), str(tmp_path / "h.json")
    for args in (["kernel", k], ["host", h]):
        r = subprocess.run([sys.executable, BENCH, *args], env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stdout + r.stderr
    out = str(tmp_path / "out")
    r = subprocess.run([sys.executable, BENCH, "report", k, h, str(tmp_path / "none.json"), out], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.load(open(os.path.join(out, "bench-results.json")))
    out_md = os.path.join(out, "bench-results.md")
    peers = {row["peer"] for row in data["kernel"]}
    assert peers == {"iproute2", "cni", "cli", "apply", "service", "engine", "floor", "pyroute2"}
    assert all(row["verified"] is True for row in data["kernel"]), data["kernel"]
    assert all(row["attach"]["median_ms"] > 0 and row["teardown"]["median_ms"] > 0 for row in data["kernel"])
    names = {r["ratio"] for r in data["ratios"]}
    assert any(n.startswith("apply / CNI ADD") for n in names) and any(n.startswith("cold CLI") for n in names)
    assert "| cni | 5 |" in open(out_md).read()


@pytest.mark.hostkernel
def test_bench_small_native(tmp_path):
    env = {**os.environ, "IPVNET_BENCH_NATIVE_N": "5", "IPVNET_BENCH_RUNS": "2"}
    n, k, h = str(tmp_path / "n.json"), str(tmp_path / "k.json"), str(tmp_path / "h.json")
    r = subprocess.run([sys.executable, BENCH, "native", n], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.load(open(n))["native"]
    assert {row["peer"] for row in rows} == {"python", "iproute2", "cni", "cli", "many", "apply"}
    assert all(row["verified"] is True for row in rows if row["peer"] != "python"), rows
    json.dump({"kernel": [], "scaling": {}}, open(k, "w"))
    json.dump({key: {"median_ms": 1.0} for key in ("python_pass", "version", "ls_10", "ls_1000", "inspect_1000")}
              | {"ipam_alloc_10000_ms": 1, "store_save_10000_ms": 1, "store_load_10000_ms": 1}, open(h, "w"))
    r = subprocess.run([sys.executable, BENCH, "report", k, h, n, str(tmp_path / "out")], capture_output=True, text=True)
    ratios = {x["ratio"] for x in json.load(open(tmp_path / "out" / "bench-results.json"))["ratios"]}
    assert "cold `ipvnet attach` / iproute2 script (N=5)" in ratios, (r.stdout, r.stderr)
    assert "`apply` per namespace / CNI ADD (N=5)" in ratios
