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
from collections.abc import Callable, Iterator

from ipvnet.nspath import NETNS_RUN_DIR, exists, path

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
CLONE_FS = 0x00000200
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


def _in_thread(fn: Callable[[], None], name: str) -> None:
    """Run FN on a thread of its own (which may switch namespaces and then ends); re-raise its error."""
    result: list[BaseException] = []

    def work() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            result.append(e)

    t = threading.Thread(target=work, name=name)
    t.start()
    t.join()
    if result:
        raise result[0]


def _mount_tags(mountinfo: str, target: str = NETNS_RUN_DIR) -> dict[str, str]:
    """Propagation tags (shared:N, master:N) of the mount that holds TARGET."""
    best, tags = "", {}
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    for line in lines:
        fields = line.split(" - ")[0].split()
        point = fields[4].replace("\\040", " ")
        if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best = point
            tags = dict(t.split(":", 1) for t in fields[6:] if ":" in t)
    return tags


def owner_mount_ns() -> str | None:
    """Inside `ip netns exec` (a private mount namespace, slave of the one it came
    from) a namespace's bind mount made here would die with the command. Then the
    mount must be made in the mount namespace whose shared /run/netns ours copies:
    an ancestor process's. Returns its /proc path, "" when a mount here is fine,
    and None when ours is a slave copy whose master cannot be found."""
    tags = _mount_tags("/proc/self/mountinfo")
    master = tags.get("master")
    if master is None or "shared" in tags:
        return ""
    pid = os.getppid()
    while pid > 0:
        if _mount_tags(f"/proc/{pid}/mountinfo").get("shared") == master:
            return f"/proc/{pid}/ns/mnt"
        if pid == 1:
            break
        pid = _ppid(pid)
    return None


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _enter_mount_ns(target: str) -> None:
    """Move this thread (only) into the mount namespace TARGET."""
    c = libc()
    _check(c.unshare(CLONE_FS), "unshare(CLONE_FS)")  # a thread sharing fs attributes may not switch
    fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(c.setns(fd, CLONE_NEWNS), "setns(mnt)", target)
    finally:
        os.close(fd)


class PrivateMountNamespace(OSError):
    """A namespace made here would vanish when this mount namespace does."""


def create(name: str) -> None:
    """Create /run/netns/NAME; raises FileExistsError if it already exists.

    The bind mount that keeps the namespace alive is made in the mount
    namespace that owns /run/netns, so it outlives `ip netns exec HOSTNS
    ipvnet ...` (see owner_mount_ns)."""
    owner = owner_mount_ns()
    if owner is None:
        raise PrivateMountNamespace(errno.EPERM, "this mount namespace is a private copy of /run/netns "
                                    "(inside `ip netns exec`?), so a namespace made here would vanish with it")
    p = path(name)

    def work() -> None:
        # This thread moves into the new namespace and then ends; the bind
        # mount keeps the namespace alive. The rest of the process is untouched.
        if owner:
            _enter_mount_ns(owner)
        _share_run_dir()
        fd = os.open(p, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0)
        os.close(fd)
        try:
            c = libc()
            _check(c.unshare(CLONE_NEWNET), "unshare", p)
            src = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
            _check(c.mount(src, p.encode(), b"none", MS_BIND, None), "mount", p)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(p)
            raise

    _in_thread(work, f"netns-create-{name}")


def remove(name: str) -> bool:
    """Unmount and remove /run/netns/NAME (in the mount namespace that owns it).
    Returns False if it was not there."""
    p = path(name)
    if not os.path.lexists(p):
        return False
    owner = owner_mount_ns()
    gone: list[bool] = []

    def work() -> None:
        if owner:
            _enter_mount_ns(owner)
        libc().umount2(p.encode(), MNT_DETACH)
        try:
            os.unlink(p)
            gone.append(True)
        except FileNotFoundError:
            gone.append(False)

    if owner:
        _in_thread(work, f"netns-remove-{name}")
    else:
        work()
    return gone[0]


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
