"""Kernel tests run in a sandbox: a fresh network and mount namespace for the
whole session, with tmpfs over /run/netns and /etc/netns. Every link,
namespace and file a test makes lives there, so a capable host's real NICs
(and its `eth0`) are never seen, and cleanup can remove everything in it."""

from __future__ import annotations

import functools
import os
import subprocess

import pytest

from ipvnet import netns

SANDBOX_READY = False


def _sandbox() -> str | None:
    """Enter the sandbox; returns why not, or None when done."""
    global SANDBOX_READY
    if SANDBOX_READY:
        return None
    if os.geteuid() != 0:
        return "kernel tests need root"
    c = netns.libc()
    if c.unshare(netns.CLONE_NEWNS | netns.CLONE_NEWNET) != 0:
        return f"unshare failed: {os.strerror(__import__('ctypes').get_errno())}"
    # Private mount propagation: nothing we mount leaks to the host.
    if c.mount(b"none", b"/", None, netns.MS_REC | (1 << 18), None) != 0:  # MS_PRIVATE
        return "cannot make / private"
    for d in ("/run/netns", "/etc/netns"):
        os.makedirs(d, exist_ok=True)
        if c.mount(b"tmpfs", d.encode(), b"tmpfs", 0, None) != 0:
            return f"cannot mount tmpfs on {d}"
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    SANDBOX_READY = True
    return None


def _probe(cmds: list[list[str]], cleanup: list[str]) -> str | None:
    try:
        for cmd in cmds:
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                return f"kernel cannot `{' '.join(cmd[1:])}`: {r.stderr.strip()}"
    finally:
        subprocess.run(cleanup, capture_output=True)
    return None


@functools.cache
def full_kernel() -> str | None:
    """Why the kernel cannot run every test (dummy, ipvlan, 8021q), or None."""
    return _probe(
        [
            ["ip", "link", "add", "kt-probe0", "type", "dummy"],
            ["ip", "link", "add", "kt-probe1", "link", "kt-probe0", "type", "ipvlan", "mode", "l2"],
            ["ip", "link", "add", "kt-probe0.9", "link", "kt-probe0", "type", "vlan", "id", "9"],
        ],
        ["ip", "link", "del", "kt-probe0"],
    )


@functools.cache
def macvlan_kernel() -> str | None:
    """Why the kernel cannot run the `hostkernel` tests (veth, macvlan), or None."""
    return _probe(
        [
            ["ip", "link", "add", "kt-probe2", "type", "veth", "peer", "name", "kt-probe3"],
            ["ip", "link", "add", "kt-probe4", "link", "kt-probe2", "type", "macvlan", "mode", "bridge"],
        ],
        ["ip", "link", "del", "kt-probe2"],
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.kernel)


def _refuse(why: str) -> None:
    if os.environ.get("IPVNET_REQUIRE_KERNEL") == "1":
        pytest.fail(f"kernel tests required but cannot run: {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def sandbox() -> None:
    why = _sandbox()
    if why:
        _refuse(why)


@pytest.fixture(autouse=True)
def kernel_features(request: pytest.FixtureRequest, sandbox: None) -> None:
    """Tests marked `hostkernel` need only veth and macvlan (this host's kernel
    has them); every other kernel test needs dummy, ipvlan and 8021q too."""
    why = macvlan_kernel() if request.node.get_closest_marker("hostkernel") else full_kernel()
    if why:
        _refuse(why)


def _wipe() -> None:
    """Remove everything in the sandbox: it all belongs to the tests."""
    for name in os.listdir("/run/netns"):
        netns.remove(name)
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name != "lo":
            subprocess.run(["ip", "link", "del", name], capture_output=True)
    subprocess.run(["rm", "-rf", "--one-file-system", *[os.path.join("/etc/netns", n) for n in os.listdir("/etc/netns")]])


@pytest.fixture(autouse=True)
def clean(kernel_features: None, tmp_path, monkeypatch: pytest.MonkeyPatch):
    """Each test gets its own store and an empty sandbox, and leaves one behind."""
    state = tmp_path / "state"
    monkeypatch.setenv("IPVNET_STATE_DIR", str(state))
    monkeypatch.delenv("IPVNET_FAULT", raising=False)
    _wipe()
    yield state
    _wipe()


@pytest.fixture
def eth0() -> str:
    """A link named like a host NIC, inside the sandbox: the stand-in parent.
    A dummy where the kernel has them, else one end of a veth pair."""
    if full_kernel() is None:
        subprocess.run(["ip", "link", "add", "eth0", "type", "dummy"], check=True)
    else:
        subprocess.run(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"], check=True)
        subprocess.run(["ip", "link", "set", "eth0p", "up"], check=True)
    subprocess.run(["ip", "link", "set", "eth0", "up"], check=True)
    return "eth0"
