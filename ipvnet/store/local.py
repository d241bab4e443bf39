"""The local store: TOML files under the state directory, one per network.

    <state-dir>/host.toml              schema, boot id, keys of newer versions
    <state-dir>/networks/NAME.toml     one network and its namespaces
    <state-dir>/cache/NAME.json        parsed copy of NAME.toml (derived, disposable)
    <state-dir>/lock                   fcntl lock: exclusive for changes, shared for reads

A transaction writes only the networks it changed, each atomically (temporary
file, fsync, rename, then one fsync of the directory), so an attach costs the
same however many networks the host has. A file that does not parse is an
error naming it and is never rewritten. The previous release's single
`networks.toml` (schema 1) is read as is and migrated on the first change;
see `migrate`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator
from typing import Any

from ipvnet.errors import LockTimeout, StoreError
from ipvnet.model import Network
from ipvnet.store import SCHEMA_VERSION, State, lock_timeout_from_env, state_dir_from_env

HOST_FILE = "host.toml"
NETWORKS_DIR = "networks"
CACHE_DIR = "cache"
LOCK_FILE = "lock"
V1_FILE = "networks.toml"  # schema 1, the previous release's single file
V1_BACKUP = "networks.toml.schema1"
INLINE = frozenset({"endpoints"})  # one line per namespace
HOST_CACHE = "~host"  # cache/~host.json: no network is called that (names start with a letter or digit)


def _cache_key(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _open_nofollow(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StoreError(f"{path} is a symbolic link; refusing to follow it") from None
        raise


def parse_toml(raw: bytes, path: str) -> dict[str, Any]:
    import tomllib  # only on a cache miss

    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"store file {path} is corrupt: {e}",
                         "repair it by hand or move it aside; ipvnet will not overwrite it") from None


def check_schema(d: dict[str, Any], path: str) -> None:
    schema = d.get("schema", 1)
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise StoreError(f"{path} has schema {schema!r}, newer than this ipvnet understands ({SCHEMA_VERSION})",
                         "upgrade ipvnet")


def network_from(name: str, d: dict[str, Any], path: str, checked: bool = False) -> Network:
    try:
        return Network.from_dict(name, {k: v for k, v in d.items() if k != "schema"}, checked)
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise StoreError(f"{path} holds an invalid entry: {e}", "fix or restore the file by hand") from None


class LocalStore:
    def __init__(self, state_dir: str | None = None, lock_timeout: float | None = None) -> None:
        # Absolute: hosts-file symlinks in /etc/netns point into it.
        self.dir = os.path.abspath(state_dir or state_dir_from_env())
        self.net_dir = os.path.join(self.dir, NETWORKS_DIR)
        self.cache_dir = os.path.join(self.dir, CACHE_DIR)
        self.host_path = os.path.join(self.dir, HOST_FILE)
        self.v1_path = os.path.join(self.dir, V1_FILE)
        self.lock_path = os.path.join(self.dir, LOCK_FILE)
        self.lock_timeout = lock_timeout_from_env() if lock_timeout is None else lock_timeout
        self._loaded_keys: dict[str, list[int]] = {}  # network -> the file identity it was loaded from
        self._last_key: list[int] | None = None
        self._bodies: dict[str, tuple[list[int], str]] = {}  # cache name -> (file identity, namespace lines)

    def network_path(self, name: str) -> str:
        return os.path.join(self.net_dir, f"{name}.toml")

    def _ensure_dir(self, path: str | None = None) -> None:
        try:
            os.makedirs(path or self.dir, mode=0o700, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create state directory {path or self.dir}: {e.strerror}") from None

    # -- locking ---------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, exclusive: bool) -> Iterator[None]:
        """Hold the store lock; gives up with LockTimeout instead of hanging.
        The first exclusive holder migrates a schema-1 store."""
        if not exclusive and not os.path.exists(self.lock_path):
            yield  # a reader on a fresh host must not create the state dir
            return
        self._ensure_dir()
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise StoreError(f"cannot open lock file {self.lock_path}: {e.strerror}") from None
        try:
            self._flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            if exclusive and os.path.lexists(self.v1_path):
                from ipvnet.store.migrate import migrate_if_needed

                migrate_if_needed(self)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _flock(self, fd: int, mode: int) -> None:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.002
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"timed out after {self.lock_timeout:g}s waiting for the store lock {self.lock_path}",
                    "another ipvnet is running; retry, or raise IPVNET_LOCK_TIMEOUT",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    # -- reading ---------------------------------------------------------

    def network_names(self) -> list[str]:
        if not os.path.exists(self.host_path):
            return sorted(self._load_v1().networks) if os.path.exists(self.v1_path) else []
        try:
            return sorted(n[:-5] for n in os.listdir(self.net_dir) if n.endswith(".toml") and not n.startswith("."))
        except FileNotFoundError:
            return []

    def load(self) -> State:
        if not os.path.exists(self.host_path):
            return self._load_v1() if os.path.lexists(self.v1_path) else State.from_networks({})
        host, _ = self._read_toml(self.host_path, cache=True, cache_name=HOST_CACHE)
        check_schema(host, self.host_path)
        networks = {name: self.load_network(name) for name in self.network_names()}
        extra = {k: v for k, v in host.items() if k not in ("schema", "boot_id", "seq")}
        return State.from_networks(networks, str(host.get("boot_id", "")), 0, extra)

    def load_network(self, name: str) -> Network:
        path = self.network_path(name)
        d, cached = self._read_toml(path, cache=True, cache_name=name)
        if self._last_key is not None:
            self._loaded_keys[name] = self._last_key
        check_schema(d, path)
        return network_from(name, d, path, checked=cached)

    def _load_v1(self) -> State:
        from ipvnet.store.migrate import load_v1

        return load_v1(self)

    def _read_toml(self, path: str, cache: bool, cache_name: str = "") -> tuple[dict[str, Any], bool]:
        """PATH parsed, from its cached JSON copy while the file's inode, size
        and mtime are exactly those the copy was made from; and whether it came
        from the copy (whose entries were checked when it was made)."""
        try:
            fd = _open_nofollow(path)
        except OSError as e:
            raise StoreError(f"cannot read {path}: {e.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            key = self._last_key = _cache_key(os.fstat(f.fileno()))
            data = self._cached(cache_name, key) if cache else None
            if data is not None:
                return data, True
            data = parse_toml(f.read(), path)
        if cache:
            check_schema(data, path)
            if cache_name != HOST_CACHE:
                network_from(cache_name, data, path)  # checked once, then cached
            self._write_cache(cache_name, key, data)
        return data, False

    # The TOML files are the store; `cache/NAME.json` is a parsed copy that
    # spares each command the pure-Python TOML parser (~46 ms for a network
    # of 1000 namespaces on a fast host, several times that in a UML guest).
    # Its first line is {"key": ..., "data": ...} without the namespaces; each
    # further line is one namespace, `"NS":{...}`, so the copy can be patched
    # like the TOML file (a line added or cut) instead of re-encoded whole, and
    # still be read back with one json.loads. JSON strings hold no raw newline.

    def _cached(self, name: str, key: list[int]) -> dict[str, Any] | None:
        try:
            fd = _open_nofollow(os.path.join(self.cache_dir, f"{name}.json"))
            with os.fdopen(fd, "rb") as f:
                text = f.read().decode("utf-8")
            head, _, body = text.partition("\n")
            cached = json.loads(head)
            if not isinstance(cached, dict) or cached.get("key") != key or not isinstance(cached.get("data"), dict):
                return None
            data: dict[str, Any] = cached["data"]
            if "endpoints" in data:
                data["endpoints"] = json.loads("{" + body.rstrip("\n").replace("\n", ",") + "}")
        except (OSError, ValueError, StoreError):
            return None
        self._bodies[name] = (key, body)
        return data

    def _write_cache(self, name: str, key: list[int], data: dict[str, Any], body: str | None = None) -> None:
        """Best effort: a reader without write access simply goes without. BODY:
        the namespace lines already made (patched), else they are encoded here."""
        if body is None:
            enc = json.JSONEncoder(separators=(",", ":")).encode
            body = "".join(f"{enc(ns)}:{enc(d)}\n" for ns, d in data.get("endpoints", {}).items())
        if "endpoints" in data:
            data = {**data, "endpoints": {}}
        self._bodies[name] = (key, body)
        path = os.path.join(self.cache_dir, f"{name}.json")
        tmp = f"{path}.tmp.{os.getpid()}"
        try:
            os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                head = json.dumps({"key": key, "data": data}, separators=(",", ":"))
                os.write(fd, f"{head}\n{body}".encode())
            finally:
                os.close(fd)
            os.rename(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _patched_body(self, name: str, added: dict[str, dict[str, Any]], removed: list[str]) -> str | None:
        """The cache's namespace lines for NAME with REMOVED cut and ADDED appended,
        when the lines at hand are those of the file the state was loaded from."""
        key, body = self._bodies.get(name, (None, ""))
        if key is None or key != self._loaded_keys.get(name):
            return None
        enc = json.JSONEncoder(separators=(",", ":")).encode
        for ns in removed:
            start = ("\n" + body).find(f"\n{enc(ns)}:")
            if start < 0:
                return None
            end = body.find("\n", start)
            body = body[:start] + body[end + 1:]
        return body + "".join(f"{enc(ns)}:{enc(d)}\n" for ns, d in added.items())

    # -- writing ---------------------------------------------------------

    def save(self, state: State) -> None:
        """Write the networks STATE changed, delete the removed ones, and the
        host file when its own keys changed; one directory fsync at the end."""
        written, removed = state.changed()
        host_changed = state.boot_id != state.loaded_boot_id or not os.path.exists(self.host_path)
        if not (written or removed or host_changed):
            return
        self._ensure_dir()
        self._ensure_dir(self.net_dir)
        for net in written:
            self._save_network(state.loaded.get(net.name), net)
        for name in removed:
            for p in (self.network_path(name), os.path.join(self.cache_dir, f"{name}.json")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)
        fsync_dir(self.net_dir)
        if host_changed:
            data = self.host_dict(state)
            st = self.write_file(self.host_path, dumps(data))
            self._write_cache(HOST_CACHE, _cache_key(st), data)
        state.mark_saved()

    def _save_network(self, old: Network | None, new: Network) -> None:
        path = self.network_path(new.name)
        patch = self._patch(old, new, path)
        if patch is None:
            data = {"schema": SCHEMA_VERSION, **new.to_dict()}
            st = self.write_file(path, dumps(data, INLINE), sync_dir=False)
            self._write_cache(new.name, _cache_key(st), data)
            return
        text, added, removed = patch
        body = self._patched_body(new.name, added, removed)
        st = self.write_file(path, text, sync_dir=False)
        data = {"schema": SCHEMA_VERSION, **new.to_dict(endpoints=body is None)}
        self._write_cache(new.name, _cache_key(st), data, body)

    def _patch(self, old: Network | None, new: Network,
               path: str) -> tuple[str, dict[str, dict[str, Any]], list[str]] | None:
        """NEW's file as OLD's text with namespace lines added or removed, when
        only that changed: an attach to a network of a thousand members then
        costs no re-rendering of the other 999. None when anything else changed,
        or the file on disk is not the one OLD was loaded from, or not in the
        layout this writer makes ([endpoints] last, one line per namespace).
        Also the added entries and the removed names, for patching the cache."""
        if old is None or self._loaded_keys.get(new.name) is None:
            return None
        if replace_endpoints(old) != replace_endpoints(new):
            return None
        added_names, removed = old.endpoints.changes(new.endpoints)
        if added_names is None:
            return None
        try:
            fd = _open_nofollow(path)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            if _cache_key(os.fstat(f.fileno())) != self._loaded_keys[new.name]:
                return None
            text = f.read().decode("utf-8")
        from ipvnet.store.tomlw import patch_inline_table

        added = {ns: new.endpoints.to_dict(ns) for ns in added_names}
        patched = patch_inline_table(text, "endpoints", removed, added)
        return None if patched is None else (patched, added, removed)

    @staticmethod
    def host_dict(state: State) -> dict[str, Any]:
        return {**state.extra, "schema": SCHEMA_VERSION, "boot_id": state.boot_id}

    def write_file(self, path: str, text: str, sync_dir: bool = True) -> os.stat_result:
        return write_atomic(path, text, sync_dir)


def write_atomic(path: str, text: str, sync_dir: bool = True) -> os.stat_result:
    """Replace PATH atomically: temporary file, fsync, rename (refusing a planted symlink)."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISLNK(os.lstat(path).st_mode):
                raise StoreError(f"{path} is a symbolic link; refusing to replace it")
        os.rename(tmp, path)
        if sync_dir:
            fsync_dir(os.path.dirname(path))
        return st
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StoreError(f"cannot write {path}: {e.strerror}") from None
    except StoreError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def replace_endpoints(net: Network) -> Network:
    """NET without its namespaces, to compare the rest."""
    from ipvnet.model import Endpoints
    from ipvnet.record import replace

    return replace(net, endpoints=Endpoints())


def dumps(data: dict[str, Any], inline: frozenset[str] = frozenset()) -> str:
    from ipvnet.store.tomlw import dumps as _dumps

    return _dumps(data, inline)


def fsync_dir(path: str) -> None:
    dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
