"""The built-in filesystem backend: ``file:///srv/models`` or a plain path.

Contract, and how this backend keeps it (POSIX only: it needs ``dir_fd`` support in ``os``):

* **Nothing is written outside the shelf root, and nothing is read from outside it.** The root may
  be a symlink (the user chose it). Below it, every key is reached by opening its directories one
  at a time from the root's file descriptor with ``O_NOFOLLOW``, and every operation on the final
  name is relative to the last directory's descriptor and never follows a link. A symlink found
  inside the shelf is refused with a one-line :class:`~modelshelf.errors.StorageError` naming the
  key, for reads and writes alike; so is a directory (or other non-regular file) where an object
  belongs. Listings skip symlinks.
* **No partial object is visible.** Every write goes to a hidden temporary file beside its key
  first and becomes visible by one atomic ``link`` or ``rename``.
* **Create-only** is ``link(temp, key)``, which fails when ``key`` exists: exactly one writer wins,
  on NFS too.
* **Compare-and-swap needs no lock.** A key's value is a chain: the file at the key, then the
  hidden *claims* ``.~<name>.<etag>.next``, each holding the value that replaced the object whose
  etag it names. Replacing etag ``E`` is one create-only ``link(temp, claim(E))``: of all writers
  holding ``E``, exactly one can create it. A reader starts at the key and follows claims until
  none exists; what it ends on is the current value. Claims are never removed while their chain is
  live, so a claim can never be created twice for a value that was current, and a writer with a
  stale etag always meets an existing claim. After linking, the writer checks its claim extends
  the live chain (it does not when the key was deleted or its etag is long gone: then it removes
  the claim and fails), and finally renames its temporary file over the key so chains stay short.
  That rename is only a shortcut for readers: a late one that puts an older value back at the key
  is harmless, since the chain still leads from it to the current value.
* **Locks only save work.** Where ``flock`` works, writers of one key queue on a hidden lock file,
  so the shortcut renames happen in order and chains stay one step long. On filesystems where
  ``flock`` silently does nothing (some NFS, SMB, Lustre, GPFS mounts) correctness does not change.
  :func:`key_lock` is replaceable for that reason (tests make it a no-op).

The etag is ``<inode>-<mtime_ns>-<size>``. Rename keeps the inode and mtime, so an object keeps
its etag when the shortcut rename moves it to the key. Small records get their mtime set from the
nanosecond clock, because the kernel's own timestamps are coarse (milliseconds) and a freed inode
is soon reused: a new object must never repeat the etag of one a claim still names.

Mixing this backend with modelshelf versions that replaced keys under the lock alone is unsafe:
they do not know claims.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import errno
import os
import re
import secrets
import stat as stat_module
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, NoReturn
from urllib.parse import unquote, urlparse

from ..errors import (
    AlreadyExists,
    KeyNotFound,
    PreconditionFailed,
    ReadOnlyShelf,
    StorageError,
)
from ..hookspecs import hookimpl
from ..storage import CHUNK_SIZE, ObjectInfo, Storage, StoredBytes, check_key

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: Temporary, claim and lock files start with this; listings skip them and names can never start with it.
HIDDEN_PREFIX = ".~"

#: Claims off the live chain are kept at least this long, whatever ``cleanup`` is asked, because a
#: writer stalled between its link and its shortcut rename could otherwise bring back a value whose
#: successors are gone. Replaceable by tests.
CLAIM_MIN_AGE = dt.timedelta(hours=1)

#: A chain longer than this means claims that loop (a corrupted shelf): refuse rather than spin.
_MAX_CHAIN = 100_000

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
# O_NONBLOCK so that a FIFO planted at a key cannot make a read wait forever.
_READ_FLAGS = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC

_CLAIM = re.compile(r"^\.~(?P<name>.+)\.(?P<etag>\d+-\d+-\d+)\.next$")


def _etag(st: os.stat_result) -> str:
    return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"


def _temp_name(name: str) -> str:
    return f"{HIDDEN_PREFIX}{name}.{secrets.token_hex(6)}.tmp"


def _claim_name(name: str, etag: str) -> str:
    return f"{HIDDEN_PREFIX}{name}.{etag}.next"


@contextlib.contextmanager
def _flock(dir_fd: int, name: str) -> Iterator[None]:
    try:
        fd = os.open(
            f"{HIDDEN_PREFIX}{name}.lock",
            os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC,
            0o644,
            dir_fd=dir_fd,
        )
    except OSError:
        yield  # no lock file (read-only directory, a link planted there): the lock is only a speed-up
        return
    try:
        if fcntl is not None:
            with contextlib.suppress(
                OSError
            ):  # ENOLCK on NFS without a lock daemon: go on unlocked
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock; a dead process's lock goes with it


#: ``key_lock(dir_fd, name)``: serialise writers of the key ``name`` in the directory ``dir_fd``.
#: An optimisation only (see the module docstring), hence replaceable.
key_lock: Callable[[int, str], AbstractContextManager[None]] = _flock


def path_from_url(url: str) -> Path:
    """``file:///a/b`` or a plain path -> an absolute local path (``~`` expanded)."""
    if url.startswith("file:"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise StorageError(f"file URLs must be local (file:///path), got {url!r}")
        return Path(unquote(parsed.path)).expanduser().absolute()
    return Path(url).expanduser().absolute()


class _Missing(Exception):
    """A directory on the way to a key does not exist (or is a file): the key does not exist."""


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
        #: Files copied in while they were hashed (see :meth:`upload_staging`): (source, sha256, size) ->
        #: the hidden temporary file at the root that :meth:`put_blob` renames into place, and a
        #: descriptor of it held open until then: only that inode is ever renamed (holding it
        #: keeps its inode number from being reused by a file put in its place).
        self._staged: dict[tuple[str, str, int], tuple[str, int]] = {}
        self._staged_lock = threading.Lock()
        self._held = 0
        self._open_staged: set[int] = set()

    def describe(self) -> str:
        return str(self.root)

    # --- errors ----------------------------------------------------------------------------

    def _error(self, exc: OSError, action: str, key: str) -> StorageError:
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

    def _symlink_error(self, action: str, key: str, where: str) -> StorageError:
        return StorageError(
            f"refusing to {action} {key!r}: {where!r} is a symlink inside shelf {self.root}; "
            "modelshelf never follows links inside a shelf (remove the link)"
        )

    def _not_object_error(self, action: str, key: str, mode: int) -> StorageError:
        what = "a directory" if stat_module.S_ISDIR(mode) else "not a regular file"
        return StorageError(
            f"cannot {action} {key!r}: it is {what} in shelf {self.root}, not an object (remove it)"
        )

    def _check_regular(self, st: os.stat_result, action: str, key: str, where: str) -> None:
        if stat_module.S_ISLNK(st.st_mode):
            raise self._symlink_error(action, key, where)
        if not stat_module.S_ISREG(st.st_mode):
            raise self._not_object_error(action, key, st.st_mode)

    # --- walking directories without following links ----------------------------------------

    def _open_root(self, create: bool) -> int:
        # The root is the user's choice: it may be a symlink, so it alone is opened following links.
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
        try:
            return os.open(self.root, flags)
        except FileNotFoundError:
            if not create:
                raise _Missing from None
            os.makedirs(self.root, exist_ok=True)
            return os.open(self.root, flags)

    def _open_subdir(
        self, parent: int, name: str, create: bool, action: str, key: str, where: str
    ) -> int:
        """Open ``name`` below ``parent`` as a directory, refusing a symlink; create it if asked."""
        for _ in range(100):  # a concurrent rmdir between our mkdir and open: try again, boundedly
            try:
                return os.open(name, _DIRECTORY_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                if not create:
                    raise _Missing from None
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
                    raise self._symlink_error(action, key, where) from None
                if not create:
                    raise _Missing from None
                raise StorageError(
                    f"cannot {action} {key!r}: {where!r} in shelf {self.root} is a file where a "
                    "directory belongs (remove it)"
                ) from None
        raise StorageError(
            f"cannot {action} {key!r}: {where!r} in shelf {self.root} keeps vanishing"
        )

    def _open_dir(self, parts: list[str], create: bool, action: str, key: str) -> int:
        """A descriptor of the directory ``parts`` below the root, reached without following links."""
        fd = self._open_root(create)
        try:
            for depth, name in enumerate(parts):
                child = self._open_subdir(
                    fd, name, create, action, key, "/".join(parts[: depth + 1])
                )
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextlib.contextmanager
    def _parent(self, key: str, *, create: bool, action: str) -> Iterator[tuple[int, str]]:
        """The descriptor of ``key``'s directory and the key's last name. Raises :class:`_Missing`."""
        *parts, name = check_key(key).split("/")
        try:
            fd = self._open_dir(parts, create, action, key)
        except OSError as exc:
            raise self._error(exc, action, key) from None
        try:
            yield fd, name
        finally:
            os.close(fd)

    # --- the value of a key: the file at the key, then its claims ---------------------------

    def _open_object(
        self, dir_fd: int, name: str, key: str, where: str
    ) -> tuple[int, os.stat_result] | None:
        """Open a regular file without following a link; ``None`` when it does not exist."""
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK):
                raise self._symlink_error("read", key, where) from None
            if exc.errno == errno.ENXIO:  # a socket
                raise StorageError(
                    f"cannot read {key!r}: it is not a regular file in shelf {self.root}"
                ) from None
            raise self._error(exc, "read", key) from None
        st = os.fstat(fd)
        if not stat_module.S_ISREG(st.st_mode):
            os.close(fd)
            raise self._not_object_error("read", key, st.st_mode)
        return fd, st

    def _open_value(self, dir_fd: int, name: str, key: str) -> tuple[int, os.stat_result] | None:
        """Open the current value of ``key``: follow its claims from the file at the key to the last."""
        found = self._open_object(dir_fd, name, key, key)
        if found is None:
            return None
        fd, st = found
        for _ in range(_MAX_CHAIN):
            # Claims are immutable and kept while their chain is live: holding a descriptor of each
            # step, the walk always moves forward to the value current when the last lookup failed.
            nxt = self._open_object(dir_fd, _claim_name(name, _etag(st)), key, key)
            if nxt is None:
                return fd, st
            os.close(fd)
            fd, st = nxt
        os.close(fd)
        raise self._loop_error(key)

    def _loop_error(self, key: str) -> StorageError:
        return StorageError(
            f"cannot read {key!r}: its claim files in shelf {self.root} form a loop"
        )

    def _chain(
        self, dir_fd: int, name: str, key: str, action: str = "read"
    ) -> builtins.list[os.stat_result]:
        """Stats of every step of ``key``'s value chain, the current value last; empty when missing."""
        steps: builtins.list[os.stat_result] = []
        current = name
        for _ in range(_MAX_CHAIN):
            try:
                st = os.stat(current, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return steps
            except OSError as exc:
                raise self._error(exc, action, key) from None
            self._check_regular(st, action, key, key)
            steps.append(st)
            current = _claim_name(name, _etag(st))
        raise self._loop_error(key)

    # --- reads -----------------------------------------------------------------------------

    def read(self, key: str) -> StoredBytes:
        try:
            with self._parent(key, create=False, action="read") as (dir_fd, name):
                found = self._open_value(dir_fd, name, key)
        except _Missing:
            found = None
        if found is None:
            raise KeyNotFound(f"{key} not found in shelf {self.root}")
        fd, st = found
        try:
            with open(fd, "rb", closefd=False) as handle:
                return StoredBytes(handle.read(), _etag(st))
        except OSError as exc:
            raise self._error(exc, "read", key) from None
        finally:
            os.close(fd)

    def read_stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        try:
            with self._parent(key, create=False, action="read") as (dir_fd, name):
                found = self._open_value(dir_fd, name, key)
        except _Missing:
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
            with self._parent(key, create=False, action="stat") as (dir_fd, name):
                steps = self._chain(dir_fd, name, key, "stat")
        except _Missing:
            return None
        return self._info(key, steps[-1]) if steps else None

    @staticmethod
    def _info(key: str, st: os.stat_result) -> ObjectInfo:
        modified = dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)
        return ObjectInfo(key, st.st_size, _etag(st), modified)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # Walk only the directory the prefix names, then filter on the rest of the prefix.
        directory, _, start = prefix.rpartition("/")
        parts = directory.split("/") if directory else []
        try:
            base = self._open_dir(parts, False, "list", prefix)
        except _Missing:
            return
        except OSError as exc:
            raise self._error(exc, "list", prefix) from None
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
            raise self._error(exc, "list", prefix) from None
        claims = {
            (match["name"], match["etag"])
            for entry in entries
            if entry.name.startswith(HIDDEN_PREFIX) and (match := _CLAIM.match(entry.name))
        }
        for entry in entries:
            if entry.name.startswith(HIDDEN_PREFIX) or not entry.name.startswith(start):
                continue
            key = key_prefix + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    # A directory swapped for a symlink since scandir looked is skipped like one.
                    with contextlib.suppress(
                        FileNotFoundError, NotADirectoryError, _Missing, StorageError
                    ):
                        stack.append(
                            (
                                self._open_subdir(folder, entry.name, False, "list", key, key),
                                key + "/",
                                False,
                            )
                        )
                elif entry.is_file(follow_symlinks=False):  # never a symlink: listings skip them
                    st = entry.stat(follow_symlinks=False)
                    if (
                        entry.name,
                        _etag(st),
                    ) in claims:  # replaced by a claim: report the current value
                        steps = self._chain(folder, entry.name, key, "list")
                        if not steps:
                            continue
                        st = steps[-1]
                    yield self._info(key, st)
            except FileNotFoundError:  # deleted while we listed
                continue
            except OSError as exc:
                raise self._error(exc, "list", prefix) from None

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        parts = prefix.rstrip("/").split("/") if prefix.strip("/") else []
        try:
            folder = self._open_dir(parts, False, "list", prefix)
        except _Missing:
            return
        except OSError as exc:
            raise self._error(exc, "list", prefix) from None
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise self._error(exc, "list", prefix) from None
        finally:
            os.close(folder)
        for entry in entries:
            if not entry.name.startswith(HIDDEN_PREFIX) and entry.is_dir(follow_symlinks=False):
                yield f"{prefix}{entry.name}/"

    # --- writes ----------------------------------------------------------------------------

    def _refuse_non_object(self, dir_fd: int, name: str, action: str, key: str) -> None:
        """Refuse to write ``key`` when a symlink, directory or other non-regular file holds its name."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        self._check_regular(st, action, key, key)

    def _new_temp(self, dir_fd: int, name: str) -> tuple[str, int]:
        temp = _temp_name(name)
        return temp, os.open(temp, _CREATE_FLAGS, 0o666, dir_fd=dir_fd)

    def _unlink_quietly(self, dir_fd: int, name: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)

    def _write_record(
        self, dir_fd: int, name: str, data: bytes, key: str
    ) -> tuple[str, os.stat_result]:
        """Write ``data`` to a temporary file beside ``name``; return its name and final stat."""
        temp = ""
        try:
            temp, fd = self._new_temp(dir_fd, name)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                # A fine-grained mtime makes the etag unique even when the inode of a just-replaced
                # object is reused within one coarse kernel timestamp tick.
                now = time.time_ns()
                os.utime(fd, ns=(now, now))
                if self.fsync:
                    os.fsync(fd)
                return temp, os.fstat(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if temp:
                self._unlink_quietly(dir_fd, temp)
            raise self._error(exc, "write", key) from None

    def _write_copy(
        self, dir_fd: int, name: str, source: Path, key: str, verify: tuple[str, int] | None
    ) -> str:
        """Copy ``source`` to a temporary file beside ``name`` (verified when asked); return its name."""
        temp = ""
        try:
            temp, fd = self._new_temp(dir_fd, name)
            with open(fd, "wb") as out:
                if verify is not None:
                    from ..transfer import (
                        copy_verified,  # hashing is loaded only when blobs are stored
                    )

                    copy_verified(source, out, *verify)
                    out.flush()
                else:
                    with open(source, "rb") as src:
                        _copy_fd(src.fileno(), out.fileno())
                if self.fsync:
                    os.fsync(out.fileno())
            return temp
        except BaseException as exc:
            if temp:
                self._unlink_quietly(dir_fd, temp)
            if isinstance(exc, OSError):
                raise self._error(exc, "write", key) from None
            raise

    def _store_file(self, key: str, path: Path, verify: tuple[str, int] | None) -> None:
        try:
            with self._parent(key, create=True, action="write") as (dir_fd, name):
                self._refuse_non_object(dir_fd, name, "write", key)
                temp = self._write_copy(dir_fd, name, Path(path), key, verify)
                try:
                    # rename replaces the name itself, never what a link there would point to.
                    os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                except OSError as exc:
                    self._unlink_quietly(dir_fd, temp)
                    raise self._error(exc, "write", key) from None
        except _Missing:  # pragma: no cover - create=True never reports a missing directory
            raise StorageError(f"cannot write {key!r} in shelf {self.root}") from None

    def put_file(self, key: str, path: Path) -> None:
        self._store_file(key, path, None)

    def put_blob(self, key: str, path: Path, sha256: str, size: int) -> None:
        """Copy ``path`` beside the key while hashing it (one read), then rename it into place only
        if it matched; on a mismatch raise :class:`~modelshelf.errors.ChangedWhileUploading` and
        leave nothing behind. A file already copied in while it was hashed (:meth:`upload_staging`) is
        renamed into place instead: those bytes are exactly the ones hashed."""
        with self._staged_lock:
            staged = self._staged.pop((os.fspath(path), sha256, size), None)
        if staged is not None and self._place_staged(key, staged):
            return
        self._store_file(key, path, (sha256, size))

    # --- staging: uploads read every byte once ----------------------------------------------

    @contextlib.contextmanager
    def upload_staging(self) -> Iterator[Callable[[Path], tuple[str, int]]]:
        """A ``stage(path) -> (sha256, size)`` for :func:`modelshelf.transfer.hashing_with`.

        ``stage`` copies ``path`` into a hidden temporary file at the shelf root while hashing it
        (one read; writing and hashing overlap), and remembers it for
        :meth:`put_blob`, which then only renames it (after an ``fsync``). The temporary file is
        not a blob: no key names it until ``put_blob``, so the upload protocol (lease first, then
        blobs) is unchanged. Whatever was not placed by the end of the block is removed (blobs the
        shelf already had); a crash leaves a ``.tmp`` file that ``gc``'s cleanup removes.
        """
        mine: list[tuple[tuple[str, str, int], tuple[str, int]]] = []
        lock = threading.Lock()

        def hash_only(path: Path) -> tuple[str, int]:
            import hashlib

            with open(path, "rb") as handle:
                return hashlib.file_digest(handle, "sha256").hexdigest(), handle.tell()

        def stage(path: Path) -> tuple[str, int]:
            # Small files are only hashed (put_blob copies them, verified: a second read of a
            # small file costs little), and at most STAGE_MAX_HELD files are held open at once.
            with self._staged_lock:
                take = self._held < STAGE_MAX_HELD
                if take:
                    self._held += 1
            staged = None
            try:
                if take and os.stat(path).st_size >= STAGE_MIN_BYTES:
                    with contextlib.suppress(StorageError):  # cannot write here: publishing says so
                        staged = self._stage_file(Path(path))
            finally:
                if take and staged is None:
                    with self._staged_lock:
                        self._held -= 1
            if staged is None:
                return hash_only(path)
            sha256, size, temp = staged
            entry = (os.fspath(path), sha256, size)
            with self._staged_lock:
                previous = self._staged.get(entry)
                self._staged[entry] = temp
            with lock:
                mine.append((entry, temp))
            if previous is not None:  # the same file staged twice: keep one copy
                self._drop_staged(entry, previous)
            return sha256, size

        try:
            yield stage
        finally:
            for entry, temp in mine:
                self._drop_staged(entry, temp)

    def _drop_staged(self, entry: tuple[str, str, int], staged: tuple[str, int]) -> None:
        with self._staged_lock:
            if self._staged.get(entry) == staged:
                del self._staged[entry]
        self._release(staged, unlink=True)

    def _release(self, staged: tuple[str, int], *, unlink: bool) -> None:
        """Close the held descriptor (once) and, if asked, remove the temporary name."""
        temp, fd = staged
        with self._staged_lock:
            closing = fd in self._open_staged
            self._open_staged.discard(fd)
            if closing:
                self._held -= 1
        if closing:
            os.close(fd)
            if unlink:
                with contextlib.suppress(OSError, _Missing):
                    root = self._open_root(create=False)
                    try:
                        os.unlink(temp, dir_fd=root)
                    finally:
                        os.close(root)

    def _stage_file(self, source: Path) -> tuple[str, int, tuple[str, int]]:
        from ..transfer import copy_hashing  # hashing is loaded only when blobs are stored

        try:
            root = self._open_root(create=True)
        except OSError as exc:
            raise self._error(exc, "write", "(staging)") from None
        temp = ""
        try:
            temp = f"{HIDDEN_PREFIX}staged.{secrets.token_hex(8)}.tmp"
            fd = os.open(temp, _CREATE_FLAGS, 0o666, dir_fd=root)
            try:

                def write(chunk: bytes) -> None:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]

                # No early write-back (sync_file_range) here: measured, it made the copy wait on
                # a busy disk (2.3 s instead of 1.0 s for 512 MiB); the fsync in put_blob suffices.
                sha256, size = copy_hashing(source, write)
            except BaseException:
                os.close(fd)
                raise
            with self._staged_lock:
                self._open_staged.add(fd)
            return sha256, size, (temp, fd)
        except BaseException as exc:
            if temp:
                self._unlink_quietly(root, temp)
            if isinstance(exc, OSError) and exc.filename is None:
                raise self._error(exc, "write", "(staging)") from None
            raise
        finally:
            os.close(root)

    def _place_staged(self, key: str, staged: tuple[str, int]) -> bool:
        """Rename the staged file to ``key`` (after an fsync); False when it cannot be (gone,
        replaced, or another filesystem below the root), and then the caller copies the source
        again, verified."""
        temp, held = staged
        try:
            ours = os.fstat(held)
            identity = (ours.st_dev, ours.st_ino)
        except OSError:
            return False
        try:
            root = self._open_root(create=False)
        except (OSError, _Missing):
            return False
        try:
            with self._parent(key, create=True, action="write") as (dir_fd, name):
                self._refuse_non_object(dir_fd, name, "write", key)
                try:
                    fd = os.open(temp, os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=root)
                except OSError:
                    return False
                try:
                    st = os.fstat(fd)
                    if not stat_module.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != identity:
                        return False  # not the file this process wrote and hashed
                    if self.fsync:
                        os.fsync(held)
                finally:
                    os.close(fd)
                try:
                    os.replace(temp, name, src_dir_fd=root, dst_dir_fd=dir_fd)
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.EXDEV):
                        return False
                    raise self._error(exc, "write", key) from None
                return True
        except _Missing:  # pragma: no cover - create=True never reports a missing directory
            return False
        finally:
            self._unlink_quietly(root, temp)
            os.close(root)
            self._release(staged, unlink=False)

    def put_if_absent(self, key: str, data: bytes) -> str:
        try:
            with self._parent(key, create=True, action="write") as (dir_fd, name):
                temp, st = self._write_record(dir_fd, name, data, key)
                try:
                    os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
                except FileExistsError:
                    self._refuse_non_object(dir_fd, name, "write", key)
                    raise AlreadyExists(f"{key} already exists in shelf {self.root}") from None
                except OSError as exc:
                    raise self._error(exc, "write", key) from None
                finally:
                    self._unlink_quietly(dir_fd, temp)
                return _etag(st)
        except _Missing:  # pragma: no cover - create=True never reports a missing directory
            raise StorageError(f"cannot write {key!r} in shelf {self.root}") from None

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        try:
            with self._parent(key, create=False, action="write") as (dir_fd, name):
                return self._swap(dir_fd, name, key, data, etag)
        except _Missing:
            self._stale(key)

    def _stale(self, key: str) -> NoReturn:
        raise PreconditionFailed(f"{key} changed since it was read (shelf {self.root})")

    def _swap(self, dir_fd: int, name: str, key: str, data: bytes, etag: str) -> str:
        # Cheap early answer: an etag that is not the current value's never will be again.
        steps = self._chain(dir_fd, name, key, "write")
        if not steps or _etag(steps[-1]) != etag:
            self._stale(key)
        temp, st = self._write_record(dir_fd, name, data, key)
        new = _etag(st)
        claim = _claim_name(name, etag)
        try:
            with key_lock(dir_fd, name):
                try:
                    # The commit point: create-only, so one writer alone replaces the value `etag`.
                    os.link(
                        temp, claim, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False
                    )
                except FileExistsError:
                    self._stale(key)
                except OSError as exc:
                    raise self._error(exc, "write", key) from None
                try:
                    live = self._extends_live_chain(dir_fd, name, key, etag, new)
                except BaseException:
                    self._unlink_quietly(dir_fd, claim)  # we cannot tell: leave the value as it was
                    raise
                if not live:
                    # `etag` was not in the chain any more (the key was deleted, or its claim
                    # cleaned up long ago): nobody can reach our claim, so removing it is safe.
                    self._unlink_quietly(dir_fd, claim)
                    self._stale(key)
                # The shortcut: readers find the value at the key without following the claim.
                with contextlib.suppress(OSError):
                    os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                return new
        finally:
            self._unlink_quietly(dir_fd, temp)

    def _extends_live_chain(self, dir_fd: int, name: str, key: str, etag: str, new: str) -> bool:
        """Whether our claim (replacing ``etag`` by ``new``) is part of the key's live chain."""
        seen = {_etag(st) for st in self._chain(dir_fd, name, key, "write")}
        if etag in seen or new in seen:
            return True
        # The key's shortcut may already point past our value: then someone built on it, and that
        # claim, named after our etag, exists (nobody else can know our etag before it is live).
        try:
            os.stat(_claim_name(name, new), dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        try:
            with self._parent(key, create=False, action="delete") as (dir_fd, name):
                self._refuse_non_object(dir_fd, name, "delete", key)
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise self._error(exc, "delete", key) from None
        except _Missing:
            pass

    def touch(self, key: str) -> None:
        """Refresh a blob's modification time so ``gc``'s grace period starts again.

        For immutable objects only: it changes the etag, so it skips a key whose value was replaced
        by compare-and-swap (changing that etag would cut the key off its claims).
        """
        with (
            contextlib.suppress(OSError, StorageError, _Missing),
            self._parent(key, create=False, action="touch") as (dir_fd, name),
        ):
            found = self._open_object(dir_fd, name, key, key)
            if found is None:
                return
            fd, st = found
            try:
                successor = self._open_object(dir_fd, _claim_name(name, _etag(st)), key, key)
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
            root = self._open_root(create=False)
        except (_Missing, OSError):
            return
        try:
            for _, _, names, dir_fd in os.fwalk(".", dir_fd=root, follow_symlinks=False):
                self._cleanup_folder(dir_fd, names, temp_cutoff, claim_cutoff)
        finally:
            os.close(root)

    def _cleanup_folder(
        self, dir_fd: int, names: builtins.list[str], temp_cutoff: float, claim_cutoff: float
    ) -> None:
        claims: dict[str, builtins.list[tuple[str, str]]] = {}
        for entry in names:
            if not entry.startswith(HIDDEN_PREFIX):
                continue
            if entry.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
                    if st.st_mtime < temp_cutoff:
                        os.unlink(entry, dir_fd=dir_fd)
            elif match := _CLAIM.match(entry):
                claims.setdefault(match["name"], []).append((entry, match["etag"]))
        for name, found in claims.items():
            with contextlib.suppress(OSError, StorageError):
                steps = self._chain(dir_fd, name, name)
                live = {_etag(st) for st in steps}
                # The key's ctime is when the shortcut last moved: only long after that can no
                # stalled reader or writer still hold a step behind it.
                if steps and steps[0].st_ctime >= claim_cutoff:
                    continue
                for entry, etag in found:
                    if etag in live:
                        continue
                    st = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
                    if max(st.st_mtime, st.st_ctime) < claim_cutoff:
                        os.unlink(entry, dir_fd=dir_fd)


#: Files smaller than this are hashed only, not staged (see ``upload_staging``).
STAGE_MIN_BYTES = 1 << 20
#: At most this many staged files (open descriptors) per storage at once; more are hashed only.
STAGE_MAX_HELD = 64


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
