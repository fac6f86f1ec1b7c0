"""The local, content-addressed download cache (``MODELSHELF_CACHE``, default ``~/.cache/modelshelf``).

Layout::

    blobs/sha256/<aa>/<64 hex>     verified file contents, read-only, shared by every shelf
    snapshots/<manifest sha256>/   a version's files as hardlinks to blobs, what ``load`` reads
    records/<aa>/<key hash>        copies of stored records by (shelf, key, etag), for fast listing

A blob enters the cache only after its sha256 and size were verified while streaming, through an
atomic rename, so a reader never sees a partial or unverified blob and a corrupted download never
poisons the cache. Blobs are read-only: a hardlinked copy cannot be edited in place by accident.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs

from .errors import IntegrityError, ModelshelfError
from .records import FileEntry
from .refs import check_file_path
from .transfer import VerifyingWriter

_TEMP_PREFIX = ".~"


def default_cache_dir() -> Path:
    configured = os.environ.get("MODELSHELF_CACHE")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "modelshelf"


@attrs.frozen
class CachedBlob:
    sha256: str
    size: int
    last_used: float


class Cache:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    # --- blobs -----------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / "sha256" / sha256[:2] / sha256

    def has(self, entry: FileEntry) -> bool:
        try:
            return os.stat(self.blob_path(entry.sha256)).st_size == entry.size
        except OSError:
            return False

    def insert(self, entry: FileEntry, chunks: Iterable[bytes], what: str) -> Path:
        """Stream ``chunks`` into the cache, verifying them against ``entry``; return the blob path.

        On any failure (integrity or transport) nothing is left behind.
        """
        final = self.blob_path(entry.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(f"{_TEMP_PREFIX}{entry.sha256}.{secrets.token_hex(6)}")
        try:
            with open(temp, "xb") as handle, VerifyingWriter(handle, entry.sha256, entry.size, what) as writer:
                for chunk in chunks:
                    writer.write(chunk)
                writer.finish()
            os.chmod(temp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return final

    def touch(self, sha256: str) -> None:
        """Mark a blob as used now (for least-recently-used pruning)."""
        with contextlib.suppress(OSError):
            os.utime(self.blob_path(sha256))

    def blobs(self) -> Iterator[CachedBlob]:
        base = self.root / "blobs" / "sha256"
        if not base.is_dir():
            return
        for folder in base.iterdir():
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if path.name.startswith(_TEMP_PREFIX):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    st = path.stat()
                    yield CachedBlob(path.name, st.st_size, st.st_mtime)

    # --- materialising ---------------------------------------------------------------------

    def materialize(self, files: Iterable[FileEntry], dest: Path, *, link: bool = True) -> None:
        """Place every file (already cached) under ``dest``: a hardlink when possible, else a copy."""
        dest = dest.absolute()
        root = dest.resolve()
        checked: set[Path] = set()
        for entry in files:
            target = dest.joinpath(*check_file_path(entry.path).split("/"))
            # Defence in depth: the path was validated, and must still resolve below dest (a
            # symlinked directory inside dest must not redirect the write).
            if target.parent not in checked:
                if not _is_within(target.parent.resolve(), root):
                    raise IntegrityError(f"file path {entry.path!r} would be written outside {dest}")
                checked.add(target.parent)
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f"{_TEMP_PREFIX}{target.name}.{secrets.token_hex(6)}")
            source = self.blob_path(entry.sha256)
            try:
                if link:
                    try:
                        os.link(source, temp)
                    except OSError as exc:
                        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                            raise
                        shutil.copyfile(source, temp)
                else:
                    shutil.copyfile(source, temp)
                os.replace(temp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise

    def snapshot(self, manifest_digest: str, files: tuple[FileEntry, ...]) -> Path:
        """A directory holding a version's files, built once and shared by later loads."""
        final = self.root / "snapshots" / manifest_digest
        if final.is_dir():
            return final
        temp = final.with_name(f"{_TEMP_PREFIX}{manifest_digest}.{secrets.token_hex(6)}")
        try:
            self.materialize(files, temp)
            try:
                os.rename(temp, final)
            except OSError:
                if not final.is_dir():
                    raise
                shutil.rmtree(temp, ignore_errors=True)  # another process built it first
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return final

    # --- records ---------------------------------------------------------------------------

    def _record_path(self, storage_url: str, key: str, etag: str) -> Path:
        digest = hashlib.sha256(f"{storage_url}\0{key}\0{etag}".encode()).hexdigest()
        return self.root / "records" / digest[:2] / digest

    def get_record(self, storage_url: str, key: str, etag: str) -> bytes | None:
        try:
            return self._record_path(storage_url, key, etag).read_bytes()
        except OSError:
            return None

    def put_record(self, storage_url: str, key: str, etag: str, data: bytes) -> None:
        path = self._record_path(storage_url, key, etag)
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(f"{_TEMP_PREFIX}{path.name}.{secrets.token_hex(6)}")
            temp.write_bytes(data)
            os.replace(temp, path)

    # --- housekeeping ----------------------------------------------------------------------

    def size(self) -> int:
        return sum(blob.size for blob in self.blobs())

    def prune(self, max_size: int, *, dry_run: bool = False) -> list[CachedBlob]:
        """Evict least recently used blobs until the cache holds at most ``max_size`` bytes.

        Snapshots are dropped first (they are only hardlinks and are rebuilt on the next load), so
        that evicting a blob really frees its space.
        """
        if max_size < 0:
            raise ModelshelfError("--max-size must be zero or more bytes")
        blobs = sorted(self.blobs(), key=lambda b: b.last_used)
        total = sum(b.size for b in blobs)
        evicted: list[CachedBlob] = []
        for blob in blobs:
            if total <= max_size:
                break
            evicted.append(blob)
            total -= blob.size
        if evicted and not dry_run:
            shutil.rmtree(self.root / "snapshots", ignore_errors=True)
            for blob in evicted:
                path = self.blob_path(blob.sha256)
                with contextlib.suppress(OSError):
                    os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
                    os.unlink(path)
        return evicted

    def clear_temp(self, older_than: float = 3600.0) -> None:
        """Remove temporary files left by crashed processes."""
        now = time.time()
        for folder in (self.root / "blobs" / "sha256").glob("*"):
            for path in folder.glob(f"{_TEMP_PREFIX}*"):
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > older_than:
                        path.unlink()


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
