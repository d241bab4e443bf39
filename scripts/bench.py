#!/usr/bin/env python3
"""ipvnet side by side with iproute2 and the CNI reference plugins.

`make bench` runs `kernel` inside the UML guest (or directly as root on a
host with ipvlan, 8021q and dummy) and `host` on this machine, then `report`
merges both into bench-results.json and bench-results.md.

kernel: per-namespace attach and teardown cost on one L2 ipvlan network with
an 802.1q parent on a dummy `eth0`, for N namespaces, for each peer:
  iproute2   one bash process running `ip` commands (as a script would)
  cni        /usr/lib/cni/ipvlan + host-local through the CNI protocol
  cli        `ipvnet attach` / `ipvnet detach`, one process per namespace
  apply      `ipvnet apply FILE` (and `apply --prune`): one process for all N
  service    ipvnet's service layer in-process (store, hosts files, journal)
  engine     ipvnet's planner + netlink engine in-process (no store)
  floor      a bare pyroute2 loop doing the minimum, namespaces entered without a fork
Namespaces are made beforehand by `ip netns add` and are not timed: every
peer is timed for the attach and the teardown (link delete, address release)
only. A peer's numbers count only after two of its namespaces ping each other.
Everything happens in a sandbox (fresh network and mount namespace).

host: cold start of the read path against `python3 -c pass`, no root.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ipvnet.rtnl import Rtnl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CNI_DIR = "/usr/lib/cni"
SLOW = ("iproute2", "cni", "cli")


def stats(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {
        "n": len(xs),
        "median_ms": round(statistics.median(xs) * 1000, 2),
        "p90_ms": round(xs[min(len(xs) - 1, max(0, int(round(len(xs) * 0.9)) - 1))] * 1000, 2),
    }


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def ipvnet_cmd() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "ipvnet")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "ipvnet"]


# --------------------------------------------------------------------------- kernel


def sandbox(driver: str = "ipvlan") -> str:
    """A fresh network and mount namespace (tmpfs over /run/netns and /etc/netns):
    nothing of the host is seen or touched. ipvlan runs put a dummy `eth0` there."""
    from ipvnet import netns

    c = netns.libc()
    if c.unshare(netns.CLONE_NEWNS | netns.CLONE_NEWNET) != 0:
        raise SystemExit("bench: unshare failed (run as root)")
    c.mount(b"none", b"/", None, netns.MS_REC | (1 << 18), None)
    for d in ("/run/netns", "/etc/netns"):
        os.makedirs(d, exist_ok=True)
        c.mount(b"tmpfs", d.encode(), b"tmpfs", 0, None)
    state = tempfile.mkdtemp(prefix="ipvnet-bench-")
    os.environ["IPVNET_STATE_DIR"] = state
    run(["ip", "link", "set", "lo", "up"])
    if driver == "ipvlan":
        run(["ip", "link", "add", "eth0", "type", "dummy"])
        run(["ip", "link", "set", "eth0", "up"])
    return state


class Case:
    """One peer at one N: a parent, a /16, N namespaces made beforehand.

    ipvlan (the UML part): the parent is a vlan `eth0.VID` on a dummy, made by
    the peer itself. macvlan (the native part, where the kernel has no
    ipvlan, vlan or dummy): the parent is one end of a veth pair made
    beforehand, and nobody makes it."""

    driver = "ipvlan"

    def __init__(self, peer: str, n: int, index: int) -> None:
        self.peer, self.n = peer, n
        self.vid = 100 + index
        self.parent = f"eth0.{self.vid}" if self.driver == "ipvlan" else f"ve{index}"
        self.net = f"b{index}"
        self.subnet = ipaddress.ip_network(f"10.{self.vid % 250}.0.0/16")
        self.gateway = str(self.subnet[1])
        self.names = [f"{peer[:3]}{index}x{i}" for i in range(n)]
        self.addrs = [str(self.subnet[2 + i]) for i in range(n)]

    @property
    def link_type(self) -> str:
        return "type ipvlan mode l2" if self.driver == "ipvlan" else "type macvlan mode bridge"

    def setup(self, with_parent: bool) -> None:
        if self.driver == "macvlan":
            run(["ip", "link", "add", self.parent, "type", "veth", "peer", "name", f"{self.parent}p"])
            run(["ip", "link", "set", f"{self.parent}p", "up"])
            run(["ip", "link", "set", self.parent, "up"])
        elif with_parent:
            run(["ip", "link", "add", "link", "eth0", "name", self.parent, "type", "vlan", "id", str(self.vid)])
            run(["ip", "link", "set", self.parent, "up"])
        # One `ip -batch` to make the namespaces: not part of any peer's cost.
        script = "".join(f"netns add {ns}\n" for ns in self.names)
        subprocess.run(["ip", "-batch", "-"], input=script, text=True, check=True)

    def verified(self) -> bool | None:
        if self.n < 2:
            return None
        cmd = ["ip", "netns", "exec", self.names[0], "ping", "-c1", "-W2", self.addrs_of(self.names[1])]
        return subprocess.run(cmd, capture_output=True).returncode == 0

    def addrs_of(self, ns: str) -> str:
        out = run(["ip", "-j", "-n", ns, "addr", "show", "dev", "eth0"]).stdout
        for a in json.loads(out)[0]["addr_info"]:
            if a["family"] == "inet":
                return a["local"]
        raise RuntimeError(f"{ns} has no address")

    def cleanup(self) -> None:
        script = "".join(f"netns del {ns}\n" for ns in self.names)
        subprocess.run(["ip", "-force", "-batch", "-"], input=script, text=True, capture_output=True)
        subprocess.run(["ip", "link", "del", self.parent], capture_output=True)


def bench_iproute2(c: Case) -> tuple[list[float], list[float], bool | None]:
    c.setup(with_parent=True)
    plen = c.subnet.prefixlen
    lines = ["set -e"]
    for i, (ns, ip) in enumerate(zip(c.names, c.addrs, strict=True)):
        lines += [
            "t0=$EPOCHREALTIME",
            f"ip link add tmp{i} link {c.parent} {c.link_type}",
            f"ip link set tmp{i} netns {ns}",
            f"ip -n {ns} link set tmp{i} name eth0",
            f"ip -n {ns} addr add {ip}/{plen} dev eth0",
            f"ip -n {ns} link set eth0 up",
            f"ip -n {ns} link set lo up",
            f"ip -n {ns} route add default via {c.gateway}",
            'echo "$t0 $EPOCHREALTIME"',
        ]
    att = _times(run(["bash", "-c", "\n".join(lines)]).stdout)
    ok = c.verified()
    lines = ["set -e"] + [x for ns in c.names for x in ("t0=$EPOCHREALTIME", f"ip -n {ns} link del eth0",
                                                          'echo "$t0 $EPOCHREALTIME"')]
    det = _times(run(["bash", "-c", "\n".join(lines)]).stdout)
    c.cleanup()
    return att, det, ok


def _times(out: str) -> list[float]:
    return [float(b) - float(a) for a, b in (line.split() for line in out.splitlines())]


def bench_cni(c: Case) -> tuple[list[float], list[float], bool | None]:
    c.setup(with_parent=True)
    data = tempfile.mkdtemp(prefix="cni-ipam-")
    conf = json.dumps({
        "cniVersion": "1.0.0", "name": f"bench{c.vid}", "type": c.driver, "master": c.parent,
        "mode": "l2" if c.driver == "ipvlan" else "bridge",
        "ipam": {"type": "host-local", "subnet": str(c.subnet), "gateway": c.gateway, "dataDir": data,
                 "routes": [{"dst": "0.0.0.0/0"}]},
    })

    def call(cmd: str, ns: str) -> float:
        env = {"CNI_COMMAND": cmd, "CNI_CONTAINERID": ns, "CNI_NETNS": f"/run/netns/{ns}", "CNI_IFNAME": "eth0",
               "CNI_PATH": CNI_DIR, "PATH": os.environ.get("PATH", "")}
        t = time.perf_counter()
        r = subprocess.run([os.path.join(CNI_DIR, c.driver)], input=conf, env=env, capture_output=True, text=True)
        dt = time.perf_counter() - t
        if r.returncode != 0:
            raise RuntimeError(f"CNI {cmd} {ns}: {r.stdout} {r.stderr}")
        return dt

    att = [call("ADD", ns) for ns in c.names]
    for ns in c.names:  # CNI leaves lo down: the other peers bring it up untimed too
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
    ok = c.verified()
    det = [call("DEL", ns) for ns in c.names]
    c.cleanup()
    shutil.rmtree(data, ignore_errors=True)
    return att, det, ok


def _create_network(c: Case) -> None:
    run([*ipvnet_cmd(), "network", "create", "-d", c.driver, "--subnet", str(c.subnet), "-o", f"parent={c.parent}",
         c.net])


def _remove_network(c: Case) -> None:
    run([*ipvnet_cmd(), "network", "rm", "--force", c.net])


def bench_cli(c: Case) -> tuple[list[float], list[float], bool | None]:
    c.setup(with_parent=False)
    _create_network(c)
    cmd = ipvnet_cmd()

    def timed(args: list[str]) -> float:
        t = time.perf_counter()
        run([*cmd, *args])
        return time.perf_counter() - t

    att = [timed(["attach", ns, c.net]) for ns in c.names]
    ok = c.verified()
    det = [timed(["detach", ns, c.net]) for ns in c.names]
    _remove_network(c)
    c.cleanup()
    return att, det, ok


def bench_many(c: Case) -> tuple[list[float], list[float], bool | None]:
    """`ipvnet attach NS... NET`: every namespace in one process, per namespace."""
    c.setup(with_parent=False)
    _create_network(c)
    t = time.perf_counter()
    run([*ipvnet_cmd(), "attach", *c.names, c.net])
    att = [(time.perf_counter() - t) / c.n] * c.n
    ok = c.verified()
    t = time.perf_counter()
    _remove_network(c)  # rm --force: every namespace detached in one process
    det = [(time.perf_counter() - t) / c.n] * c.n
    c.cleanup()
    return att, det, ok


def bench_pass(c: Case) -> tuple[list[float], list[float], bool | None]:
    """`python -c pass` with the same interpreter, as the unit of a cold start."""
    def once() -> float:
        t = time.perf_counter()
        run([sys.executable, "-c", "pass"])
        return time.perf_counter() - t

    xs = [once() for _ in range(max(c.n, 10))]
    return xs, xs, None


def bench_apply(c: Case) -> tuple[list[float], list[float], bool | None]:
    c.setup(with_parent=False)
    d = tempfile.mkdtemp(prefix="apply-")
    head = (f'[networks.{c.net}]\ndriver = "{c.driver}"\nsubnets = ["{c.subnet}"]\n'
            f'options = {{ parent = "{c.parent}" }}\n')
    full = os.path.join(d, "full.toml")
    empty = os.path.join(d, "empty.toml")
    with open(full, "w") as f:
        f.write(head + "".join(f"[networks.{c.net}.namespaces.{ns}]\n" for ns in c.names))
    with open(empty, "w") as f:
        f.write(head)
    _create_network(c)  # as for the other peers, the network exists already
    t = time.perf_counter()
    run([*ipvnet_cmd(), "apply", full])
    att = [(time.perf_counter() - t) / c.n] * c.n
    ok = c.verified()
    t = time.perf_counter()
    run([*ipvnet_cmd(), "apply", "--prune", empty])
    det = [(time.perf_counter() - t) / c.n] * c.n
    _remove_network(c)
    c.cleanup()
    shutil.rmtree(d, ignore_errors=True)
    return att, det, ok


def bench_service(c: Case) -> tuple[list[float], list[float], bool | None]:
    from ipvnet.requests import AttachSpec
    from ipvnet.service import Service

    c.setup(with_parent=False)
    _create_network(c)
    att, det = [], []
    with Service() as svc:
        for ns in c.names:
            t = time.perf_counter()
            svc.attach(AttachSpec(ns, c.net))
            att.append(time.perf_counter() - t)
        ok = c.verified()
        for ns in c.names:
            t = time.perf_counter()
            svc.detach(ns, c.net)
            det.append(time.perf_counter() - t)
    _remove_network(c)
    c.cleanup()
    return att, det, ok


def bench_engine(c: Case) -> tuple[list[float], list[float], bool | None]:
    """Planner + engine, no store: what the service costs without persistence."""
    from ipvnet.engine import NetlinkEngine as Engine
    from ipvnet.ipam import Allocator
    from ipvnet.model import random_hex
    from ipvnet.plan import plan_attach, plan_detach
    from ipvnet.service import Service

    c.setup(with_parent=False)
    _create_network(c)
    with Service() as svc:
        net = svc.read().networks[c.net]
    from ipvnet.model import Endpoint

    alloc = Allocator(net)
    att, det, eps = [], [], []
    with Engine() as engine:
        for i, ns in enumerate(c.names):
            t = time.perf_counter()
            ep = Endpoint(ns, "eth0", "", i, ipv4=alloc.allocate(4, ns))  # type: ignore[arg-type]
            engine.run(plan_attach(net, ep, "ipv" + random_hex(4), [], create_ns=False))
            engine.forget(ns)
            att.append(time.perf_counter() - t)
            eps.append(ep)
        ok = c.verified()
        for ep in eps:
            t = time.perf_counter()
            engine.run(plan_detach(net, ep, [(net, ep)], True, True))
            alloc.release(ep.ipv4.ip)  # type: ignore[union-attr]
            engine.forget(ep.ns)
            det.append(time.perf_counter() - t)
    _remove_network(c)
    c.cleanup()
    return att, det, ok


def bench_floor(c: Case) -> tuple[list[float], list[float], bool | None]:
    """The minimum netlink work, no checks, no planning, no store: one plain
    netlink socket per namespace (ipvnet.rtnl, pyroute2 as the codec, the
    engine's own path), namespaces entered without a fork."""
    from ipvnet.rtnl import Rtnl

    c.setup(with_parent=True)
    root = Rtnl()
    parent = root.link_get(c.parent)["index"]
    att, det = [], []
    for i, (ns, ip) in enumerate(zip(c.names, c.addrs, strict=True)):
        t = time.perf_counter()
        _floor_attach(c, root, parent, f"tmp{i}", ns, ip)
        att.append(time.perf_counter() - t)
    ok = c.verified()
    for ns in c.names:
        t = time.perf_counter()
        _floor_detach(ns)
        det.append(time.perf_counter() - t)
    root.close()
    c.cleanup()
    return att, det, ok


def _floor_attach(c: Case, root: Rtnl, parent: int, tmp: str, ns: str, ip: str) -> None:
    """One namespace's link, address and routes, as bench_floor makes them."""
    from ipvnet import netns
    from ipvnet.rtnl import Rtnl

    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    if c.driver == "ipvlan":
        root.link_add(tmp, "ipvlan", link=parent, ipvlan_mode=0, ipvlan_flags=0, net_ns_fd=fd)
    else:
        root.link_add(tmp, "macvlan", link=parent, macvlan_mode=4, net_ns_fd=fd)
    os.close(fd)
    with netns.entered(ns):
        s = Rtnl()
    idx = s.link_get(tmp)["index"]
    s.link_set(idx, ifname="eth0")
    s.addr_add(idx, ip, c.subnet.prefixlen)
    s.link_set(idx, up=True)
    s.link_set(1, up=True)
    s.route_add(4, None, 0, gateway=c.gateway)
    s.close()


def _floor_detach(ns: str) -> None:
    from ipvnet import netns
    from ipvnet.rtnl import Rtnl

    with netns.entered(ns):
        s = Rtnl()
    s.link_del(s.link_get("eth0")["index"])
    s.close()


def bench_pyroute2(c: Case) -> tuple[list[float], list[float], bool | None]:
    """The previous floor: the same minimum with pyroute2's own IPRoute (its asyncio
    core), as the issue that set the service target measured it."""
    import socket

    from ipvnet import netns
    from ipvnet.rtnl import _bare_pyroute2

    _bare_pyroute2()
    from pyroute2.iproute.linux import IPRoute

    c.setup(with_parent=True)
    root = IPRoute()
    parent = root.link_lookup(ifname=c.parent)[0]
    plen = c.subnet.prefixlen
    att, det = [], []
    for i, (ns, ip) in enumerate(zip(c.names, c.addrs, strict=True)):
        t = time.perf_counter()
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        root.link("add", ifname=f"tmp{i}", kind="ipvlan", link=parent, ipvlan_mode=0, net_ns_fd=fd)
        os.close(fd)
        with netns.entered(ns):
            ipr = IPRoute()
        idx = ipr.link_lookup(ifname=f"tmp{i}")[0]
        ipr.link("set", index=idx, ifname="eth0")
        ipr.addr("add", index=idx, address=ip, prefixlen=plen)
        ipr.link("set", index=idx, state="up")
        ipr.link("set", index=1, state="up")
        ipr.route("add", dst="0.0.0.0/0", gateway=c.gateway, family=socket.AF_INET)
        ipr.close()
        att.append(time.perf_counter() - t)
    ok = c.verified()
    for ns in c.names:
        t = time.perf_counter()
        with netns.entered(ns):
            ipr = IPRoute()
        ipr.link("del", index=ipr.link_lookup(ifname="eth0")[0])
        ipr.close()
        det.append(time.perf_counter() - t)
    root.close()
    c.cleanup()
    return att, det, ok


PEERS: dict[str, Callable[[Case], tuple[list[float], list[float], bool | None]]] = {
    "iproute2": bench_iproute2,
    "cni": bench_cni,
    "cli": bench_cli,
    "apply": bench_apply,
    "service": bench_service,
    "engine": bench_engine,
    "floor": bench_floor,
    "pyroute2": bench_pyroute2,
}


NATIVE_PEERS: dict[str, Callable[[Case], tuple[list[float], list[float], bool | None]]] = {
    "python": bench_pass,
    "iproute2": bench_iproute2,
    "cni": bench_cni,
    "cli": bench_cli,
    "many": bench_many,
    "apply": bench_apply,
}


def native(ns_counts: list[int], out: str) -> None:
    """The cold-process peers on this host's own kernel (macvlan on a veth parent):
    no UML guest in between, so Python's start-up weighs what it does on a real host."""
    import compileall

    compileall.compile_dir(os.path.join(ROOT, "ipvnet"), quiet=1)  # an installed package has its .pyc
    sandbox("macvlan")
    Case.driver = "macvlan"
    results = []
    index = 200
    for n in ns_counts:
        for peer, fn in NATIVE_PEERS.items():
            index += 1
            if peer == "cni" and not os.path.exists(os.path.join(CNI_DIR, "macvlan")):
                results.append({"peer": peer, "n": n, "error": "containernetworking-plugins not installed"})
                continue
            att, det, ok = fn(Case(peer, n, index))
            results.append({"peer": peer, "n": n, "attach": stats(att), "teardown": stats(det), "verified": ok})
            print(f"native: {peer:9} N={n:<5} attach {results[-1]['attach']['median_ms']:8.1f} ms  "
                  f"teardown {results[-1]['teardown']['median_ms']:8.1f} ms  ping={ok}", flush=True)
    with open(out, "w") as f:
        json.dump({"native": results}, f, indent=2)


SETTLE_S = 0.5  # after each detach of a scaling round


def scaling(index: int) -> dict[str, object]:
    """Cost of attaching the 10th and the 1000th namespace (cold CLI and in-process),
    the first 9 / 999 members put there by `apply`. Median of 5 attach+detach rounds,
    each detach followed by SETTLE_S of rest: the kernel finishes tearing a link down
    after the call returns (more slowly the more links share the parent), and that
    work belongs to the detach, not to the next round's attach."""
    from ipvnet.requests import AttachSpec
    from ipvnet.service import Service

    out: dict[str, object] = {}
    for members in (9, 999):
        c = Case("scl", members + 1, index + members)
        c.setup(with_parent=False)
        _create_network(c)
        d = tempfile.mkdtemp()
        f = os.path.join(d, "m.toml")
        with open(f, "w") as fh:
            fh.write(f'[networks.{c.net}]\nsubnets = ["{c.subnet}"]\noptions = {{ parent = "{c.parent}" }}\n')
            fh.write("".join(f"[networks.{c.net}.namespaces.{ns}]\n" for ns in c.names[:members]))
        run([*ipvnet_cmd(), "apply", f])
        last = c.names[members]
        cold, warm = [], []
        for _ in range(5):
            t = time.perf_counter()
            run([*ipvnet_cmd(), "attach", last, c.net])
            cold.append(time.perf_counter() - t)
            run([*ipvnet_cmd(), "detach", last, c.net])
            time.sleep(SETTLE_S)
        rushed: list[float] = []
        with Service() as svc:
            for settle in (0.0, SETTLE_S):  # back to back as well, to show what the rest changes
                for _ in range(5):
                    t = time.perf_counter()
                    svc.attach(AttachSpec(last, c.net))
                    (warm if settle else rushed).append(time.perf_counter() - t)
                    svc.detach(last, c.net)
                    time.sleep(settle)
        out[f"cli_attach_{members + 1}th"] = stats(cold)
        from ipvnet.rtnl import Rtnl

        floor: list[float] = []  # the kernel's own share: the same namespace by the netlink floor
        root = Rtnl()
        parent = root.link_get(c.parent)["index"]
        for _ in range(5):
            t = time.perf_counter()
            _floor_attach(c, root, parent, "tmpscl", last, str(c.addrs[members]))
            floor.append(time.perf_counter() - t)
            _floor_detach(last)
            time.sleep(SETTLE_S)
        root.close()
        out[f"floor_attach_{members + 1}th"] = stats(floor)
        out[f"service_attach_{members + 1}th"] = stats(warm)
        out[f"service_attach_{members + 1}th_back_to_back"] = stats(rushed)
        _remove_network(c)
        c.cleanup()
        shutil.rmtree(d, ignore_errors=True)
    return out


def kernel(ns_counts: list[int], slow_max: int, out: str) -> None:
    sandbox()
    results = []
    index = 0
    for n in ns_counts:
        for peer, fn in PEERS.items():
            index += 1
            if peer in SLOW and n > slow_max:
                continue
            if peer == "cni" and not os.path.exists(os.path.join(CNI_DIR, "ipvlan")):
                results.append({"peer": peer, "n": n, "error": "containernetworking-plugins not installed"})
                continue
            t = time.perf_counter()
            att, det, ok = fn(Case(peer, n, index))
            results.append({"peer": peer, "n": n, "attach": stats(att), "teardown": stats(det), "verified": ok,
                            "wall_s": round(time.perf_counter() - t, 1)})
            print(f"bench: {peer:9} N={n:<5} attach {results[-1]['attach']['median_ms']:8.1f} ms  "
                  f"teardown {results[-1]['teardown']['median_ms']:8.1f} ms  ping={ok}", flush=True)
    with open(out, "w") as f:
        json.dump({"kernel": results, "scaling": {}}, f, indent=2)  # kept if the scaling run fails
    if max(ns_counts) >= 1000 or os.environ.get("IPVNET_BENCH_SCALING") == "1":
        scale = scaling(index + 1)
        with open(out, "w") as f:
            json.dump({"kernel": results, "scaling": scale}, f, indent=2)


# --------------------------------------------------------------------------- host


def host(out: str, runs: int) -> None:
    """Cold start of the read path on this machine (no root), and IPAM/store cost."""
    from ipvnet.ipam import Allocator
    from ipvnet.model import Endpoint, Endpoints, Network, SubnetConfig
    from ipvnet.store import State
    from ipvnet.store.local import LocalStore as Store

    def state_of(networks: dict[str, Network]) -> State:
        st = State.from_networks({})
        st.networks.update(networks)
        return st

    def network(i: int) -> Network:
        return Network(name=f"net{i}", id=f"{i:064x}", created="2026-01-01T00:00:00+00:00", driver="ipvlan",
                       parent=f"eth0.{i % 4000 + 1}", parent_kind="vlan",
                       subnets=(SubnetConfig(ipaddress.ip_network(f"10.{i // 250}.{i % 250}.0/24"),
                                             ipaddress.ip_address(f"10.{i // 250}.{i % 250}.1")),),
                       options={"parent": f"eth0.{i % 4000 + 1}", "ipvlan_mode": "l2", "ipvlan_flag": "bridge"})

    dirs = {}
    for count in (10, 1000):
        d = tempfile.mkdtemp(prefix=f"ipvnet-host-{count}-")
        Store(d).save(state_of({f"net{i}": network(i) for i in range(count)}))
        dirs[count] = d

    def cold(cmd: list[str], state: str | None = None) -> dict[str, float]:
        env = dict(os.environ)
        if state:
            env["IPVNET_STATE_DIR"] = state
        xs = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
            xs.append(time.perf_counter() - t)
        return stats(xs)

    res: dict[str, object] = {
        "python_pass": cold([sys.executable, "-c", "pass"]),
        "version": cold([*ipvnet_cmd(), "--version"]),
        "ls_10": cold([*ipvnet_cmd(), "network", "ls"], dirs[10]),
        "ls_1000": cold([*ipvnet_cmd(), "network", "ls"], dirs[1000]),
        "inspect_1000": cold([*ipvnet_cmd(), "network", "inspect", "net500"], dirs[1000]),
    }
    net = Network(name="big", id="f" * 64, created="", driver="ipvlan", parent="eth0", parent_kind="existing",
                  subnets=(SubnetConfig(ipaddress.ip_network("10.0.0.0/16"), ipaddress.ip_address("10.0.0.1")),),
                  options={"parent": "eth0", "ipvlan_mode": "l2", "ipvlan_flag": "bridge"})
    t = time.perf_counter()
    alloc = Allocator(net)
    got = [alloc.allocate(4, f"n{i}") for i in range(10000)]
    res["ipam_alloc_10000_ms"] = round((time.perf_counter() - t) * 1000, 1)
    assert len({str(a) for a in got}) == 10000
    eps = {f"n{i}": Endpoint(f"n{i}", "eth0", "e" * 64, i, ipv4=a) for i, a in enumerate(got)}  # type: ignore[arg-type]
    from ipvnet.record import replace

    d = tempfile.mkdtemp()
    st = state_of({"big": replace(net, endpoints=Endpoints(eps))})
    t = time.perf_counter()
    Store(d).save(st)
    res["store_save_10000_ms"] = round((time.perf_counter() - t) * 1000, 1)
    t = time.perf_counter()
    Store(d).load()
    res["store_load_10000_ms"] = round((time.perf_counter() - t) * 1000, 1)
    for p in (*dirs.values(), d):
        shutil.rmtree(p, ignore_errors=True)
    with open(out, "w") as f:
        json.dump(res, f, indent=2)


# --------------------------------------------------------------------------- report


def _table(rows: list[dict]) -> list[str]:
    md = ["| peer | N | attach median | attach p90 | teardown median | teardown p90 | ping verified |",
          "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if "attach" not in r:
            md.append(f"| {r['peer']} | {r['n']} | {r['error']} | | | | |")
            continue
        md.append(f"| {r['peer']} | {r['n']} | {r['attach']['median_ms']} | {r['attach']['p90_ms']} | "
                  f"{r['teardown']['median_ms']} | {r['teardown']['p90_ms']} | "
                  f"{'n/a' if r['verified'] is None else ('yes' if r['verified'] else 'NO')} |")
    return md


class Ratios:
    """Ratios of medians against their targets, from one run."""

    def __init__(self, rows: list[dict]) -> None:
        self.by = {(r["peer"], r["n"]): r for r in rows if "attach" in r}
        self.rows: list[dict] = []

    def add(self, name: str, a: tuple[str, int], b: tuple[str, int], key: str, target: float,
            key_b: str | None = None) -> None:
        if a in self.by and b in self.by:
            v = self.by[a][key]["median_ms"] / self.by[b][key_b or key]["median_ms"]
            self.rows.append({"ratio": name, "value": round(v, 2), "target": target, "met": v <= target})

    def plain(self, name: str, v: float, target: float | None) -> None:
        """TARGET None: a figure that explains another, with no target of its own."""
        self.rows.append({"ratio": name, "value": round(v, 2), "target": target,
                          "met": None if target is None else v <= target})

    def md(self) -> list[str]:
        return ["| ratio | value | target | met |", "|---|---:|---:|---|"] + [
            f"| {r['ratio']} | {r['value']} | {'—' if r['target'] is None else '≤ ' + str(r['target'])} | "
            f"{'—' if r['met'] is None else 'yes' if r['met'] else 'no'} |" for r in self.rows]


def native_ratios(rows: list[dict]) -> Ratios:
    r = Ratios(rows)
    n = max([x["n"] for x in rows if x["peer"] == "cli" and "attach" in x] or [0])
    py = max([x["n"] for x in rows if x["peer"] == "python" and "attach" in x] or [0])
    r.add(f"cold `ipvnet attach` / iproute2 script (N={n})", ("cli", n), ("iproute2", n), "attach", 3.5)
    r.add(f"cold `ipvnet attach` / `python -c pass` (N={n})", ("cli", n), ("python", py), "attach", 9.0)
    r.add(f"cold `ipvnet detach` / iproute2 script (N={n})", ("cli", n), ("iproute2", n), "teardown", 3.5)
    r.add(f"cold `ipvnet detach` / `python -c pass` (N={n})", ("cli", n), ("python", py), "teardown", 9.0, "attach")
    r.add(f"`attach NS... NET` per namespace / CNI ADD (N={n})", ("many", n), ("cni", n), "attach", 0.5)
    r.add(f"`apply` per namespace / CNI ADD (N={n})", ("apply", n), ("cni", n), "attach", 0.5)
    return r


def guest_ratios(rows: list[dict], s: dict, h: dict) -> Ratios:
    r = Ratios(rows)
    ns = sorted({x["n"] for x in rows})
    n_cmp = max([n for n in ns if ("cni", n) in r.by and ("apply", n) in r.by] or [0])
    if n_cmp:
        r.add(f"apply / CNI ADD, attach (N={n_cmp})", ("apply", n_cmp), ("cni", n_cmp), "attach", 0.2)
        r.add(f"apply / CNI DEL, teardown (N={n_cmp})", ("apply", n_cmp), ("cni", n_cmp), "teardown", 0.2)
        r.add(f"cold CLI attach / CNI ADD (N={n_cmp})", ("cli", n_cmp), ("cni", n_cmp), "attach", 3.0)
    n_max = max(ns)
    r.add(f"in-process engine attach / netlink floor (N={n_max})", ("engine", n_max), ("floor", n_max), "attach", 1.5)
    r.add(f"in-process service attach / netlink floor (N={n_max})", ("service", n_max), ("floor", n_max),
          "attach", 1.5)
    r.add(f"in-process service attach / pyroute2 IPRoute floor (N={n_max})", ("service", n_max), ("pyroute2", n_max),
          "attach", 1.5)
    def grows(kind: str, how: str = "") -> float:
        return float(s[f"{kind}_1000th{how}"]["median_ms"] / s[f"{kind}_10th{how}"]["median_ms"])

    if s:
        r.plain("cli attach: 1000th / 10th namespace", grows("cli_attach"), 1.5)
        if "service_attach_10th_back_to_back" in s:
            r.plain("service attach: 1000th / 10th namespace, back to back (as the target was set)",
                    grows("service_attach", "_back_to_back"), 1.5)
        r.plain(f"service attach: 1000th / 10th namespace, {SETTLE_S} s rest after each detach",
                grows("service_attach"), 1.5)
        if "floor_attach_10th" in s:
            r.plain("netlink floor attach, same rounds: 1000th / 10th (the kernel's own growth)",
                    grows("floor_attach"), None)
    r.plain("network ls: 1000 / 10 networks (host)", h["ls_1000"]["median_ms"] / h["ls_10"]["median_ms"], 2.0)
    r.plain("network ls / python3 -c pass (host)", h["ls_10"]["median_ms"] / h["python_pass"]["median_ms"], 5.0)
    return r


def report(kernel_json: str, host_json: str, native_json: str, out_dir: str) -> int:
    """Both parts as markdown, into OUT_DIR (bench-results.md and .json) and the README's Performance section."""
    k, h = json.load(open(kernel_json)), json.load(open(host_json))
    nat = json.load(open(native_json))["native"] if os.path.exists(native_json) else []
    rows, s = k["kernel"], k.get("scaling") or {}
    where = os.environ.get("IPVNET_BENCH_WHERE", "UML guest")
    nr = native_ratios(nat)
    gr = guest_ratios(rows, s, h) if rows else Ratios([])
    md = [f"Measured {time.strftime('%Y-%m-%d')} with `make bench`. Per namespace, milliseconds (medians); namespaces "
          "made beforehand and not timed; every peer's numbers count only after two of its namespaces ping.", ""]
    if nat:
        md += [f"**On this host's own kernel** ({os.uname().release}; macvlan on a veth parent, in a private network "
               "and mount namespace):", "", *_table(nat), "", *nr.md(), ""]
    if rows:
        md += [f"**In the ipvlan kernel** ({where}; ipvlan L2 on a vlan parent):", "", *_table(rows), "", *gr.md(), ""]
    md += ["| host (cold process, median of runs) | ms |", "|---|---:|"]
    md += [f"| {key} | {h[key]['median_ms']} |" for key in ("python_pass", "version", "ls_10", "ls_1000", "inspect_1000")]
    md += [f"| {key.removesuffix('_ms')} | {h[key]} |"
           for key in ("ipam_alloc_10000_ms", "store_save_10000_ms", "store_load_10000_ms")]
    if s:
        md += ["", "| scaling (median of 5) | ms |", "|---|---:|"] + [f"| {key} | {v['median_ms']} |"
                                                                  for key, v in s.items()]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "bench-results.json"), "w") as f:
        json.dump({"native": nat, "kernel": rows, "scaling": s, "host": h, "ratios": nr.rows + gr.rows}, f, indent=2)
    with open(os.path.join(out_dir, "bench-results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    if os.environ.get("IPVNET_BENCH_README") == "1":
        _into_readme(md)
    print("\n".join(md))
    failed = [(r["peer"], r["n"]) for r in rows + nat if r.get("verified") is False]
    if failed:
        print(f"bench: ping verification FAILED for {failed}", file=sys.stderr)
        return 1
    return 0


def _into_readme(md: list[str]) -> None:
    path = os.path.join(ROOT, "README.md")
    begin, end = "<!-- BEGIN BENCH -->", "<!-- END BENCH -->"
    text = open(path).read()
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + begin + "\n" + "\n".join(md) + "\n" + end + rest.split(end, 1)[1]
        with open(path, "w") as f:
            f.write(text)


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "kernel":
        counts = [int(x) for x in os.environ.get("IPVNET_BENCH_N", "1,10,100,1000").split(",")]
        kernel(counts, int(os.environ.get("IPVNET_BENCH_SLOW_MAX", "100")), sys.argv[2])
        return 0
    if cmd == "host":
        host(sys.argv[2], int(os.environ.get("IPVNET_BENCH_RUNS", "20")))
        return 0
    if cmd == "native":
        native([int(x) for x in os.environ.get("IPVNET_BENCH_NATIVE_N", "10,100").split(",")], sys.argv[2])
        return 0
    if cmd == "report":
        return report(*sys.argv[2:6])  # kernel.json host.json native.json out-dir
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
