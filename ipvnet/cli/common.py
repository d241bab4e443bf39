"""Shared CLI helpers: the context object and output for plans and warnings."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ipvnet.requests import Result
    from ipvnet.service import Service
    from ipvnet.store import State


@dataclass
class Ctx:
    state_dir: str
    debug: bool

    def read_state(self) -> State:
        """The read path (ls, inspect): the store only, without the service
        layer and what it imports (netlink, IPAM, planning)."""
        from ipvnet.store import open_store

        store = open_store(self.state_dir)
        with store.locked(exclusive=False):
            return store.load()

    def service(self, dry_run: bool = False) -> Service:
        from ipvnet.fault import Faults
        from ipvnet.service import Service

        trace = (lambda s: click.echo(f"+ {s}", err=True)) if self.debug else None
        return Service(self.state_dir, dry_run=dry_run, trace=trace, progress=progress_bar, faults=Faults.from_env())


@contextlib.contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr when it is a terminal and there is more
    than one step; nothing at all in a pipe or a script."""
    if total < 2 or not sys.stderr.isatty() or os.environ.get("TERM") == "dumb":
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


pass_ctx = click.make_pass_decorator(Ctx)

dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Print the kernel operations that would run; change nothing."
)


def report(res: Result, dry_run: bool) -> None:
    for w in res.warnings:
        click.echo(f"Warning: {w}", err=True)
    if dry_run:
        if not res.ops:
            click.echo("# no kernel changes")
        for op in res.ops:
            click.echo(op.describe())
