"""What the service layer knows of the kernel: the facts it reads and the
engine protocol it drives. Light on purpose (no netlink imports), so the
service, reconcile and their unit tests can use it; `ipvnet.engine` is the
real implementation and `tests/unit/fake_engine.py` a recording fake.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ipvnet.errors import Conflict, IpvnetError, KernelError, NotFound
from ipvnet.fault import Faults, point
from ipvnet.ops import LinkAdd, Op, Sysctl
from ipvnet.record import dataclass

# A missing link, namespace, address or route: what an undo finds already done.
GONE = (errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL)


def errno_of(e: BaseException) -> int | None:
    code = getattr(e, "errno", None)
    return code if isinstance(code, int) else None


@dataclass
class LinkInfo:
    index: int
    name: str
    kind: str
    link: int | None  # parent index (same namespace unless link_netnsid)
    mac: str
    up: bool
    mode: str = ""  # ipvlan l2/l3/l3s, macvlan mode
    flag: str = ""  # ipvlan bridge/private/vepa
    vlan_id: int | None = None
    mtu: int = 0


@dataclass(frozen=True)
class RouteInfo:
    """A route of the main table: DST None is the default route."""

    family: int
    dst: str | None
    dev: str | None
    gateway: str | None
    proto: int = 0
    blackhole: bool = False


@dataclass
class Check:
    """One line of `ipvnet doctor`."""

    name: str
    ok: bool
    detail: str = ""


@runtime_checkable
class Engine(Protocol):
    """Every kernel read and change the service makes goes through this."""

    def link(self, name: str, ns: str | None = None) -> LinkInfo | None: ...
    def links(self, ns: str | None = None) -> list[LinkInfo]: ...
    def link_names(self, ns: str | None = None) -> list[str]: ...
    def link_index(self, name: str, ns: str | None = None) -> int | None: ...
    def addresses(self, ns: str | None = None) -> list[tuple[str, str]]: ...
    def routes(self, ns: str | None = None) -> list[RouteInfo]: ...
    def ns_exists(self, name: str) -> bool: ...
    def namespaces(self) -> list[str]: ...
    def ipv6_available(self) -> bool: ...
    def run(self, ops: list[Op], advance: Callable[[], None] | None = None) -> None: ...
    def rollback(self, done: list[Op]) -> list[str]: ...
    def apply(self, op: Op) -> None: ...
    def forget(self, ns: str) -> None: ...
    def probe(self) -> list[Check]: ...
    def close(self) -> None: ...


class OpRunner:
    """Running a plan: in order, consecutive sysctls of one namespace grouped,
    each step a named fault point; on failure the completed steps are undone
    newest-first and the error explained. Shared by the netlink engine and
    the test fake, which differ only in `apply` and `_sysctls`."""

    faults: Faults | None = None

    def apply(self, op: Op) -> None:
        raise NotImplementedError

    def _sysctls(self, ops: list[Sysctl]) -> None:
        raise NotImplementedError

    def run(self, ops: list[Op], advance: Callable[[], None] | None = None) -> None:
        """Apply ops in order; on failure undo the completed ones and re-raise."""
        done: list[Op] = []
        op: Op | None = None
        try:
            i = 0
            while i < len(ops):
                op = ops[i]
                group = self._sysctl_group(ops, i) if isinstance(op, Sysctl) and op.ns is not None else [op]
                for g in group:
                    point(self.faults, g.action, g.describe())
                if len(group) > 1 or isinstance(op, Sysctl):
                    self._sysctls(group)  # type: ignore[arg-type]
                else:
                    self.apply(op)
                for g in group:
                    done.append(g)
                    if advance is not None:
                        advance()
                i += len(group)
        except BaseException as e:
            leftovers = self.rollback(done)
            if isinstance(e, (KeyboardInterrupt, SystemExit)) or op is None:
                raise
            err = e if isinstance(e, IpvnetError) else self._explain(op, e)
            if leftovers:
                err.hint = (err.hint + "; " if err.hint else "") + "rollback incomplete: " + "; ".join(leftovers)
            raise err from (None if err is e else e)

    @staticmethod
    def _sysctl_group(ops: list[Op], i: int) -> list[Op]:
        """Consecutive sysctls in one namespace share one setns round trip."""
        group = [ops[i]]
        while i + len(group) < len(ops) and isinstance(ops[i + len(group)], Sysctl) and \
                ops[i + len(group)].ns == ops[i].ns:
            group.append(ops[i + len(group)])
        return group

    def rollback(self, done: list[Op]) -> list[str]:
        """Undo newest-first, keep going past failures, return what failed."""
        failures = []
        for op in reversed(done):
            undo = op.undo()
            if undo is None:
                continue
            try:
                self.apply(undo)
            except Exception as e:  # noqa: BLE001 - we report and continue
                if errno_of(e) in GONE or isinstance(e, NotFound):
                    continue
                failures.append(f"{undo.describe()}: {e}")
        return failures

    def _explain(self, op: Op, e: BaseException) -> IpvnetError:
        code = errno_of(e)
        what = op.what()
        if isinstance(op, LinkAdd) and code == errno.EOPNOTSUPP:
            return KernelError(
                f"{what}: the kernel does not support {op.kind} links",
                f"load the module ({'8021q' if op.kind == 'vlan' else op.kind}) or run `ipvnet doctor`",
            )
        if code == errno.EADDRINUSE:
            return Conflict(
                f"{what}: the kernel reports the address is already assigned to another link on the same parent",
                "choose another --ip, or detach the namespace that holds it",
            )
        if code == errno.EEXIST:
            return Conflict(f"{what}: already exists in the kernel", "run `ipvnet check`")
        if code == errno.EBUSY and isinstance(op, LinkAdd):
            return Conflict(
                f"{what}: the parent is busy (it may already carry links of another driver or mode)",
                "use another parent",
            )
        if code == errno.EPERM:
            return KernelError(f"{what}: operation not permitted", "run as root")
        msg = os.strerror(code) if isinstance(code, int) else str(e)
        return KernelError(f"{what}: {msg}")

