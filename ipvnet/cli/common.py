"""Shared CLI helpers: the context object and output for plans and warnings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ipvnet.service import Result, Service


@dataclass
class Ctx:
    state_dir: str
    debug: bool

    def service(self, dry_run: bool = False) -> Service:
        from ipvnet.service import Service

        trace = (lambda s: click.echo(f"+ {s}", err=True)) if self.debug else None
        return Service(self.state_dir, dry_run=dry_run, trace=trace)


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
