"""The TOML store: one file of intent, one lock, atomic replacement.

Every mutation holds an exclusive fcntl lock on `<state-dir>/lock` for the
whole read-compute-apply-write cycle; readers take it shared. The file is
replaced by write-to-temp, fsync, rename, fsync-dir, so a crash leaves the
old or the new file, never a mix. A file that does not parse is an error
naming it and is never rewritten.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ipvnet.errors import LockTimeout, NotFound, StoreError
from ipvnet.model import Network

SCHEMA_VERSION = 1
DEFAULT_STATE_DIR = "/var/lib/ipvnet"
STORE_FILE = "networks.toml"
LOCK_FILE = "lock"
CACHE_FILE = "networks.cache.json"


def state_dir_from_env() -> str:
    return os.environ.get("IPVNET_STATE_DIR") or DEFAULT_STATE_DIR


def lock_timeout_from_env() -> float:
    try:
        return float(os.environ.get("IPVNET_LOCK_TIMEOUT", "60"))
    except ValueError:
        return 60.0


@dataclass
class State:
    """Everything the store holds. `seq` orders attachments across networks."""

    networks: dict[str, Network] = field(default_factory=dict)
    boot_id: str = ""
    seq: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # keys from newer versions, kept as-is

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

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.extra)
        d.update(
            {
                "schema": SCHEMA_VERSION,
                "boot_id": self.boot_id,
                "seq": self.seq,
                "networks": {name: n.to_dict() for name, n in sorted(self.networks.items())},
            }
        )
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str) -> State:
        schema = d.get("schema", 1)
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            raise StoreError(
                f"{path} has schema {schema!r}, newer than this ipvnet understands ({SCHEMA_VERSION})",
                "upgrade ipvnet",
            )
        extra = {k: v for k, v in d.items() if k not in ("schema", "boot_id", "seq", "networks")}
        try:
            networks = {name: Network.from_dict(name, nd) for name, nd in d.get("networks", {}).items()}
            seq = int(d.get("seq", 0))
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            raise StoreError(f"{path} holds an invalid entry: {e}", "fix or restore the file by hand") from None
        return cls(networks=networks, boot_id=str(d.get("boot_id", "")), seq=seq, extra=extra)


class Store:
    def __init__(self, state_dir: str | None = None, lock_timeout: float | None = None) -> None:
        # Absolute: hosts-file symlinks in /etc/netns point into it.
        self.dir = os.path.abspath(state_dir or state_dir_from_env())
        self.path = os.path.join(self.dir, STORE_FILE)
        self.lock_path = os.path.join(self.dir, LOCK_FILE)
        self.cache_path = os.path.join(self.dir, CACHE_FILE)
        self.lock_timeout = lock_timeout_from_env() if lock_timeout is None else lock_timeout

    def _ensure_dir(self) -> None:
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create state directory {self.dir}: {e.strerror}") from None

    @contextlib.contextmanager
    def locked(self, exclusive: bool) -> Iterator[None]:
        """Hold the store lock; gives up with LockTimeout instead of hanging."""
        if not exclusive and not os.path.exists(self.lock_path):
            # A reader on a fresh host must not create the state dir.
            yield
            return
        self._ensure_dir()
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise StoreError(f"cannot open lock file {self.lock_path}: {e.strerror}") from None
        try:
            mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            deadline = time.monotonic() + self.lock_timeout
            delay = 0.002
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise LockTimeout(
                            f"timed out after {self.lock_timeout:g}s waiting for the store lock {self.lock_path}",
                            "another ipvnet is running; retry, or raise IPVNET_LOCK_TIMEOUT",
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def load(self) -> State:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return State()
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise StoreError(f"{self.path} is a symbolic link; refusing to follow it") from None
            raise StoreError(f"cannot read {self.path}: {e.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            key = _cache_key(os.fstat(f.fileno()))
            data = self._cached(key)
            if data is None:
                import tomllib  # only when the parsed copy is missing or stale

                raw = f.read()
                try:
                    data = tomllib.loads(raw.decode("utf-8"))
                except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                    raise StoreError(
                        f"store file {self.path} is corrupt: {e}",
                        "repair it by hand or move it aside; ipvnet will not overwrite it",
                    ) from None
                self._write_cache(key, data)
        return State.from_dict(data, self.path)

    # The TOML file is the store; `networks.cache.json` is a parsed copy that
    # spares each command the pure-Python TOML parser (~30 ms for a store of
    # 1000 networks or members on a fast host, ten times that in a UML guest).
    # It is used only while the TOML file's inode, size and mtime are exactly
    # those it was made from, so any edit or replacement invalidates it.

    def _cached(self, key: list[int]) -> dict[str, Any] | None:
        import json

        try:
            fd = os.open(self.cache_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                cached = json.loads(f.read())
        except (OSError, ValueError):
            return None
        if not isinstance(cached, dict) or cached.get("key") != key or not isinstance(cached.get("data"), dict):
            return None
        return cached["data"]

    def _write_cache(self, key: list[int], data: dict[str, Any]) -> None:
        """Best effort: a reader without write access simply goes without."""
        import json

        tmp = f"{self.cache_path}.tmp.{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, json.dumps({"key": key, "data": data}, separators=(",", ":")).encode())
            finally:
                os.close(fd)
            os.rename(tmp, self.cache_path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def save(self, state: State) -> None:
        import tomli_w

        self._ensure_dir()
        data = state.to_dict()
        text = tomli_w.dumps(data)
        tmp = f"{self.path}.tmp.{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, text.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            # Refuse to replace a symlink planted at the store path.
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISLNK(os.lstat(self.path).st_mode):
                    raise StoreError(f"{self.path} is a symbolic link; refusing to replace it")
            os.rename(tmp, self.path)
            self._write_cache(_cache_key(os.stat(self.path, follow_symlinks=False)), data)
            dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StoreError(f"cannot write {self.path}: {e.strerror}") from None
        except StoreError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class Journal:
    """Transactions in flight: written (atomically) before the first kernel
    change, removed after the store write. One left behind means a process
    died mid-way; `check` reports it and `check --repair` undoes its kernel
    operations, since the store never recorded them."""

    def __init__(self, state_dir: str) -> None:
        self.dir = os.path.join(state_dir, "journal")
        self.path: str | None = None

    def begin(self, command: str, ops: list[dict[str, Any]]) -> None:
        import json

        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        name = f"{time.time_ns()}-{os.getpid()}.json"
        tmp = os.path.join(self.dir, "." + name)
        data = {"command": command, "pid": os.getpid(), "time": time.time(), "ops": ops}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(data).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.path = os.path.join(self.dir, name)
        os.rename(tmp, self.path)

    def end(self) -> None:
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.path = None

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        import json

        out = []
        try:
            names = sorted(n for n in os.listdir(self.dir) if n.endswith(".json") and not n.startswith("."))
        except FileNotFoundError:
            return []
        for n in names:
            p = os.path.join(self.dir, n)
            try:
                with open(p, "rb") as f:
                    out.append((p, json.loads(f.read())))
            except (OSError, ValueError):
                out.append((p, {"command": "unknown (unreadable journal)", "ops": []}))
        return out

    @staticmethod
    def discard(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _cache_key(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns]
