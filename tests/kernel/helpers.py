"""Drive the CLI in-process (Python start-up is slow in the UML guest) and
read kernel state with iproute2's JSON output, independent of ipvnet."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from ipvnet.entry import main


@dataclass
class Run:
    code: int
    out: str
    err: str


def cli(*args: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return Run(code, out.getvalue(), err.getvalue())


def ok(*args: str) -> Run:
    r = cli(*args)
    assert r.code == 0, f"ipvnet {' '.join(args)} -> {r.code}\nstdout: {r.out}\nstderr: {r.err}"
    return r


def fails(code: int, *args: str) -> Run:
    r = cli(*args)
    assert r.code == code, f"ipvnet {' '.join(args)} -> {r.code}, wanted {code}\n{r.out}\n{r.err}"
    assert "Traceback" not in r.err
    assert r.err.startswith("Error: ") and r.err.count("\n") == 1, f"not one clear line: {r.err!r}"
    return r


def ip(*args: str, ns: str | None = None) -> list[dict]:
    cmd = ["ip", "-j", "-d"] + (["-n", ns] if ns else []) + list(args)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out) if out.strip() else []


def link(name: str, ns: str | None = None) -> dict | None:
    return next((li for li in ip("link", "show", ns=ns) if li["ifname"] == name), None)


def link_names(ns: str | None = None) -> set[str]:
    return {li["ifname"] for li in ip("link", "show", ns=ns)}


def addrs(ifname: str, ns: str) -> set[str]:
    out = set()
    for li in ip("addr", "show", "dev", ifname, ns=ns):
        for a in li.get("addr_info", []):
            if a.get("scope") == "global":
                out.add(f"{a['local']}/{a['prefixlen']}")
    return out


def default_routes(ns: str, family: int = 4) -> list[dict]:
    return [r for r in ip(f"-{family}", "route", "show", "default", ns=ns)]


def ping(ns: str, target: str, v6: bool = False) -> bool:
    cmd = ["ip", "netns", "exec", ns, "ping", "-c1", "-W2"] + (["-6"] if v6 else []) + [target]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def netns_add(name: str) -> None:
    subprocess.run(["ip", "netns", "add", name], check=True)


def state_dir() -> str:
    return os.environ["IPVNET_STATE_DIR"]


def network_file(name: str) -> str:
    return os.path.join(state_dir(), "networks", f"{name}.toml")


def store() -> dict:
    """The store as one dict: host.toml's keys plus {"networks": {NAME: network file}}."""
    d = state_dir()
    if not os.path.exists(os.path.join(d, "host.toml")):
        return {}
    with open(os.path.join(d, "host.toml"), "rb") as f:
        out = tomllib.load(f)
    out["networks"] = {}
    for n in sorted(os.listdir(os.path.join(d, "networks"))):
        if n.endswith(".toml"):
            with open(os.path.join(d, "networks", n), "rb") as f:
                out["networks"][n[:-5]] = tomllib.load(f)
    return out


def store_bytes() -> bytes | None:
    """Every store file's bytes (None: no store yet), to assert that nothing changed."""
    d = state_dir()
    if not os.path.exists(os.path.join(d, "host.toml")):
        return None
    parts = []
    for rel in ["host.toml"] + sorted(os.path.join("networks", n) for n in os.listdir(os.path.join(d, "networks"))):
        with open(os.path.join(d, rel), "rb") as f:
            parts.append(rel.encode() + b"\0" + f.read())
    return b"\0".join(parts)
