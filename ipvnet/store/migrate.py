"""Schema 1 (the previous release's single `networks.toml`) to schema 2 (one
file per network plus `host.toml`).

The commit point is the atomic creation of `host.toml`: until it exists the
old file is the store and a half-written `networks/` directory is ignored
(and rewritten by the next attempt); once it exists the new layout is
complete. So a crash at any step leaves one whole layout. The old file is
kept as `networks.toml.schema1`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import TYPE_CHECKING

from ipvnet.errors import StoreError
from ipvnet.store import State

if TYPE_CHECKING:
    from ipvnet.store.local import LocalStore


def load_v1(store: LocalStore) -> State:
    from ipvnet.store.local import _open_nofollow, check_schema, network_from, parse_toml

    try:
        fd = _open_nofollow(store.v1_path)
    except OSError as e:
        raise StoreError(f"cannot read {store.v1_path}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        d = parse_toml(f.read(), store.v1_path)
    check_schema(d, store.v1_path)
    nets = d.get("networks", {})
    if not isinstance(nets, dict):
        raise StoreError(f"{store.v1_path} holds an invalid entry: networks", "fix or restore the file by hand")
    networks = {name: network_from(name, nd, store.v1_path) for name, nd in nets.items()}
    try:
        seq = int(d.get("seq", 0))
    except (TypeError, ValueError):
        raise StoreError(f"{store.v1_path} holds an invalid entry: seq", "fix or restore the file by hand") from None
    extra = {k: v for k, v in d.items() if k not in ("schema", "boot_id", "seq", "networks")}
    return State.from_networks(networks, str(d.get("boot_id", "")), seq, extra)


def migrate_if_needed(store: LocalStore) -> bool:
    """Migrate under the exclusive lock; returns whether it did."""
    if os.path.exists(store.host_path) or not os.path.lexists(store.v1_path):
        return False
    from ipvnet.store import SCHEMA_VERSION
    from ipvnet.store.local import INLINE, dumps, fsync_dir

    state = load_v1(store)  # refuses a corrupt or newer file before anything is written
    shutil.rmtree(store.net_dir, ignore_errors=True)  # a crashed attempt's leftovers
    shutil.rmtree(store.cache_dir, ignore_errors=True)
    store._ensure_dir(store.net_dir)
    for net in state.networks.values():
        store.write_file(store.network_path(net.name), dumps({"schema": SCHEMA_VERSION, **net.to_dict()}, INLINE),
                         sync_dir=False)
    fsync_dir(store.net_dir)
    backup = os.path.join(store.dir, "networks.toml.schema1")
    with open(store.v1_path, "rb") as src:
        store.write_file(backup, src.read().decode("utf-8"))
    store.write_file(store.host_path, dumps(store.host_dict(state)))  # the commit point
    with contextlib.suppress(FileNotFoundError):
        os.unlink(store.v1_path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(store.dir, "networks.cache.json"))
    return True
