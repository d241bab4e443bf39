"""A small `make bench` (N = 5) in every test run, so the benchmark cannot rot:
every peer must run and pass its ping check, and the report must compute the ratios."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "scripts", "bench.py")


def test_bench_small(tmp_path):
    env = {**os.environ, "IPVNET_BENCH_N": "5", "IPVNET_BENCH_SLOW_MAX": "5", "IPVNET_BENCH_RUNS": "2"}
    k, h = str(tmp_path / "k.json"), str(tmp_path / "h.json")
    for args in (["kernel", k], ["host", h]):
        r = subprocess.run([sys.executable, BENCH, *args], env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stdout + r.stderr
    out_json, out_md = str(tmp_path / "r.json"), str(tmp_path / "r.md")
    r = subprocess.run([sys.executable, BENCH, "report", k, h, out_json, out_md], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.load(open(out_json))
    peers = {row["peer"] for row in data["kernel"]}
    assert peers == {"iproute2", "cni", "cli", "apply", "service", "engine", "floor"}
    assert all(row["verified"] is True for row in data["kernel"]), data["kernel"]
    assert all(row["attach"]["median_ms"] > 0 and row["teardown"]["median_ms"] > 0 for row in data["kernel"])
    names = {r["ratio"] for r in data["ratios"]}
    assert any(n.startswith("apply / CNI ADD") for n in names) and any(n.startswith("cold CLI") for n in names)
    assert "| cni | 5 |" in open(out_md).read()
