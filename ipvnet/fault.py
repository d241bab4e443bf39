"""Fault injection, a test hook: stop at a named step of a transaction.

IPVNET_FAULT=[kill@]STEP[:N] makes the Nth arrival at STEP raise a
KernelError (rollback must leave nothing) or, with `kill@`, SIGKILL the
process there (`check` must report it, `check --repair` must fix it).
Steps are the kernel operations (`link_add`, `link_set`, `sysctl`,
`addr_add`, `route_add`, `route_del`, `link_del`, `netns_add`) and the
transaction's own stages: `journal` (after the journal is written),
`hosts` (before hosts files) and `store` (before the store write).

The variable is read once, when a command starts (`Faults.from_env`); in
production it is unset and every check is a test of `None`.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

from ipvnet.errors import KernelError
from ipvnet.record import dataclass, field


@dataclass
class Faults:
    step: str
    count: int = 1
    kill: bool = False
    seen: int = field(default=0, compare=False)

    @classmethod
    def parse(cls, spec: str) -> Faults | None:
        if not spec:
            return None
        kill = spec.startswith("kill@")
        name, _, count = spec.removeprefix("kill@").partition(":")
        return cls(name, int(count or 1), kill)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Faults | None:
        return cls.parse(env.get("IPVNET_FAULT", ""))

    def point(self, step: str, detail: str = "") -> None:
        if step != self.step:
            return
        self.seen += 1
        if self.seen != self.count:
            return
        if self.kill:
            os.kill(os.getpid(), signal.SIGKILL)
        raise KernelError(f"injected fault at {step}{': ' + detail if detail else ''}")


def point(faults: Faults | None, step: str, detail: str = "") -> None:
    """A named step: does nothing unless a test armed FAULTS for it."""
    if faults is not None:
        faults.point(step, detail)
