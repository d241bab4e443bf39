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
import os
import stat
import time
from collections.abc import Callable, Iterator
from typing import Any

from ipvnet.errors import LockTimeout, StoreError
from ipvnet.model import Network
from ipvnet.store import SCHEMA_VERSION, State, copyfile, lock_timeout_from_env, state_dir_from_env
from ipvnet.store.copyfile import write_all

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
        self._copies: dict[str, copyfile.Copy] = {}  # cache name -> the copy it was loaded from
        self._derived: dict[str, tuple[dict[Any, str] | None, int | None]] = {}  # the copy's index and top seq

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
        net = network_from(name, d, path, checked=cached)
        derived = self._derived.pop(name, None)
        if cached and derived is not None:
            net.endpoints.prime(*derived)
        return net

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

    # cache/NAME.json: see ipvnet.store.copyfile.

    def _cached(self, name: str, key: list[int]) -> dict[str, Any] | None:
        try:
            copy = copyfile.read(_open_nofollow(os.path.join(self.cache_dir, f"{name}.json")))
            if copy is None or copy.head.get("key") != key:
                return None
            data: dict[str, Any] = copy.head["data"]
            held = None
            if "endpoints" in data:
                data["endpoints"], held = copyfile.members(copy)
        except (OSError, ValueError, StoreError):
            return None
        top = copy.head.get("top")
        self._copies[name] = copy
        self._derived[name] = (held, top if type(top) is int else None)
        return data

    def _write_cache(self, name: str, key: list[int], data: dict[str, Any], body: list[Any] | None = None,
                     top: int | None = None, layout: bool = False) -> None:
        """BODY: the namespace lines already made (patched pieces), else they are
        made here. TOP: the highest seq where known. LAYOUT: the TOML file is in
        the writer's own layout."""
        if body is None:
            body = [copyfile.lines(data.get("endpoints", {}))]
        if "endpoints" in data:
            data = {**data, "endpoints": {}}
        head: dict[str, Any] = {"key": key, "data": data, "layout": layout}
        if top is not None:
            head["top"] = top
        copyfile.write(os.path.join(self.cache_dir, f"{name}.json"), head, body)

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
        change = self._member_change(old, new)
        if change is not None:
            added, removed = change
            st = self._patch_file(new.name, path, added, removed)
            if st is not None:
                copy = self._loaded_copy(new.name)
                body = None if copy is None else copyfile.patched(copy, removed, added)
                data = {"schema": SCHEMA_VERSION, **new.to_dict(endpoints=body is None)}
                self._write_cache(new.name, _cache_key(st), data, body, new.endpoints.derived()[1], layout=True)
                return
        from ipvnet.store.tomlw import in_layout

        data = {"schema": SCHEMA_VERSION, **new.to_dict()}
        text = dumps(data, INLINE)
        st = self.write_file(path, text, sync_dir=False)
        self._write_cache(new.name, _cache_key(st), data, None, new.endpoints.derived()[1],
                          layout=in_layout(text, "endpoints"))

    def _member_change(self, old: Network | None,
                       new: Network) -> tuple[dict[str, dict[str, Any]], list[str]] | None:
        """(added entries, removed names) when only namespaces came or went
        since OLD was loaded from its file; None when anything else changed."""
        if old is None or self._loaded_keys.get(new.name) is None:
            return None
        if replace_endpoints(old) != replace_endpoints(new):
            return None
        added_names, removed = old.endpoints.changes(new.endpoints)
        if added_names is None:
            return None
        return {ns: new.endpoints.to_dict(ns) for ns in added_names}, removed

    def _loaded_copy(self, name: str) -> copyfile.Copy | None:
        """The copy NAME was loaded from, while it is that of the file loaded."""
        copy = self._copies.get(name)
        return copy if copy is not None and copy.head.get("key") == self._loaded_keys.get(name) else None

    def _patch_file(self, name: str, path: str, added: dict[str, dict[str, Any]],
                    removed: list[str]) -> os.stat_result | None:
        """Write NAME's file as the loaded one with namespace lines added or
        removed, instead of rendering every member again; None (nothing
        written) when the file on disk is not the one loaded, or not in the
        writer's layout. Pure additions to a file known to be in that layout
        are appended to a kernel-side copy of it, unread."""
        from ipvnet.store.tomlw import member_lines, patch_inline_table

        try:
            fd = _open_nofollow(path)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if _cache_key(st) != self._loaded_keys[name]:
                return None
            copy = self._loaded_copy(name)
            if not removed and copy is not None and copy.head.get("layout") is True:
                tail = member_lines(added).encode()
                return write_atomic_with(path, lambda out: _copy_then(f.fileno(), st.st_size, out, tail))
            text = patch_inline_table(f.read().decode("utf-8"), "endpoints", removed, added)
        return None if text is None else self.write_file(path, text, sync_dir=False)

    @staticmethod
    def host_dict(state: State) -> dict[str, Any]:
        return {**state.extra, "schema": SCHEMA_VERSION, "boot_id": state.boot_id}

    def write_file(self, path: str, text: str, sync_dir: bool = True) -> os.stat_result:
        return write_atomic(path, text, sync_dir)


def write_atomic(path: str, text: str, sync_dir: bool = True) -> os.stat_result:
    """Replace PATH atomically: temporary file, fsync, rename (refusing a planted symlink)."""
    data = text.encode()
    return write_atomic_with(path, lambda fd: write_all(fd, [data]), sync_dir)


def write_atomic_with(path: str, fill: Callable[[int], None], sync_dir: bool = False) -> os.stat_result:
    """Replace PATH atomically with what FILL writes to the file descriptor it is given."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fill(fd)
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


def _copy_then(src: int, size: int, dst: int, tail: bytes) -> None:
    """SIZE bytes of SRC (from its start) into DST by the kernel, then TAIL."""
    done = 0
    with contextlib.suppress(OSError):  # EXDEV, ENOSYS, EINVAL...: by hand below
        while done < size:
            n = os.copy_file_range(src, dst, size - done, done)
            if n == 0:
                break
            done += n
    if done < size:
        os.lseek(dst, done, os.SEEK_SET)
        write_all(dst, [os.pread(src, size - done, done)])
    if os.fstat(dst).st_size != size:
        raise OSError(errno.EIO, "the file changed size while it was copied")
    write_all(dst, [tail])


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
