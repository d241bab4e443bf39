"""Shared CLI helpers: the context object and output for plans and warnings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ipvnet.record import dataclass

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
        from ipvnet.actions import make_service

        return make_service(self.state_dir, self.debug, dry_run)


pass_ctx = click.make_pass_decorator(Ctx)

dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Print the kernel operations that would run; change nothing."
)


def report(res: Result, dry_run: bool) -> None:
    from ipvnet.actions import report as _report

    _report(res, dry_run)
