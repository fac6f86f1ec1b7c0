"""The built-in filesystem backend: ``file:///srv/models`` or a plain path.

Atomicity comes from the filesystem itself:

* every write goes to a temporary file in the target directory first, so no partially written file
  is ever visible under its final name;
* create-only is ``os.link(temp, final)``, which fails if ``final`` exists (atomic, also on NFS);
* compare-and-swap holds an ``fcntl`` lock on a per-key lock file while it checks the etag and
  ``os.replace``-s the temporary file over the key. The kernel drops the lock when a process dies,
  so a crashed writer never leaves a stale lock behind.

The etag is ``<inode>-<mtime_ns>-<size>``: ``os.replace`` always brings a new inode, so two
writes within one clock tick still get different etags.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import (
    AlreadyExists,
    KeyNotFound,
    PreconditionFailed,
    ReadOnlyShelf,
    StorageError,
)
from ..plugins import hookimpl
from ..storage import CHUNK_SIZE, ObjectInfo, Storage, StoredBytes, check_key

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: Temporary and lock files start with this; listings skip them and names can never start with it.
HIDDEN_PREFIX = ".~"


def _etag(st: os.stat_result) -> str:
    return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"


def _temp_name(final: Path) -> Path:
    return final.with_name(f"{HIDDEN_PREFIX}{final.name}.{secrets.token_hex(6)}.tmp")


def path_from_url(url: str) -> Path:
    """``file:///a/b`` or a plain path -> an absolute local path (``~`` expanded)."""
    if url.startswith("file:"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise StorageError(f"file URLs must be local (file:///path), got {url!r}")
        return Path(unquote(parsed.path)).expanduser().absolute()
    return Path(url).expanduser().absolute()


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

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _error(self, exc: OSError, action: str, key: str) -> StorageError:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return ReadOnlyShelf(
                f"cannot {action} {key!r}: shelf {self.root} is read-only for this user "
                f"({exc.strerror}); check the directory permissions"
            )
        if exc.errno == errno.ENOSPC:
            return StorageError(f"cannot {action} {key!r}: no space left on the device of {self.root}")
        return StorageError(f"cannot {action} {key!r} in shelf {self.root}: {exc.strerror or exc}")

    # --- reads -----------------------------------------------------------------------------

    def read(self, key: str) -> StoredBytes:
        path = self._path(key)
        try:
            with open(path, "rb") as handle:
                st = os.fstat(handle.fileno())
                return StoredBytes(handle.read(), _etag(st))
        except FileNotFoundError:
            raise KeyNotFound(f"{key} not found in shelf {self.root}") from None
        except IsADirectoryError:
            raise KeyNotFound(f"{key} not found in shelf {self.root}") from None
        except OSError as exc:
            raise self._error(exc, "read", key) from None

    def read_stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        path = self._path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed in the generator's finally
        except (FileNotFoundError, IsADirectoryError):
            raise KeyNotFound(f"{key} not found in shelf {self.root}") from None
        except OSError as exc:
            raise self._error(exc, "read", key) from None
        return self._chunks(handle, chunk_size)

    @staticmethod
    def _chunks(handle: object, chunk_size: int) -> Iterator[bytes]:
        with handle:  # type: ignore[attr-defined]
            while chunk := handle.read(chunk_size):  # type: ignore[attr-defined]
                yield chunk

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._error(exc, "stat", key) from None
        return self._info(key, st)

    @staticmethod
    def _info(key: str, st: os.stat_result) -> ObjectInfo:
        modified = dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)
        return ObjectInfo(key, st.st_size, _etag(st), modified)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # Walk only the directory the prefix names, then filter on the rest of the prefix.
        directory, _, start = prefix.rpartition("/")
        base = self.root.joinpath(*directory.split("/")) if directory else self.root
        stack = [(base, f"{directory}/" if directory else "")]
        while stack:
            folder, key_prefix = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise self._error(exc, "list", prefix) from None
            for entry in entries:
                if entry.name.startswith(HIDDEN_PREFIX):
                    continue
                key = key_prefix + entry.name
                if folder == base and not entry.name.startswith(start):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), key + "/"))
                elif entry.is_file(follow_symlinks=False):
                    try:
                        yield self._info(key, entry.stat(follow_symlinks=False))
                    except FileNotFoundError:  # deleted while we listed
                        continue

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        folder = self.root.joinpath(*prefix.rstrip("/").split("/")) if prefix.strip("/") else self.root
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise self._error(exc, "list", prefix) from None
        for entry in entries:
            if not entry.name.startswith(HIDDEN_PREFIX) and entry.is_dir(follow_symlinks=False):
                yield f"{prefix}{entry.name}/"

    # --- writes ----------------------------------------------------------------------------

    def _write_temp(self, final: Path, source: Path | bytes, key: str) -> Path:
        """Write ``source`` to a temporary file beside ``final`` and return its path."""
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            temp = _temp_name(final)
            if isinstance(source, bytes):
                with open(temp, "xb") as out:
                    out.write(source)
                    if self.fsync:
                        os.fsync(out.fileno())
            else:
                # copyfile uses the kernel's copy_file_range/sendfile: as fast as `cp`.
                shutil.copyfile(source, temp)
                if self.fsync:
                    fd = os.open(temp, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            return temp
        except OSError as exc:
            with contextlib.suppress(UnboundLocalError, OSError):
                os.unlink(temp)
            raise self._error(exc, "write", key) from None

    def put_file(self, key: str, path: Path) -> None:
        final = self._path(key)
        temp = self._write_temp(final, Path(path), key)
        try:
            os.replace(temp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise self._error(exc, "write", key) from None

    def put_if_absent(self, key: str, data: bytes) -> str:
        final = self._path(key)
        temp = self._write_temp(final, data, key)
        try:
            os.link(temp, final)
        except FileExistsError:
            raise AlreadyExists(f"{key} already exists in shelf {self.root}") from None
        except OSError as exc:
            raise self._error(exc, "write", key) from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        return _etag(os.stat(final))

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        final = self._path(key)
        temp = self._write_temp(final, data, key)
        try:
            with self._locked(final, key):
                try:
                    current = _etag(os.stat(final))
                except FileNotFoundError:
                    current = None
                if current != etag:
                    raise PreconditionFailed(f"{key} changed since it was read (shelf {self.root})")
                os.replace(temp, final)
                return _etag(os.stat(final))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)

    @contextlib.contextmanager
    def _locked(self, final: Path, key: str) -> Iterator[None]:
        lock_path = final.with_name(f"{HIDDEN_PREFIX}{final.name}.lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._error(exc, "lock", key) from None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error(exc, "delete", key) from None

    def touch(self, key: str) -> None:
        """Refresh a blob's modification time so ``gc``'s grace period starts again."""
        with contextlib.suppress(OSError):
            os.utime(self._path(key))

    def cleanup(self, older_than: dt.timedelta) -> None:
        """Remove temporary files that crashed writers left behind (never lock files)."""
        cutoff = dt.datetime.now(dt.UTC).timestamp() - older_than.total_seconds()
        for folder, _, names in os.walk(self.root):
            for name in names:
                if name.startswith(HIDDEN_PREFIX) and name.endswith(".tmp"):
                    path = os.path.join(folder, name)
                    with contextlib.suppress(OSError):
                        if os.stat(path).st_mtime < cutoff:
                            os.unlink(path)


def open_filesystem(url: str, **options: object) -> FileSystemStorage:
    return FileSystemStorage(url, **options)  # type: ignore[arg-type]


@hookimpl
def modelshelf_register_storage(register):  # type: ignore[no-untyped-def]
    register("file", open_filesystem)
