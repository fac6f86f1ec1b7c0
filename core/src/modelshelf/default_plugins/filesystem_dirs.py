"""Reaching a key below a directory shelf's root without ever following a link.

The root may be a symlink (the user chose it). Below it, every key is reached by opening its
directories one at a time from the root's file descriptor with ``O_NOFOLLOW``, and every operation
on the final name is relative to the last directory's descriptor and never follows a link. A
symlink found inside the shelf is refused with a one-line :class:`~modelshelf.errors.StorageError`
naming the key, for reads and writes alike; so is a directory (or other non-regular file) where an
object belongs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat as stat_module
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import ReadOnlyShelf, StorageError
from ..storage import check_key

#: Temporary, claim and lock files start with this; listings skip them and names can never start with it.
HIDDEN_PREFIX = ".~"

CLOEXEC = getattr(os, "O_CLOEXEC", 0)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
DIRECTORY_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | NOFOLLOW | CLOEXEC
# O_NONBLOCK so that a FIFO planted at a key cannot make a read wait forever.
READ_FLAGS = os.O_RDONLY | NOFOLLOW | CLOEXEC | getattr(os, "O_NONBLOCK", 0)
# Read and write: a file copied in by the kernel is hashed by reading it back.
CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC


class Missing(Exception):
    """A directory on the way to a key does not exist (or is a file): the key does not exist."""


def path_from_url(url: str) -> Path:
    """``file:///a/b`` or a plain path -> an absolute local path (``~`` expanded)."""
    if url.startswith("file:"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise StorageError(f"file URLs must be local (file:///path), got {url!r}")
        return Path(unquote(parsed.path)).expanduser().absolute()
    return Path(url).expanduser().absolute()


def temp_name(name: str) -> str:
    """A fresh hidden name beside ``name`` for a file that is not visible yet."""
    return f"{HIDDEN_PREFIX}{name}.{secrets.token_hex(6)}.tmp"


def new_temp(dir_fd: int, name: str) -> tuple[str, int]:
    """Create a hidden temporary file beside ``name``: its name and a descriptor open for writing."""
    temp = temp_name(name)
    return temp, os.open(temp, CREATE_FLAGS, 0o666, dir_fd=dir_fd)


def unlink_quietly(dir_fd: int, name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)


class ShelfDirectory:
    """The root directory of a shelf: opening what lies below it, and saying what went wrong."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # --- errors ----------------------------------------------------------------------------

    def error(self, exc: OSError, action: str, key: str) -> StorageError:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return ReadOnlyShelf(
                f"cannot {action} {key!r}: shelf {self.root} is read-only for this user "
                f"({exc.strerror}); check the directory permissions"
            )
        if exc.errno == errno.ENOSPC:
            return StorageError(
                f"cannot {action} {key!r}: no space left on the device of {self.root}"
            )
        return StorageError(f"cannot {action} {key!r} in shelf {self.root}: {exc.strerror or exc}")

    def symlink_error(self, action: str, key: str, where: str) -> StorageError:
        return StorageError(
            f"refusing to {action} {key!r}: {where!r} is a symlink inside shelf {self.root}; "
            "modelshelf never follows links inside a shelf (remove the link)"
        )

    def not_object_error(self, action: str, key: str, mode: int) -> StorageError:
        what = "a directory" if stat_module.S_ISDIR(mode) else "not a regular file"
        return StorageError(
            f"cannot {action} {key!r}: it is {what} in shelf {self.root}, not an object (remove it)"
        )

    def check_regular(self, st: os.stat_result, action: str, key: str, where: str) -> None:
        if stat_module.S_ISLNK(st.st_mode):
            raise self.symlink_error(action, key, where)
        if not stat_module.S_ISREG(st.st_mode):
            raise self.not_object_error(action, key, st.st_mode)

    # --- walking directories without following links ----------------------------------------

    def open_root(self, create: bool) -> int:
        # The root is the user's choice: it may be a symlink, so it alone is opened following links.
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | CLOEXEC
        try:
            return os.open(self.root, flags)
        except FileNotFoundError:
            if not create:
                raise Missing from None
            os.makedirs(self.root, exist_ok=True)
            return os.open(self.root, flags)

    def open_subdir(
        self, parent: int, name: str, create: bool, action: str, key: str, where: str
    ) -> int:
        """Open ``name`` below ``parent`` as a directory, refusing a symlink; create it if asked."""
        for _ in range(100):  # a concurrent rmdir between our mkdir and open: try again, boundedly
            try:
                return os.open(name, DIRECTORY_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                if not create:
                    raise Missing from None
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=parent)
            except OSError as exc:
                # ELOOP (Linux, macOS) or EMLINK (FreeBSD) for a symlink; ENOTDIR for a file.
                if exc.errno not in (errno.ELOOP, errno.EMLINK, errno.ENOTDIR):
                    raise
                try:
                    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # replaced while we looked: look again
                if stat_module.S_ISLNK(st.st_mode):
                    raise self.symlink_error(action, key, where) from None
                if not create:
                    raise Missing from None
                raise StorageError(
                    f"cannot {action} {key!r}: {where!r} in shelf {self.root} is a file where a "
                    "directory belongs (remove it)"
                ) from None
        raise StorageError(
            f"cannot {action} {key!r}: {where!r} in shelf {self.root} keeps vanishing"
        )

    def open_dir(self, parts: list[str], create: bool, action: str, key: str) -> int:
        """A descriptor of the directory ``parts`` below the root, reached without following links."""
        fd = self.open_root(create)
        try:
            for depth, name in enumerate(parts):
                child = self.open_subdir(
                    fd, name, create, action, key, "/".join(parts[: depth + 1])
                )
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextlib.contextmanager
    def parent(self, key: str, *, create: bool, action: str) -> Iterator[tuple[int, str]]:
        """The descriptor of ``key``'s directory and the key's last name. Raises :class:`Missing`."""
        *parts, name = check_key(key).split("/")
        try:
            fd = self.open_dir(parts, create, action, key)
        except OSError as exc:
            raise self.error(exc, action, key) from None
        try:
            yield fd, name
        finally:
            os.close(fd)

    # --- the objects in a directory ---------------------------------------------------------

    def open_object(
        self, dir_fd: int, name: str, key: str, where: str
    ) -> tuple[int, os.stat_result] | None:
        """Open a regular file without following a link; ``None`` when it does not exist."""
        try:
            fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK):
                raise self.symlink_error("read", key, where) from None
            if exc.errno == errno.ENXIO:  # a socket
                raise StorageError(
                    f"cannot read {key!r}: it is not a regular file in shelf {self.root}"
                ) from None
            raise self.error(exc, "read", key) from None
        st = os.fstat(fd)
        if not stat_module.S_ISREG(st.st_mode):
            os.close(fd)
            raise self.not_object_error("read", key, st.st_mode)
        return fd, st

    def refuse_non_object(self, dir_fd: int, name: str, action: str, key: str) -> None:
        """Refuse to write ``key`` when a symlink, directory or other non-regular file holds its name."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        self.check_regular(st, action, key, key)
