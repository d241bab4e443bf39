"""The parsed copy of a network file, `cache/NAME.json`: its format, and
reading, patching and writing it without touching each member in Python.

The TOML files are the store; the copy spares each command the pure-Python
TOML parser (~46 ms for a network of 1000 namespaces on a fast host, several
times that in a UML guest). Its first line is a JSON object:

    {"format": 3, "key": [inode, size, mtime_ns], "data": {...}, "top": N, "layout": true}

`key` is the identity of the TOML file it copies (any other file: a miss),
`data` the network without its namespaces, `top` the highest seq handed out
and `layout` whether that TOML file is in the writer's own layout (namespaces
last, one line each), which lets the next attach append to it unread. Each
further line is one namespace:

    NS <TAB> IPv4 as an integer, or nothing <TAB> same for IPv6 <TAB> {entry as JSON}

Names hold no tab and JSON text no raw tab or newline, so C code alone
(split, slices, zip, dict) turns the lines into NS -> entry text and the
address index every attach needs; a line is added or cut by byte offsets. In a UML
guest, where every large allocation costs page faults, that is what keeps an
attach to the 1000th member near the cost of the 10th.
"""

from __future__ import annotations

import contextlib
import json
import os
from itertools import compress, repeat
from typing import Any

from ipvnet.model import address_keys

FORMAT = 3  # a copy in another format is a miss
_ENC = json.JSONEncoder(separators=(",", ":")).encode

Held = dict[tuple[int, int], str]


class Copy:
    """A copy as read: its first line, and its bytes with where the lines begin."""

    __slots__ = ("head", "raw", "at")

    def __init__(self, head: dict[str, Any], raw: bytes, at: int) -> None:
        self.head, self.raw, self.at = head, raw, at


def read(fd: int) -> Copy | None:
    """The copy open at FD; None when it is not one in this format."""
    with os.fdopen(fd, "rb") as f:
        raw = f.read()
    nl = raw.find(b"\n")
    head = json.loads(raw[:nl] if nl >= 0 else raw)
    if not isinstance(head, dict) or head.get("format") != FORMAT or not isinstance(head.get("data"), dict):
        return None
    return Copy(head, raw, nl + 1 if nl >= 0 else len(raw))


def members(copy: Copy) -> tuple[dict[str, str], Held]:
    """NS -> its entry's JSON text, and address key -> NS; ValueError for a malformed copy.

    Tabs and newlines both end a field, so one split gives every field in
    order and the columns are slices; a line with a field too few or too many
    puts something that is not a JSON object in the entry column."""
    fields = str(memoryview(copy.raw)[copy.at:], "utf-8").replace("\n", "\t").split("\t")
    if fields.pop() != "" or len(fields) % 4:
        raise ValueError("the copy's lines do not have four fields each")
    names, v4, v6, texts = fields[0::4], fields[1::4], fields[2::4], fields[3::4]
    if not all(map(str.startswith, texts, repeat("{"))):
        raise ValueError("the copy's lines do not have four fields each")
    held = dict(zip(zip(repeat(4), map(int, compress(v4, v4)), strict=False), compress(names, v4), strict=True))
    held.update(zip(zip(repeat(6), map(int, compress(v6, v6)), strict=False), compress(names, v6), strict=True))
    return dict(zip(names, texts, strict=True)), held


def lines(entries: dict[str, dict[str, Any]]) -> bytes:
    """The lines of ENTRIES (NS -> stored entry)."""
    out = []
    for ns, d in entries.items():
        keys = dict(address_keys(d))  # version -> address as an integer
        out.append(f"{ns}\t{keys.get(4, '')}\t{keys.get(6, '')}\t{_ENC(d)}\n")
    return "".join(out).encode()


def patched(copy: Copy, removed: list[str], added: dict[str, dict[str, Any]]) -> list[Any] | None:
    """The lines of COPY with REMOVED cut and ADDED appended, as pieces of its
    bytes (nothing copied in Python); None when a removed name has no line."""
    raw, view, cuts = copy.raw, memoryview(copy.raw), []
    for ns in removed:
        i = raw.find(b"\n" + ns.encode() + b"\t", copy.at - 1)
        if i < 0:
            return None
        cuts.append((i + 1, raw.find(b"\n", i + 1) + 1))
    pieces, pos = [], copy.at
    for start, end in sorted(cuts):
        pieces.append(view[pos:start])
        pos = end
    return [*pieces, view[pos:], lines(added)]


def write(path: str, head: dict[str, Any], body: list[Any]) -> None:
    """Best effort, atomically (no fsync: the copy is disposable): a reader
    without write access simply goes without."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, [json.dumps({"format": FORMAT, **head}, separators=(",", ":")).encode() + b"\n", *body])
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def write_all(fd: int, pieces: list[Any]) -> None:
    """PIECES written in one writev where the kernel takes them all, piece by piece if not."""
    total = sum(len(p) for p in pieces)
    if os.writev(fd, pieces) == total:
        return
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    for p in pieces:
        view = memoryview(p)
        while view:
            view = view[os.write(fd, view):]
