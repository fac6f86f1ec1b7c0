"""The built-in filesystem backend: ``file:///srv/models`` or a plain path.

Contract, and how this backend keeps it (POSIX only: it needs ``dir_fd`` support in ``os``):

* **Nothing is written outside the shelf root, and nothing is read from outside it.** Every key is
  reached from the root's file descriptor, one directory at a time, never following a link; a
  symlink inside the shelf, or a directory where an object belongs, is refused with a one-line
  :class:`~modelshelf.errors.StorageError` naming the key (:mod:`.filesystem_dirs`). Listings skip
  symlinks.
* **No partial object is visible**, **create-only** is one ``link``, and **compare-and-swap needs
  no lock**: a key's value is the file at the key followed by its hidden claim files
  (:mod:`.filesystem_claims`).
* **Locks only save work.** Where ``flock`` works, writers of one key queue on a hidden lock file.
  On filesystems where ``flock`` silently does nothing (some NFS, SMB, Lustre, GPFS mounts)
  correctness does not change. :data:`key_lock` is replaceable for that reason (tests make it a
  no-op).
* **Uploads read every byte once**: files are copied in while they are hashed
  (:mod:`.filesystem_staging`).

The etag is ``<inode>-<mtime_ns>-<size>``.

Mixing this backend with modelshelf versions that replaced keys under the lock alone is unsafe:
they do not know claims.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import errno
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO

from ..errors import KeyNotFound, StorageError
from ..hookspecs import hookimpl
from ..storage import CHUNK_SIZE, ObjectInfo, Storage, StoredBytes
from . import filesystem_claims as claims
from .filesystem_claims import CLAIM, etag, flock_key
from .filesystem_dirs import (
    HIDDEN_PREFIX,
    Missing,
    ShelfDirectory,
    new_temp,
    path_from_url,
    unlink_quietly,
)
from .filesystem_staging import STAGE_MAX_HELD, STAGE_MIN_BYTES, StagedCopies

__all__ = [
    "CLAIM_MIN_AGE",
    "HIDDEN_PREFIX",
    "STAGE_MAX_HELD",
    "STAGE_MIN_BYTES",
    "FileSystemStorage",
    "key_lock",
    "modelshelf_register_storage",
    "open_filesystem",
    "path_from_url",
]

#: Claims off the live chain are kept at least this long, whatever ``cleanup`` is asked, because a
#: writer stalled between its link and its shortcut rename could otherwise bring back a value whose
#: successors are gone. Replaceable by tests.
CLAIM_MIN_AGE = dt.timedelta(hours=1)

#: ``key_lock(dir_fd, name)``: serialise writers of the key ``name`` in the directory ``dir_fd``.
#: An optimisation only (see the module docstring), hence replaceable.
key_lock: Callable[[int, str], AbstractContextManager[None]] = flock_key


class FileSystemStorage(Storage):
    """A shelf in a local (or network-mounted) directory."""

    local = True

    def __init__(self, url: str, *, fsync: bool | None = None) -> None:
        self.root = path_from_url(url)
        self.url = url
        if fsync is None:
            fsync = os.environ.get("MODELSHELF_FSYNC", "1") not in ("0", "false", "no")
        #: Flush file contents to disk before publishing, so a power loss cannot leave a manifest
        #: pointing at blobs that never reached the disk.
        self.fsync = fsync
        if os.open not in os.supports_dir_fd:  # pragma: no cover - Windows
            raise StorageError(
                f"shelf {self.root}: directory shelves need a POSIX system (openat), which this is not"
            )
        self._dirs = ShelfDirectory(self.root)
        #: Files copied in while they were hashed (see :meth:`upload_staging`).
        self._staging = StagedCopies(self._dirs)

    def describe(self) -> str:
        return str(self.root)

    # --- reads -----------------------------------------------------------------------------

    def read(self, key: str) -> StoredBytes:
        try:
            with self._dirs.parent(key, create=False, action="read") as (dir_fd, name):
                found = claims.open_value(self._dirs, dir_fd, name, key)
        except Missing:
            found = None
        if found is None:
            raise KeyNotFound(f"{key} not found in shelf {self.root}")
        fd, st = found
        try:
            with open(fd, "rb", closefd=False) as handle:
                return StoredBytes(handle.read(), etag(st))
        except OSError as exc:
            raise self._dirs.error(exc, "read", key) from None
        finally:
            os.close(fd)

    def read_stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        try:
            with self._dirs.parent(key, create=False, action="read") as (dir_fd, name):
                found = claims.open_value(self._dirs, dir_fd, name, key)
        except Missing:
            found = None
        if found is None:
            raise KeyNotFound(f"{key} not found in shelf {self.root}")
        return self._chunks(open(found[0], "rb"), chunk_size)

    @staticmethod
    def _chunks(handle: IO[bytes], chunk_size: int) -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            with self._dirs.parent(key, create=False, action="stat") as (dir_fd, name):
                steps = claims.chain(self._dirs, dir_fd, name, key, "stat")
        except Missing:
            return None
        return self._info(key, steps[-1]) if steps else None

    def local_path(self, key: str) -> Path | None:
        """The key's file, when it was written once: a key replaced since then (a chain of claims)
        is only read through :meth:`read_stream`, which follows the chain."""
        try:
            with self._dirs.parent(key, create=False, action="stat") as (dir_fd, name):
                steps = claims.chain(self._dirs, dir_fd, name, key, "stat")
        except Missing:
            return None
        return Path(self.root, *key.split("/")) if len(steps) == 1 else None

    @staticmethod
    def _info(key: str, st: os.stat_result) -> ObjectInfo:
        modified = dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)
        return ObjectInfo(key, st.st_size, etag(st), modified)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # Walk only the directory the prefix names, then filter on the rest of the prefix.
        directory, _, start = prefix.rpartition("/")
        parts = directory.split("/") if directory else []
        try:
            base = self._dirs.open_dir(parts, False, "list", prefix)
        except Missing:
            return
        except OSError as exc:
            raise self._dirs.error(exc, "list", prefix) from None
        stack = [(base, f"{directory}/" if directory else "", True)]
        try:
            while stack:
                folder, key_prefix, top = stack.pop()
                try:
                    yield from self._list_folder(
                        folder, key_prefix, start if top else "", stack, prefix
                    )
                finally:
                    os.close(folder)
        finally:
            for folder, _, _ in stack:  # the consumer stopped early
                os.close(folder)

    def _list_folder(
        self,
        folder: int,
        key_prefix: str,
        start: str,
        stack: builtins.list[tuple[int, str, bool]],
        prefix: str,
    ) -> Iterator[ObjectInfo]:
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise self._dirs.error(exc, "list", prefix) from None
        replaced = {
            (match["name"], match["etag"])
            for entry in entries
            if entry.name.startswith(HIDDEN_PREFIX) and (match := CLAIM.match(entry.name))
        }
        for entry in entries:
            if entry.name.startswith(HIDDEN_PREFIX) or not entry.name.startswith(start):
                continue
            key = key_prefix + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    # A directory swapped for a symlink since scandir looked is skipped like one.
                    with contextlib.suppress(
                        FileNotFoundError, NotADirectoryError, Missing, StorageError
                    ):
                        stack.append(
                            (
                                self._dirs.open_subdir(folder, entry.name, False, "list", key, key),
                                key + "/",
                                False,
                            )
                        )
                elif entry.is_file(follow_symlinks=False):  # never a symlink: listings skip them
                    st = entry.stat(follow_symlinks=False)
                    if (entry.name, etag(st)) in replaced:  # by a claim: report the current value
                        steps = claims.chain(self._dirs, folder, entry.name, key, "list")
                        if not steps:
                            continue
                        st = steps[-1]
                    yield self._info(key, st)
            except FileNotFoundError:  # deleted while we listed
                continue
            except OSError as exc:
                raise self._dirs.error(exc, "list", prefix) from None

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        parts = prefix.rstrip("/").split("/") if prefix.strip("/") else []
        try:
            folder = self._dirs.open_dir(parts, False, "list", prefix)
        except Missing:
            return
        except OSError as exc:
            raise self._dirs.error(exc, "list", prefix) from None
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise self._dirs.error(exc, "list", prefix) from None
        finally:
            os.close(folder)
        for entry in entries:
            if not entry.name.startswith(HIDDEN_PREFIX) and entry.is_dir(follow_symlinks=False):
                yield f"{prefix}{entry.name}/"

    # --- writes ----------------------------------------------------------------------------

    def _write_copy(
        self, dir_fd: int, name: str, source: Path, key: str, verify: tuple[str, int] | None
    ) -> str:
        """Copy ``source`` to a temporary file beside ``name`` (verified when asked); return its name."""
        temp = ""
        try:
            temp, fd = new_temp(dir_fd, name)
            with open(fd, "wb") as out:
                if verify is not None:
                    # Hashing is loaded only when blobs are stored.
                    from ..kernel_copy import copy_hashing_in_kernel
                    from ..transfer import changed_while_uploading, copy_verified

                    with open(source, "rb", buffering=0) as reader:
                        done = copy_hashing_in_kernel(reader.fileno(), out.fileno())
                    if done is None:  # another filesystem: in user space
                        copy_verified(source, out, *verify)
                        out.flush()
                    elif done != verify:
                        raise changed_while_uploading(source)
                else:
                    with open(source, "rb") as src:
                        _copy_fd(src.fileno(), out.fileno())
                if self.fsync:
                    os.fsync(out.fileno())
            return temp
        except BaseException as exc:
            if temp:
                unlink_quietly(dir_fd, temp)
            if isinstance(exc, OSError):
                raise self._dirs.error(exc, "write", key) from None
            raise

    def _store_file(self, key: str, path: Path, verify: tuple[str, int] | None) -> None:
        try:
            with self._dirs.parent(key, create=True, action="write") as (dir_fd, name):
                self._dirs.refuse_non_object(dir_fd, name, "write", key)
                temp = self._write_copy(dir_fd, name, Path(path), key, verify)
                try:
                    # rename replaces the name itself, never what a link there would point to.
                    os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                except OSError as exc:
                    unlink_quietly(dir_fd, temp)
                    raise self._dirs.error(exc, "write", key) from None
        except Missing:  # pragma: no cover - create=True never reports a missing directory
            raise StorageError(f"cannot write {key!r} in shelf {self.root}") from None

    def put_file(self, key: str, path: Path) -> None:
        self._store_file(key, path, None)

    def put_blob(self, key: str, path: Path, sha256: str, size: int) -> None:
        """Copy ``path`` beside the key while hashing it (one read), then rename it into place only
        if it matched; on a mismatch raise :class:`~modelshelf.errors.ChangedWhileUploading` and
        leave nothing behind. A file already copied in while it was hashed (:meth:`upload_staging`) is
        renamed into place instead: those bytes are exactly the ones hashed."""
        staged = self._staging.take(path, sha256, size)
        if staged is not None and self._staging.place(key, staged, fsync=self.fsync):
            return
        self._store_file(key, path, (sha256, size))

    def upload_staging(self) -> AbstractContextManager[Callable[[Path], tuple[str, int]]]:
        """A ``stage(path) -> (sha256, size)`` for :func:`modelshelf.transfer.hashing_with`.

        ``stage`` copies ``path`` into a hidden temporary file at the shelf root while hashing it
        (one read; writing and hashing overlap), and remembers it for
        :meth:`put_blob`, which then only renames it (after an ``fsync``). The temporary file is
        not a blob: no key names it until ``put_blob``, so the upload protocol (lease first, then
        blobs) is unchanged. Whatever was not placed by the end of the block is removed (blobs the
        shelf already had); a crash leaves a ``.tmp`` file that ``gc``'s cleanup removes.
        """
        return self._staging.session()

    def put_if_absent(self, key: str, data: bytes) -> str:
        try:
            with self._dirs.parent(key, create=True, action="write") as (dir_fd, name):
                return claims.create(self._dirs, dir_fd, name, key, data, fsync=self.fsync)
        except Missing:  # pragma: no cover - create=True never reports a missing directory
            raise StorageError(f"cannot write {key!r} in shelf {self.root}") from None

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        try:
            with self._dirs.parent(key, create=False, action="write") as (dir_fd, name):
                return claims.swap(
                    self._dirs, dir_fd, name, key, data, etag, fsync=self.fsync, lock=key_lock
                )
        except Missing:
            claims.raise_stale(self._dirs, key)

    def delete(self, key: str) -> None:
        try:
            with self._dirs.parent(key, create=False, action="delete") as (dir_fd, name):
                self._dirs.refuse_non_object(dir_fd, name, "delete", key)
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise self._dirs.error(exc, "delete", key) from None
        except Missing:
            pass

    def touch(self, key: str) -> None:
        """Refresh a blob's modification time so ``gc``'s grace period starts again.

        For immutable objects only: it changes the etag, so it skips a key whose value was replaced
        by compare-and-swap (changing that etag would cut the key off its claims).
        """
        with (
            contextlib.suppress(OSError, StorageError, Missing),
            self._dirs.parent(key, create=False, action="touch") as (dir_fd, name),
        ):
            found = self._dirs.open_object(dir_fd, name, key, key)
            if found is None:
                return
            fd, st = found
            try:
                successor = self._dirs.open_object(
                    dir_fd, claims.claim_name(name, etag(st)), key, key
                )
                if successor is None:
                    os.utime(fd)
                else:
                    os.close(successor[0])
            finally:
                os.close(fd)

    def cleanup(self, older_than: dt.timedelta) -> None:
        """Remove what crashed writers left behind: temporary files older than ``older_than``, and
        claims off their key's live chain older than that and than :data:`CLAIM_MIN_AGE` (never
        lock files, never a claim a reader may still need)."""
        now = dt.datetime.now(dt.UTC).timestamp()
        temp_cutoff = now - older_than.total_seconds()
        claim_cutoff = now - max(older_than, CLAIM_MIN_AGE).total_seconds()
        try:
            root = self._dirs.open_root(create=False)
        except (Missing, OSError):
            return
        try:
            for _, _, names, dir_fd in os.fwalk(".", dir_fd=root, follow_symlinks=False):
                claims.cleanup_folder(self._dirs, dir_fd, names, temp_cutoff, claim_cutoff)
        finally:
            os.close(root)


def _copy_fd(source: int, target: int) -> None:
    """Copy all of ``source`` into ``target`` with the kernel's copy where it has one, like ``cp``."""
    copy_range = getattr(os, "copy_file_range", None)
    copied = 0
    if copy_range is not None:
        try:
            while n := copy_range(source, target, 1 << 30):
                copied += n
            return
        except OSError as exc:
            # Not supported between these filesystems: fall back to reading, if nothing was copied.
            if copied or exc.errno not in (
                errno.EXDEV,
                errno.ENOSYS,
                errno.EINVAL,
                errno.EOPNOTSUPP,
                errno.EPERM,
            ):
                raise
    while chunk := os.read(source, CHUNK_SIZE):
        view = memoryview(chunk)
        while view:
            view = view[os.write(target, view) :]


def open_filesystem(url: str, **options: object) -> FileSystemStorage:
    return FileSystemStorage(url, **options)  # type: ignore[arg-type]


@hookimpl
def modelshelf_register_storage(register: Callable[..., object]) -> None:
    register("file", open_filesystem)
