"""The service layer: one function per command, each one transaction.

Service holds what every command shares (store, engine, options of this run)
and opens transactions; the commands live in the modules beside it
(networks, attach, apply, checks), each short: validate the request, observe
the facts, plan (pure), run, commit. See ipvnet.txn for the order of effects.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from ipvnet.errors import PermissionDenied
from ipvnet.fault import Faults
from ipvnet.kernel import Engine
from ipvnet.requests import AttachSpec, NetworkSpec, Result
from ipvnet.store import State, Store, open_store
from ipvnet.txn import Progress, Transaction, no_progress

__all__ = ["AttachSpec", "NetworkSpec", "Random", "Result", "Service"]


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise PermissionDenied(f"{what} changes the kernel and needs root", "run it with sudo")


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


class Random:
    """Identifiers and MACs, from the kernel's CSPRNG (tests hand in a seeded one).
    (`secrets` would do the same, but importing it pulls in hmac and OpenSSL:
    ~0.1 s per command in a UML guest.)"""

    def hex(self, nbytes: int) -> str:
        return os.urandom(nbytes).hex()

    def mac(self) -> str:
        b = bytearray(os.urandom(6))
        b[0] = (b[0] & 0xFE) | 0x02  # unicast, locally administered
        return ":".join(f"{x:02x}" for x in b)


class Service:
    def __init__(
        self,
        state_dir: str | None = None,
        dry_run: bool = False,
        trace: Callable[[str], None] | None = None,
        progress: Progress | None = None,
        faults: Faults | None = None,
        engine: Engine | None = None,
        store: Store | None = None,
        rand: Random | None = None,
    ) -> None:
        self.store = store or open_store(state_dir)
        self.dry_run = dry_run
        self.trace = trace
        self.faults = faults
        self._engine = engine
        self.rand = rand or Random()
        self.progress: Progress = progress or no_progress  # a progress bar on a terminal

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from ipvnet.engine import NetlinkEngine

            self._engine = NetlinkEngine(trace=self.trace, faults=self.faults)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self) -> State:
        with self.store.locked(exclusive=False):
            return self.store.load()

    @contextlib.contextmanager
    def transaction(self, command: str) -> Iterator[Transaction]:
        """Lock, load, yield the transaction; commit on success, unwind on failure."""
        if not self.dry_run:
            require_root(command)
        with self.store.locked(exclusive=not self.dry_run):
            tx = Transaction(self.store, self.store.load(), self.engine, command, self.dry_run, self.faults,
                             self.progress, boot_id())
            try:
                yield tx
                tx.commit()
            except BaseException:
                tx.abort()
                raise

    # -- commands ----------------------------------------------------------

    def create_network(self, spec: NetworkSpec) -> Result:
        from ipvnet.service.networks import create_network

        return create_network(self, spec)

    def remove_networks(self, names: tuple[str, ...], force: bool = False) -> Result:
        from ipvnet.service.networks import remove_networks

        return remove_networks(self, names, force)

    def prune(self) -> Result:
        from ipvnet.service.networks import prune

        return prune(self)

    def attach(self, spec: AttachSpec) -> Result:
        from ipvnet.service.attach import attach

        return attach(self, spec)

    def attach_many(self, specs: list[AttachSpec]) -> list[Result]:
        from ipvnet.service.attach import attach_many

        return attach_many(self, specs)

    def detach(self, ns: str, network: str) -> Result:
        from ipvnet.service.attach import detach

        return detach(self, ns, network)

    def run_ns(self, spec: AttachSpec, cmd: list[str], remove: bool) -> int:
        from ipvnet.service.attach import run_ns

        return run_ns(self, spec, cmd, remove)

    def apply(self, text: str, path: str, prune: bool = False) -> list[Any]:
        from ipvnet.service.apply import apply

        return apply(self, text, path, prune)

    def check(self, repair: bool = False) -> tuple[list[Any], list[str]]:
        from ipvnet.service.checks import check

        return check(self, repair)

    def export_routes(self, network: str | None, aggregate: bool = False) -> list[Any]:
        from ipvnet.service.checks import export_routes

        return export_routes(self, network, aggregate)
