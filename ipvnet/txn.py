"""One transaction path for every command: observe -> plan -> run -> commit.

A Transaction holds the store lock and the loaded State, runs kernel
operations through the engine (journalled first), writes hosts files through
an undoable writer, and keeps one undo stack for both. On failure the stack is
unwound newest-first, so kernel, files and store are as they were; on success
the store is written (only what changed) and the journal removed.

Batches (attach of several namespaces, apply) are the same object: each
step is a savepoint. A failed step is unwound to its savepoint; the steps
before it are real and committed, and the error says how many there were.

Order of effects (crash-safety contract): journal -> kernel -> hosts files ->
store -> journal removed. A process killed in between leaves the journal,
which `check --repair` undoes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from ipvnet.errors import IpvnetError
from ipvnet.fault import Faults, point
from ipvnet.files import Files, UndoableFiles
from ipvnet.journal import Journal
from ipvnet.kernel import Engine
from ipvnet.model import Network
from ipvnet.names import Names
from ipvnet.ops import Op
from ipvnet.record import dataclass, field
from ipvnet.store import State, Store

Progress = Callable[[int, str], contextlib.AbstractContextManager[Callable[[], None]]]


@contextlib.contextmanager
def no_progress(_total: int, _label: str) -> Iterator[Callable[[], None]]:
    yield lambda: None


@dataclass
class _Mark:
    undo: int
    journal: int
    networks: dict[str, Network]
    seq: int


@dataclass
class Transaction:
    store: Store
    state: State
    engine: Engine
    command: str
    dry_run: bool = False
    faults: Faults | None = None
    progress: Progress = no_progress
    boot_id: str = ""
    planned: list[Op] = field(default_factory=list)  # every kernel op, run or (dry run) not
    steps_done: int = 0
    _undo: list[Callable[[], None]] = field(default_factory=list)
    _hosts_stage: bool = False
    _context: str = ""  # the batch step running, for error messages
    _committing: bool = False
    warnings: list[str] = field(default_factory=list)
    _after: list[Callable[[], None]] = field(default_factory=list)
    _clusters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.journal = Journal(self.store.dir, self.command)
        self._names = Names(self.store.dir, _DryFiles() if self.dry_run else UndoableFiles(self._undo.append))
        self.start = self.kept = self.mark()

    def hosts(self) -> Names:
        """The hosts and resolv.conf writer; reaching it is the `hosts` stage (after the kernel work)."""
        if not self._hosts_stage:
            self._hosts_stage = True
            point(self.faults, "hosts")
        return self._names

    # -- effects -----------------------------------------------------------

    def kernel(self, ops: list[Op]) -> None:
        """Journal OPS, run them (the engine undoes a partial run itself), and
        remember them for a later rollback."""
        self.planned.extend(ops)
        if self.dry_run or not ops:
            return
        self.journal.record(ops)
        point(self.faults, "journal")
        try:
            with self.progress(len(ops) if len(ops) >= 20 else 0, self.command) as advance:
                self.engine.run(ops, advance)
        except IpvnetError as e:
            raise e.wrap(self._context or self.command) from e.__cause__
        self._undo.append(lambda: self._rollback_kernel(ops))

    def push_undo(self, undo: Callable[[], None]) -> None:
        """An effect outside kernel and files (an etcd claim): its undo joins the one stack."""
        self._undo.append(undo)

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run once the store is written (an etcd release); a failure becomes a warning,
        since what it leaves (an orphan claim) is found and fixed by `check --repair`."""
        self._after.append(action)

    def cluster(self, name: str) -> Any:
        """This host's view of cluster NAME (ipvnet.store.cluster.ClusterBlocks), one per transaction."""
        if name not in self._clusters:
            from ipvnet.store.cluster import ClusterBlocks, load_membership

            self._clusters[name] = ClusterBlocks(load_membership(self.store.dir, name))
        return self._clusters[name]

    def _rollback_kernel(self, ops: list[Op]) -> None:
        leftovers = self.engine.rollback(ops)
        if leftovers:
            raise IpvnetError("rollback incomplete: " + "; ".join(leftovers), "run `ipvnet check --repair`")

    # -- savepoints ----------------------------------------------------------

    def mark(self) -> _Mark:
        return _Mark(len(self._undo), self.journal.lines, dict(self.state.networks), self.state.seq)

    def rollback_to(self, mark: _Mark) -> list[str]:
        """Unwind newest-first to MARK; keeps going past failures and returns them."""
        failures = []
        while len(self._undo) > mark.undo:
            try:
                self._undo.pop()()
            except Exception as e:  # noqa: BLE001 - reported, unwinding continues
                failures.append(str(e))
        self.journal.rolled_back_to(mark.journal)
        self.state.networks, self.state.seq = mark.networks, mark.seq
        return failures

    @contextlib.contextmanager
    def step(self, what: str, total: int) -> Iterator[None]:
        """A batch step (WHAT, one of TOTAL): on failure only this step is
        unwound, and the error says how many were applied before it."""
        mark = self.mark()
        self._context = what
        try:
            yield
        except BaseException as e:
            failures = self.rollback_to(mark)
            if isinstance(e, IpvnetError):
                _annotate(e, what, f"{self.steps_done} of {total} changes were applied", failures)
            raise
        finally:
            self._context = ""
        self.steps_done += 1
        self.kept = self.mark()

    # -- the end -----------------------------------------------------------------

    def commit(self) -> None:
        """Write the store (what changed), then drop the journal."""
        if self.dry_run:
            return
        self._committing = True
        if self.boot_id and not self.state.boot_id and self.state.networks:
            self.state.boot_id = self.boot_id
        self.hosts()  # every transaction passes the `hosts` stage, writing files or not
        point(self.faults, "store")
        if self.state.dirty():
            self.store.save(self.state)
        self.journal.end()
        for action in self._after:
            try:
                action()
            except IpvnetError as e:
                self.warnings.append(f"{e} (`ipvnet check --repair` finishes it later)")
        self._after.clear()

    def abort(self) -> list[str]:
        """After a failure: unwind what is not kept, commit what is (the completed
        steps of a batch), and return what could not be undone."""
        if self._committing:  # the commit itself failed: nothing of this transaction is kept
            self.kept, self.steps_done = self.start, 0
        failures = self.rollback_to(self.kept)
        if self.steps_done and not self.dry_run:
            self.commit()
        elif failures:
            self.journal.close()  # left for `check --repair` to finish the undo
        else:
            self.journal.end()
        return failures


def _annotate(e: IpvnetError, what: str, done: str, failures: list[str]) -> None:
    if what and not e.message.startswith(what):
        e.message = f"{what}: {e.message}"
    notes = [e.hint] if e.hint else []
    notes.append(done)
    if failures:
        notes.append("rollback incomplete: " + "; ".join(failures))
    e.hint = "; ".join(notes) or None


class _DryFiles(Files):
    """A dry run writes nothing."""

    def write_in_place(self, path: str, text: str, append: bool = False) -> None:
        pass

    def replace(self, path: str, text: str | None = None, link_to: str | None = None) -> None:
        pass

    def unlink(self, path: str) -> None:
        pass

    def mkdir(self, path: str) -> bool:
        return False

    def makedirs(self, path: str) -> None:
        pass

    def rmdir(self, path: str) -> None:
        pass
