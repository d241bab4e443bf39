"""Creating, removing and entering named network namespaces without forking.

Only the engine (and the kernel-test sandbox) may switch namespaces; the
lint rule TID251 holds everything else to ipvnet.nspath, which only looks.

pyroute2's ``netns.create`` and ``IPRoute(netns=...)`` fork a helper process
each; inside a UML guest that costs ~0.2 s per call. The kernel only needs the
calling *thread* to switch namespaces, so we unshare/setns on one thread and
restore it afterwards. iproute2 (``ip netns add``) does the same mount dance,
so namespaces made here are indistinguishable from its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading
from collections.abc import Iterator

from ipvnet.nspath import NETNS_RUN_DIR, exists, path

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_BIND = 4096
MS_REC = 16384
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(ret: int, what: str, path: str | None = None) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def _share_run_dir() -> None:
    """Make /run/netns a shared mount point, as iproute2 does, so that bind
    mounts made here propagate into mount namespaces made later."""
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    c = libc()
    d = NETNS_RUN_DIR.encode()
    if c.mount(b"", d, b"none", MS_SHARED | MS_REC, None) == 0:
        return
    _check(c.mount(d, d, b"none", MS_BIND | MS_REC, None), "bind /run/netns", NETNS_RUN_DIR)
    _check(c.mount(b"", d, b"none", MS_SHARED | MS_REC, None), "share /run/netns", NETNS_RUN_DIR)


def create(name: str) -> None:
    """Create /run/netns/NAME; raises FileExistsError if it already exists."""
    _share_run_dir()
    p = path(name)
    fd = os.open(p, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0)
    os.close(fd)
    result: list[BaseException] = []

    def work() -> None:
        # This thread moves into the new namespace and then exits; the bind
        # mount keeps the namespace alive. The rest of the process is untouched.
        try:
            c = libc()
            _check(c.unshare(CLONE_NEWNET), "unshare", p)
            src = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
            _check(c.mount(src, p.encode(), b"none", MS_BIND, None), "mount", p)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            result.append(e)

    t = threading.Thread(target=work, name=f"netns-create-{name}")
    t.start()
    t.join()
    if result:
        with contextlib.suppress(OSError):
            os.unlink(p)
        raise result[0]


def remove(name: str) -> bool:
    """Unmount and remove /run/netns/NAME. Returns False if it was not there."""
    p = path(name)
    if not os.path.lexists(p):
        return False
    libc().umount2(p.encode(), MNT_DETACH)
    try:
        os.unlink(p)
    except FileNotFoundError:
        return False
    return True


def open_fd(name: str) -> int:
    if not exists(name):
        raise FileNotFoundError(errno.ENOENT, "no such network namespace", path(name))
    return os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with this thread in namespace NAME, then switch back.

    setns(CLONE_NEWNET) changes only the calling thread; sockets opened inside
    stay bound to NAME after we return, which is how the engine gets a netlink
    socket in a namespace without a helper process.
    """
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = open_fd(name)
        try:
            _check(libc().setns(target, CLONE_NEWNET), "setns", path(name))
        finally:
            os.close(target)
        try:
            yield
        finally:
            _check(libc().setns(own, CLONE_NEWNET), "setns back")
    finally:
        os.close(own)
