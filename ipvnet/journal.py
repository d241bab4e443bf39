"""Transactions in flight: the kernel operations a command is about to run.

A line is appended before each batch of operations runs, and the file is
removed after the store write. One left behind means the process died
mid-way; `check` reports it and `check --repair` undoes its operations (the
store never recorded them). A step rolled back in the process leaves a
`rolled_back_to` line, so its operations are not undone twice.

No fsync: the journal guards against a process dying, not the machine.
After a power loss the kernel objects it lists are gone anyway, and a torn
last line can only be one whose operations never started (it is written
before they run), so it is ignored.

Files: `<state-dir>/journal/<time>-<pid>.jsonl` (header line, then one line
per batch). The previous release's `<time>-<pid>.json` (one object with
"command", "pid" and "ops") is read too.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

from ipvnet.ops import Op


class Journal:
    def __init__(self, state_dir: str, command: str = "") -> None:
        self.dir = os.path.join(state_dir, "journal")
        self.command = command
        self.path: str | None = None
        self._fd: int | None = None
        self.lines = 0

    def _open(self) -> int:
        if self._fd is None:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            self.path = os.path.join(self.dir, f"{time.time_ns()}-{os.getpid()}.jsonl")
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_NOFOLLOW |
                               os.O_CLOEXEC, 0o600)
            self._write({"command": self.command, "pid": os.getpid(), "time": time.time()})
        return self._fd

    def _write(self, entry: dict[str, Any]) -> None:
        assert self._fd is not None
        os.write(self._fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode())

    def record(self, ops: list[Op]) -> int:
        """Log OPS before they run; returns the mark to roll back to."""
        mark = self.lines
        if ops:
            self._open()
            self._write({"ops": [op.to_dict() for op in ops]})
            self.lines += 1
        return mark

    def rolled_back_to(self, mark: int) -> None:
        if self._fd is not None and mark < self.lines:
            self._write({"rolled_back_to": mark})
            self.lines = mark

    def close(self) -> None:
        """Stop writing but keep the file: an undo failed, `check --repair` will finish it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def end(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.path = None
        self.lines = 0

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        """(path, {"command", "pid", "ops"}) of every journal left behind."""
        try:
            names = sorted(n for n in os.listdir(self.dir) if n.endswith((".json", ".jsonl")) and n[0] != ".")
        except FileNotFoundError:
            return []
        return [(os.path.join(self.dir, n), read_entry(os.path.join(self.dir, n))) for n in names]

    @staticmethod
    def discard(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def read_entry(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return {"command": "unknown (unreadable journal)", "ops": []}
    if path.endswith(".json"):
        try:
            old: dict[str, Any] = json.loads(raw)
            return old
        except ValueError:
            return {"command": "unknown (unreadable journal)", "ops": []}
    entry: dict[str, Any] = {"command": "unknown (unreadable journal)", "ops": []}
    batches: list[list[dict[str, Any]]] = []
    for i, line in enumerate(raw.splitlines()):
        try:
            d = json.loads(line)
        except ValueError:
            break  # a torn last line: its operations never started
        if i == 0:
            entry.update(command=d.get("command", "?"), pid=d.get("pid"), time=d.get("time"))
        elif "rolled_back_to" in d:
            del batches[int(d["rolled_back_to"]):]
        else:
            batches.append(d.get("ops", []))
    entry["ops"] = [op for batch in batches for op in batch]
    return entry
