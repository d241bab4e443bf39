"""The store: what the service needs of persistent state, and its backends.

The service knows only the `Store` protocol below: lock, load everything
into a State, save what a transaction changed, and a journal directory for
transactions in flight. `LocalStore` keeps TOML files under the state
directory, one per network; a cluster backend implements the same protocol.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Protocol

from ipvnet.errors import NotFound
from ipvnet.model import Network
from ipvnet.record import dataclass, field

SCHEMA_VERSION = 2
DEFAULT_STATE_DIR = "/var/lib/ipvnet"


def state_dir_from_env() -> str:
    return os.environ.get("IPVNET_STATE_DIR") or DEFAULT_STATE_DIR


def lock_timeout_from_env() -> float:
    try:
        return float(os.environ.get("IPVNET_LOCK_TIMEOUT", "60"))
    except ValueError:
        return 60.0


@dataclass
class State:
    """Everything the store holds. A transaction replaces Network objects
    (they are immutable); `changed()` finds them by identity against what was
    loaded, so a save writes exactly the networks that changed."""

    networks: dict[str, Network] = field(default_factory=dict)
    boot_id: str = ""
    seq: int = 0  # orders attachments across networks
    extra: dict[str, Any] = field(default_factory=dict)  # host-file keys from newer versions, kept as-is
    loaded: dict[str, Network] = field(default_factory=dict, repr=False)
    loaded_boot_id: str = field(default="", repr=False)

    @classmethod
    def from_networks(cls, networks: dict[str, Network], boot_id: str = "", seq: int = 0,
                      extra: dict[str, Any] | None = None) -> State:
        top = max((n.endpoints.max_seq() for n in networks.values()), default=0)
        return cls(dict(networks), boot_id, max(seq, top), dict(extra or {}), dict(networks), boot_id)

    def network(self, name: str) -> Network:
        """By name, or (as Docker accepts) by a unique id prefix of 3+ characters."""
        net = self.networks.get(name)
        if net is not None:
            return net
        matches = [n for n in self.networks.values() if len(name) >= 3 and n.id.startswith(name)]
        if len(matches) == 1:
            return matches[0]
        raise NotFound(f"network {name!r} not found", "list networks with `ipvnet network ls`")

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def changed(self) -> tuple[list[Network], list[str]]:
        """(networks written or replaced, names removed) since the load."""
        written = [n for name, n in self.networks.items() if self.loaded.get(name) is not n]
        removed = [name for name in self.loaded if name not in self.networks]
        return written, removed

    def dirty(self) -> bool:
        written, removed = self.changed()
        return bool(written or removed) or self.boot_id != self.loaded_boot_id

    def mark_saved(self) -> None:
        self.loaded = dict(self.networks)
        self.loaded_boot_id = self.boot_id


class Store(Protocol):
    """What the service needs of a backend."""

    dir: str  # local working directory: lock, journal, hosts files

    def locked(self, exclusive: bool) -> contextlib.AbstractContextManager[None]: ...
    def load(self) -> State: ...
    def save(self, state: State) -> None: ...
    def network_names(self) -> list[str]: ...


def open_store(state_dir: str | None = None, lock_timeout: float | None = None) -> Store:
    from ipvnet.store.local import LocalStore

    return LocalStore(state_dir, lock_timeout)


@contextlib.contextmanager
def nothing() -> Iterator[None]:
    yield
