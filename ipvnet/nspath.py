"""Named network namespaces as paths (``/run/netns/NAME``): existence and
listing, with no namespace switching, so any module may use them."""

from __future__ import annotations

import os

NETNS_RUN_DIR = "/run/netns"


def path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def exists(name: str) -> bool:
    """True when /run/netns/NAME is a mounted namespace, not a stale file."""
    try:
        st = os.stat(path(name))
    except FileNotFoundError:
        return False
    # A mounted nsfs file lives on a different device than its directory.
    try:
        return st.st_dev != os.stat(NETNS_RUN_DIR).st_dev
    except FileNotFoundError:
        return False


def list_names() -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_RUN_DIR) if exists(n))
    except FileNotFoundError:
        return []
