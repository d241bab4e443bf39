"""Fault injection for tests: stop at a named step of a transaction.

IPVNET_FAULT=[kill@]STEP[:N] makes the Nth arrival at STEP raise a
KernelError (rollback must leave nothing) or, with `kill@`, SIGKILL the
process there (`check` must report it, `check --repair` must fix it).
Steps are the kernel operations (`link_add`, `link_set`, `sysctl`,
`addr_add`, `route_add`, `route_del`, `link_del`, `netns_add`) and the
transaction's own stages: `journal` (after the journal is written),
`hosts` (before hosts files) and `store` (before the store write).
"""

from __future__ import annotations

import os
import signal

from ipvnet.errors import KernelError

_seen: dict[str, int] = {}


def point(step: str, detail: str = "") -> None:
    spec = os.environ.get("IPVNET_FAULT")
    if not spec:
        return
    kill = spec.startswith("kill@")
    name, _, count = spec.removeprefix("kill@").partition(":")
    if name != step:
        return
    _seen[step] = _seen.get(step, 0) + 1
    if _seen[step] != int(count or 1):
        return
    if kill:
        os.kill(os.getpid(), signal.SIGKILL)
    raise KernelError(f"injected fault at {step}{': ' + detail if detail else ''}")


def reset() -> None:
    _seen.clear()
