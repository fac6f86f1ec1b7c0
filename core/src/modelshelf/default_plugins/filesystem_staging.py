"""Uploads to a directory shelf read every byte once: files are copied in while they are hashed.

``stage(path)`` copies a file into a hidden temporary file at the shelf root while hashing it
(with the kernel's copy, hashing the copy as it grows; across filesystems, one read in user space
with writing and hashing overlapping); ``put_blob`` then only renames that copy into place
(after an ``fsync``). The copy is not a blob: no key names it until then, so the upload protocol
(lease first, then blobs) is unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat as stat_module
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import StorageError
from .filesystem_dirs import (
    CLOEXEC,
    CREATE_FLAGS,
    HIDDEN_PREFIX,
    NOFOLLOW,
    Missing,
    ShelfDirectory,
    unlink_quietly,
)

#: Files smaller than this are hashed only, not staged (see :meth:`StagedCopies.session`).
STAGE_MIN_BYTES = 1 << 20
#: At most this many staged files (open descriptors) per storage at once; more are hashed only.
STAGE_MAX_HELD = 64

#: What identifies a staged copy: the source path, its sha256 and its size.
SourceEntry = tuple[str, str, int]
#: A staged copy: its hidden name at the root, and a descriptor of it held open.
Staged = tuple[str, int]


class StagedCopies:
    """The files of one storage copied in while they were hashed, until ``put_blob`` places them."""

    def __init__(self, shelf: ShelfDirectory) -> None:
        self._shelf = shelf
        #: (source, sha256, size) -> the hidden temporary file at the root that :meth:`place` renames
        #: into place, and a descriptor of it held open until then: only that inode is ever renamed
        #: (holding it keeps its inode number from being reused by a file put in its place).
        self._staged: dict[SourceEntry, Staged] = {}
        self._lock = threading.Lock()
        #: How many staged files are held open now (at most :data:`STAGE_MAX_HELD`).
        self.held = 0
        self._open: set[int] = set()

    @contextlib.contextmanager
    def session(self) -> Iterator[Callable[[Path], tuple[str, int]]]:
        """A ``stage(path) -> (sha256, size)``; whatever was not placed by the end of the block is
        removed (blobs the shelf already had)."""
        mine: list[tuple[SourceEntry, Staged]] = []
        lock = threading.Lock()

        def hash_only(path: Path) -> tuple[str, int]:
            import hashlib

            with open(path, "rb") as handle:
                return hashlib.file_digest(handle, "sha256").hexdigest(), handle.tell()

        def stage(path: Path) -> tuple[str, int]:
            # Small files are only hashed (put_blob copies them, verified: a second read of a
            # small file costs little), and at most STAGE_MAX_HELD files are held open at once.
            with self._lock:
                take = self.held < STAGE_MAX_HELD
                if take:
                    self.held += 1
            staged = None
            try:
                if take and os.stat(path).st_size >= STAGE_MIN_BYTES:
                    with contextlib.suppress(StorageError):  # cannot write here: publishing says so
                        staged = self._stage_file(Path(path))
            finally:
                if take and staged is None:
                    with self._lock:
                        self.held -= 1
            if staged is None:
                return hash_only(path)
            sha256, size, temp = staged
            entry = (os.fspath(path), sha256, size)
            with self._lock:
                previous = self._staged.get(entry)
                self._staged[entry] = temp
            with lock:
                mine.append((entry, temp))
            if previous is not None:  # the same file staged twice: keep one copy
                self._drop(entry, previous)
            return sha256, size

        try:
            yield stage
        finally:
            for entry, temp in mine:
                self._drop(entry, temp)

    def take(self, path: Path, sha256: str, size: int) -> Staged | None:
        """The staged copy of ``path`` with this content, if there is one; it is no longer listed."""
        with self._lock:
            return self._staged.pop((os.fspath(path), sha256, size), None)

    def place(self, key: str, staged: Staged, *, fsync: bool) -> bool:
        """Rename the staged file to ``key`` (after an fsync); False when it cannot be (gone,
        replaced, or another filesystem below the root), and then the caller copies the source
        again, verified."""
        shelf = self._shelf
        temp, held = staged
        try:
            ours = os.fstat(held)
            identity = (ours.st_dev, ours.st_ino)
        except OSError:
            return False
        try:
            root = shelf.open_root(create=False)
        except (OSError, Missing):
            return False
        try:
            with shelf.parent(key, create=True, action="write") as (dir_fd, name):
                shelf.refuse_non_object(dir_fd, name, "write", key)
                try:
                    fd = os.open(temp, os.O_RDONLY | NOFOLLOW | CLOEXEC, dir_fd=root)
                except OSError:
                    return False
                try:
                    st = os.fstat(fd)
                    if not stat_module.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != identity:
                        return False  # not the file this process wrote and hashed
                    if fsync:
                        os.fsync(held)
                finally:
                    os.close(fd)
                try:
                    os.replace(temp, name, src_dir_fd=root, dst_dir_fd=dir_fd)
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.EXDEV):
                        return False
                    raise shelf.error(exc, "write", key) from None
                return True
        except Missing:  # pragma: no cover - create=True never reports a missing directory
            return False
        finally:
            unlink_quietly(root, temp)
            os.close(root)
            self._release(staged, unlink=False)

    def _drop(self, entry: SourceEntry, staged: Staged) -> None:
        with self._lock:
            if self._staged.get(entry) == staged:
                del self._staged[entry]
        self._release(staged, unlink=True)

    def _release(self, staged: Staged, *, unlink: bool) -> None:
        """Close the held descriptor (once) and, if asked, remove the temporary name."""
        temp, fd = staged
        with self._lock:
            closing = fd in self._open
            self._open.discard(fd)
            if closing:
                self.held -= 1
        if closing:
            os.close(fd)
            if unlink:
                with contextlib.suppress(OSError, Missing):
                    root = self._shelf.open_root(create=False)
                    try:
                        os.unlink(temp, dir_fd=root)
                    finally:
                        os.close(root)

    def _stage_file(self, source: Path) -> tuple[str, int, Staged]:
        # Hashing is loaded only when blobs are stored.
        from ..kernel_copy import copy_hashing_in_kernel
        from ..transfer import copy_hashing

        try:
            root = self._shelf.open_root(create=True)
        except OSError as exc:
            raise self._shelf.error(exc, "write", "(staging)") from None
        temp = ""
        try:
            temp = f"{HIDDEN_PREFIX}staged.{secrets.token_hex(8)}.tmp"
            fd = os.open(temp, CREATE_FLAGS, 0o666, dir_fd=root)
            try:
                with open(source, "rb", buffering=0) as reader:
                    done = copy_hashing_in_kernel(reader.fileno(), fd)
                if done is None:  # another filesystem: read once, hash and write in user space

                    def write(chunk: bytes) -> None:
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view) :]

                    # No early write-back (sync_file_range): measured, it made the copy wait on a
                    # busy disk (2.3 s instead of 1.0 s for 512 MiB); put_blob's fsync suffices.
                    done = copy_hashing(source, write)
                sha256, size = done
            except BaseException:
                os.close(fd)
                raise
            with self._lock:
                self._open.add(fd)
            return sha256, size, (temp, fd)
        except BaseException as exc:
            if temp:
                unlink_quietly(root, temp)
            if isinstance(exc, OSError) and exc.filename is None:
                raise self._shelf.error(exc, "write", "(staging)") from None
            raise
        finally:
            os.close(root)
