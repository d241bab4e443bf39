"""A small, fast TOML writer for the store's own shapes.

tomli_w is general and slow (23 ms for a network of 1000 namespaces on a fast
host, several times that in a UML guest), which an attach to a large network
paid on every store write. The store writes only strings, integers, booleans,
lists of those, tables and arrays of tables, and one table per namespace;
those are rendered here directly, each namespace as one inline table on its
own line (compact and easy to read). tomllib reads the result back; a unit
test (hypothesis) holds the round trip.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_PLAIN = re.compile(r'[ !#-\[\]-~]*')  # printable ASCII without '"' and '\'


def _str(s: str) -> str:
    if _PLAIN.fullmatch(s):
        return f'"{s}"'
    # JSON's escapes are TOML's; TOML also wants DEL escaped.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


@functools.lru_cache(maxsize=1024)
def key(k: str) -> str:
    """A key, bare when it can be (the same few keys repeat on every line: cached)."""
    return k if _BARE.fullmatch(k) else _str(k)


def value(v: Any) -> str:
    """An inline value: scalar, array or inline table."""
    t = type(v)
    if t is str:
        return _str(v)
    if t is int:
        return str(v)
    if t is bool:
        return "true" if v else "false"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)  # inf, -inf and nan are spelled the same in TOML
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }" if v else "{}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _inline_table(d: dict[str, Any]) -> str:
    """One namespace's line: the same as value(d), unrolled for the common flat case
    (a thousand of these per write of a large network)."""
    parts = []
    for k, x in d.items():
        t = type(x)
        if t is str:
            s = f'"{x}"' if _PLAIN.fullmatch(x) else _str(x)
        elif t is int:
            s = str(x)
        elif t is bool:
            s = "true" if x else "false"
        else:
            s = value(x)
        parts.append(f"{key(k)} = {s}")
    return "{ " + ", ".join(parts) + " }" if parts else "{}"


def _is_table(v: Any) -> bool:
    return isinstance(v, dict)


def _is_aot(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _table(out: list[str], path: str, d: dict[str, Any], inline: frozenset[str]) -> None:
    """Scalars first, then sub-tables and arrays of tables in their order, as TOML requires.
    Children of a table whose path is in INLINE are written one inline table per line."""
    for k, v in d.items():
        if not _is_table(v) and not _is_aot(v):
            out.append(f"{key(k)} = {value(v)}\n")
    for k, v in d.items():
        sub = f"{path}.{key(k)}" if path else key(k)
        if _is_table(v):
            out.append(f"\n[{sub}]\n")
            if sub in inline:
                out.extend(f"{key(kk)} = {_inline_table(vv) if type(vv) is dict else value(vv)}\n"
                           for kk, vv in v.items())
            else:
                _table(out, sub, v, inline)
        elif _is_aot(v):
            for item in v:
                out.append(f"\n[[{sub}]]\n")
                _table(out, sub, item, inline)


def dumps(d: dict[str, Any], inline: frozenset[str] = frozenset()) -> str:
    out: list[str] = []
    _table(out, "", d, inline)
    return "".join(out)


def in_layout(text: str, table: str) -> bool:
    """TEXT is as dumps() writes it with TABLE inline: TABLE last, one line per child."""
    i = text.rfind(f"\n[{table}]\n")
    if i < 0:
        return False
    body = text[i + len(table) + 4:]
    return not ("\n[" in body or body.startswith("[") or (body and not body.endswith("\n")))


def member_lines(added: dict[str, dict[str, Any]]) -> str:
    """The lines of ADDED as children of an inline-rendered table."""
    return "".join(f"{key(k)} = {_inline_table(d)}\n" for k, d in added.items())


def patch_inline_table(text: str, table: str, removed: list[str], added: dict[str, dict[str, Any]]) -> str | None:
    """TEXT (in_layout) with the lines of REMOVED keys dropped and ADDED appended;
    None when TEXT is not in that layout (a hand-edited file: then it is rendered
    whole) or a removed key has no line."""
    if not in_layout(text, table):
        return None
    for k in removed:
        i = text.find(f"\n{key(k)} = ", text.rfind(f"\n[{table}]\n"))
        if i < 0:
            return None
        text = text[:i + 1] + text[text.index("\n", i + 1) + 1:]
    return text + member_lines(added)
