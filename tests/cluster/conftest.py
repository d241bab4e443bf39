"""The cluster suite: three (then four) simulated hosts in one kernel.

Topology (inside the kernel tests' sandbox, or the UML guest): a bridge br0
is the underlay switch; each "host" hN is a network namespace with a veth
`eth0` (10.0.0.N/24, fd00::N/64) on it, the ipvlan parent of its cluster
networks. etcd (three members) listens on the bridge (10.0.0.254); each host
runs its own BGP daemon in its namespace. ipvnet runs "as host hN" in-process,
with this thread switched into hN (as `nsenter --net` would) and hN's own
state directory; a few tests run it as real processes under nsenter.

Everything is started by this module and stopped by PID; nothing is reached
outside the sandbox.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from ipvnet import netns
from tests.kernel import conftest as kconf
from tests.kernel.helpers import Run, cli

ETCD_IP = "10.0.0.254"
ETCD_PORTS = ((2379, 2380), (2479, 2480), (2579, 2580))
ENDPOINTS = ",".join(f"http://{ETCD_IP}:{c}" for c, _ in ETCD_PORTS)
CLUSTER = "prod"
V4, V6 = "10.244.0.0/23", "fd00:244::/118"  # eight /26 and sixteen /122 blocks


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.kernel)


def sh(cmd: str, check: bool = True) -> str:
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd}: {r.stderr}")
    return r.stdout


class Lab:
    """The simulated hosts and what runs on them."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.hosts: list[str] = []
        self.etcd: dict[int, subprocess.Popen[bytes]] = {}
        self.daemons: dict[str, list[int]] = {}  # host -> PIDs of its BGP daemon(s)

    def state(self, host: str) -> str:
        return os.path.join(self.root, host)

    # -- hosts -------------------------------------------------------------

    def add_host(self, n: int) -> str:
        h = f"h{n}"
        sh(f"ip netns add {h} && ip link add eth0 netns {h} type veth peer name v{h} && "
           f"ip link set v{h} master br0 up && ip -n {h} addr add 10.0.0.{n}/24 dev eth0 && "
           f"ip -n {h} addr add fd00::{n}/64 dev eth0 nodad && ip -n {h} link set eth0 up && "
           f"ip -n {h} link set lo up")
        os.makedirs(self.state(h), exist_ok=True)
        self.hosts.append(h)
        return h

    def run(self, host: str, *args: str) -> Run:
        """`ipvnet ARGS` as HOST, in-process (this thread in HOST's namespace)."""
        with netns.entered(host):
            return cli("--state-dir", self.state(host), *args)

    def ok(self, host: str, *args: str) -> Run:
        r = self.run(host, *args)
        assert r.code == 0, f"{host}: ipvnet {' '.join(args)} -> {r.code}\n{r.out}\n{r.err}"
        return r

    def proc(self, host: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`ipvnet ARGS` as HOST in a real process (nsenter --net, as an operator would)."""
        import sys

        return subprocess.run(["nsenter", f"--net=/run/netns/{host}", sys.executable, "-m", "ipvnet", "--state-dir",
                               self.state(host), *args], capture_output=True, text=True, env={**os.environ, **(env or {})})

    # -- etcd ----------------------------------------------------------------

    def start_etcd(self, members: tuple[int, ...] = (0, 1, 2)) -> None:
        cluster = ",".join(f"e{i}=http://{ETCD_IP}:{p}" for i, (_, p) in enumerate(ETCD_PORTS))
        for i in members:
            c, p = ETCD_PORTS[i]
            data = os.path.join(self.root, f"etcd{i}")
            state = "existing" if os.path.exists(data) else "new"
            log = open(os.path.join(self.root, f"etcd{i}.log"), "ab")
            self.etcd[i] = subprocess.Popen(
                ["etcd", "--name", f"e{i}", "--data-dir", data, "--listen-client-urls", f"http://{ETCD_IP}:{c}",
                 "--advertise-client-urls", f"http://{ETCD_IP}:{c}", "--listen-peer-urls", f"http://{ETCD_IP}:{p}",
                 "--initial-advertise-peer-urls", f"http://{ETCD_IP}:{p}", "--initial-cluster", cluster,
                 "--initial-cluster-state", state, "--heartbeat-interval", "100", "--election-timeout", "2000"],
                stdout=log, stderr=log)
        self.wait_etcd()

    def wait_etcd(self, timeout: float = 30) -> None:
        """Until every running member serves writes (a leader is elected and they all follow it)."""
        from ipvnet.etcd import EtcdClient, EtcdError

        deadline = time.monotonic() + timeout
        for i in sorted(self.etcd):
            while True:
                try:
                    EtcdClient([f"http://{ETCD_IP}:{ETCD_PORTS[i][0]}"], timeout=1).put("/ipvnet-lab/ready", "1")
                    break
                except EtcdError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)

    def stop_etcd(self, members: tuple[int, ...] = (0, 1, 2)) -> None:
        for i in members:
            p = self.etcd.pop(i, None)
            if p is not None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    # -- BGP daemons ------------------------------------------------------------

    def start_bird(self, host: str, conf: str) -> None:
        path = os.path.join(self.root, f"bird-{host}.conf")
        with open(path, "w") as f:
            f.write(conf)
        pidfile = os.path.join(self.root, f"bird-{host}.pid")
        sh(f"ip netns exec {host} bird -c {path} -s {self.bird_sock(host)} -P {pidfile}")
        self.daemons[host] = [read_pid(pidfile)]

    def bird_sock(self, host: str) -> str:
        return os.path.join(self.root, f"bird-{host}.ctl")

    def reconfigure_bird(self, host: str, conf: str) -> None:
        with open(os.path.join(self.root, f"bird-{host}.conf"), "w") as f:
            f.write(conf)
        out = sh(f"birdc -s {self.bird_sock(host)} configure")
        assert "Reconfigur" in out, out

    def start_frr(self, host: str, conf: str) -> None:
        """zebra, bfdd and bgpd in HOST's namespace (`-N HOST`: sockets in /run/frr/HOST),
        then the integrated configuration applied through vtysh."""
        d = f"/etc/frr/{host}"  # a tmpfs in the sandbox (see `lab`)
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "vtysh.conf"), "w").close()
        pids = []
        for name in ("zebra", "bfdd", "bgpd"):
            sh(f"ip netns exec {host} /usr/lib/frr/{name} -N {host} -d -P 0")
            pids.append(read_pid(f"/run/frr/{host}/{name}.pid"))
        self.daemons[host] = list(reversed(pids))  # stop bgpd, bfdd, then zebra
        with open(os.path.join(self.root, f"frr-{host}.conf"), "w") as f:
            f.write(conf)
        sh(f"vtysh -N {host} -f {self.root}/frr-{host}.conf")

    def stop_daemons(self, host: str) -> None:
        for pid in self.daemons.pop(host, []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    # -- kernel state ---------------------------------------------------------------

    def routes(self, host: str, family: int = 4) -> list[dict]:
        out = sh(f"ip -{family} -j -d -n {host} route show")
        return json.loads(out) if out.strip() else []

    def wait_route(self, host: str, dst: str, present: bool = True, timeout: float = 10.0) -> float:
        """Seconds until HOST's kernel has (or, with present=False, lost) a route to DST."""
        family = 6 if ":" in dst else 4
        t0 = time.monotonic()
        while True:
            have = any(r.get("dst") == dst and r.get("type", "unicast") == "unicast" for r in self.routes(host, family))
            if have == present:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"{host}: route {dst} {'never came' if present else 'never left'} "
                                     f"in {timeout}s: {self.routes(host, family)}")
            time.sleep(0.02)


def read_pid(path: str, timeout: float = 10.0) -> int:
    """A daemon's PID from the file it writes once it has forked away."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def ping(ns: str, addr: str, count: int = 1) -> bool:
    fam = ["-6"] if ":" in addr else []
    return subprocess.run(["ip", "netns", "exec", ns, "ping", *fam, "-c", str(count), "-W", "1", addr],
                          capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    why = kconf._sandbox() or kconf.full_kernel()
    if why:
        kconf._refuse(why)
    missing = [b for b in ("etcd", "bird", "birdc", "vtysh") if shutil.which(b) is None]
    if missing:
        pytest.fail(f"the cluster suite needs {', '.join(missing)} (make deps installs them)", pytrace=False)
    kconf._wipe()
    for d in ("/run/frr", "/etc/frr"):  # FRR's sockets and per-host files stay in the sandbox
        os.makedirs(d, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", d], check=True)
    root = tempfile.mkdtemp(prefix="ipvnet-lab-")
    os.environ["IPVNET_RT_PROTOS_DIR"] = os.path.join(root, "rt_protos.d")
    lab = Lab(root)
    sh(f"ip link add br0 type bridge && ip link set br0 up && ip addr add {ETCD_IP}/24 dev br0 && "
       "ip addr add fd00::254/64 dev br0 nodad")
    for n in (1, 2, 3):
        lab.add_host(n)
    lab.start_etcd()
    try:
        yield lab
    finally:
        for h in list(lab.daemons):
            lab.stop_daemons(h)
        lab.stop_etcd()
        kconf._wipe()
        shutil.rmtree(root, ignore_errors=True)
