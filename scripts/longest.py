#!/usr/bin/env python3
"""List the longest functions in ipvnet/ (lines from `def` to the last line of the body)."""

from __future__ import annotations

import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "ipvnet"


def lengths() -> list[tuple[int, str]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                out.append((n, f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name}"))
    return sorted(out, reverse=True)


if __name__ == "__main__":
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    for n, where in lengths()[:limit]:
        print(f"{n:4d}  {where}")
