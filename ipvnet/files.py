"""File writes for hosts and resolv.conf files, each with its undo.

`Files` writes directly (used by repair); `UndoableFiles` first records how
to put each path back as it was, on the transaction's undo stack, so a
failure after the kernel work and the file writes takes back both.
Files are replaced by rename (a symlink planted at the path is replaced, not
followed), except a network's hosts file, which is rewritten in place so that
namespaces already running see the change.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable

Undo = Callable[[], None]


def snapshot(path: str) -> tuple[str, bytes | str | None]:
    """What is at PATH: ("link", target), ("file", bytes), ("none", None) or ("other", None)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "none", None
    if stat.S_ISLNK(st.st_mode):
        return "link", os.readlink(path)
    if stat.S_ISREG(st.st_mode):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            return "file", f.read()
    return "other", None


class Files:
    """The writing primitives."""

    def write_in_place(self, path: str, text: str, append: bool = False) -> None:
        """Rewrite (or append to) PATH keeping its inode, never through a symlink."""
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_APPEND if append else 0)
        fd = os.open(path, flags, 0o644)
        try:
            if not append:
                os.ftruncate(fd, 0)
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def replace(self, path: str, text: str | None = None, link_to: str | None = None) -> None:
        """Put a file (TEXT) or a symlink (LINK_TO) at PATH by rename."""
        tmp = f"{path}.ipvnet-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if link_to is not None:
            os.symlink(link_to, tmp)
        else:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, (text or "").encode())
            finally:
                os.close(fd)
        os.rename(tmp, path)

    def unlink(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def makedirs(self, path: str) -> None:
        """Parents such as /etc/netns: created, never removed (not undone)."""
        os.makedirs(path, mode=0o755, exist_ok=True)

    def mkdir(self, path: str) -> bool:
        """Create directory PATH; False if it was there. Refuses a non-directory."""
        try:
            os.mkdir(path, 0o755)
            return True
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                raise OSError(f"{path} exists and is not a directory; refusing to use it") from None
            return False

    def rmdir(self, path: str) -> None:
        with contextlib.suppress(OSError):
            os.rmdir(path)  # only if empty: the user's own files stay


class UndoableFiles(Files):
    """Files whose every change pushes its undo onto PUSH (the transaction's stack)."""

    def __init__(self, push: Callable[[Undo], None]) -> None:
        self.push = push

    def _restore(self, path: str) -> Undo:
        kind, content = snapshot(path)

        def undo() -> None:
            if kind == "none":
                Files.unlink(self, path)
            elif kind == "link":
                Files.replace(self, path, link_to=str(content))
            elif kind == "file":
                assert isinstance(content, bytes)
                text = content.decode("utf-8", "replace")
                if os.path.isfile(path) and not os.path.islink(path):
                    Files.write_in_place(self, path, text)  # same inode: running namespaces see it
                else:
                    Files.replace(self, path, text)
        return undo

    def write_in_place(self, path: str, text: str, append: bool = False) -> None:
        if append and os.path.isfile(path) and not os.path.islink(path):
            size = os.path.getsize(path)
            self.push(lambda: os.truncate(path, size))  # cheaper than a copy of a large network's file
        else:
            self.push(self._restore(path))
        super().write_in_place(path, text, append)

    def replace(self, path: str, text: str | None = None, link_to: str | None = None) -> None:
        self.push(self._restore(path))
        super().replace(path, text, link_to)

    def unlink(self, path: str) -> None:
        self.push(self._restore(path))
        super().unlink(path)

    def mkdir(self, path: str) -> bool:
        made = super().mkdir(path)
        if made:
            self.push(lambda: Files.rmdir(self, path))
        return made

    def rmdir(self, path: str) -> None:
        existed = os.path.isdir(path)
        super().rmdir(path)
        if existed and not os.path.exists(path):
            self.push(lambda: None if Files.mkdir(self, path) else None)
