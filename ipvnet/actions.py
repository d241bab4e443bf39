"""What `attach` and `detach` do once their arguments are parsed, without click.

Shell loops call these two commands thousands of times; `ipvnet.entry` runs
them straight from argv when the arguments are the plain ones, and the click
commands call the same functions, so both paths print the same lines.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ipvnet.requests import Result
    from ipvnet.service import Service


def out(line: str) -> None:
    sys.stdout.write(line + "\n")


def err(line: str) -> None:
    sys.stderr.write(line + "\n")


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


def make_service(state_dir: str, debug: bool, dry_run: bool = False) -> Service:
    from ipvnet.fault import Faults
    from ipvnet.service import Service

    trace = (lambda s: err(f"+ {s}")) if debug else None
    return Service(state_dir, dry_run=dry_run, trace=trace, progress=progress_bar, faults=Faults.from_env())


def report(res: Result, dry_run: bool) -> None:
    for w in res.warnings:
        err(f"Warning: {w}")
    if dry_run:
        if not res.ops:
            out("# no kernel changes")
        for op in res.ops:
            out(op.describe())


def attach(state_dir: str, debug: bool, namespaces: list[str], network: str, ip: str | None = None,
           ip6: str | None = None, ifname: str | None = None, aliases: tuple[str, ...] = (), gw_priority: int = 0,
           mac: str | None = None, create: bool = False, dry_run: bool = False) -> None:
    from ipvnet.errors import InvalidArgument
    from ipvnet.requests import AttachSpec

    if len(namespaces) > 1 and (ip or ip6 or ifname or mac or aliases):
        raise InvalidArgument("--ip, --ip6, --ifname, --mac and --alias apply to one namespace",
                              "attach namespaces with their own options one at a time")
    specs = [AttachSpec(ns, network, ip, ip6, ifname, aliases, gw_priority, mac, create) for ns in namespaces]
    with make_service(state_dir, debug, dry_run) as svc:
        results = [svc.attach(specs[0])] if len(specs) == 1 else svc.attach_many(specs)
    for res in results:
        report(res, dry_run)
        if not dry_run and res.endpoint is not None:
            ep = res.endpoint
            out(f"{ep.ns} {ep.ifname} {' '.join(str(a) for a in ep.addresses())}".rstrip())


def detach(state_dir: str, debug: bool, ns: str, network: str, dry_run: bool = False) -> None:
    with make_service(state_dir, debug, dry_run) as svc:
        res = svc.detach(ns, network)
    report(res, dry_run)


def apply(state_dir: str, debug: bool, file: str, prune: bool = False, dry_run: bool = False) -> None:
    from ipvnet.errors import NotFound

    try:
        if file == "-":
            text = sys.stdin.read()
        else:
            with open(file, encoding="utf-8") as f:
                text = f.read()
    except FileNotFoundError:
        raise NotFound(f"file {file} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise NotFound(f"cannot read {file}: {e}") from None
    with make_service(state_dir, debug, dry_run) as svc:
        done = svc.apply(text, file, prune)
    for a in done:
        out(a.describe())
    if not done:
        out("# nothing to change")
