"""The local, content-addressed download cache (``MODELSHELF_CACHE``, default ``~/.cache/modelshelf``).

Layout::

    blobs/sha256/<aa>/<64 hex>      file contents, read-only, shared by every shelf
    snapshots/<manifest sha256>/    a version's files as hardlinks to blobs, what ``load`` reads
    private/<host>-<pid>-<random>/  private copies returned by loads that return paths
    records/<aa>/<key hash>         copies of stored records by (shelf, key, etag), for fast listing

Contract:

* A blob (a file, or a pack of small files) enters the cache only after its sha256 and size were
  verified while streaming, through an atomic rename: a reader never sees a partial blob, and a
  corrupted download never enters. A download of a blob the cache lacks writes the stream once
  into the destination's temporary file, and into the cache's when asked to keep it
  (:meth:`Cache.materialize` with ``stream``); on a mismatch no temporary file survives.
* The cache is **not trusted** after that. Bit rot, a stray write, another user of a shared cache,
  or root can change a blob in place, so every use re-hashes it: :meth:`Cache.materialize` hashes
  while it copies beside the destination (or hashes the hardlink it made) and exposes files only
  once every one of them matched; :meth:`Cache.snapshot` hashes every entry it hands out. A blob
  that fails is evicted and fetched again through the caller's ``refill`` (verified while
  streaming), once; a second failure is an :class:`~modelshelf.errors.IntegrityError`.
  :meth:`Cache.has` only says a blob of the right size is present: whether to download, never trust.
* Loads that return a path into their files get a :meth:`Cache.private_copy`, never the shared
  snapshot, whose inodes are the cache's own (see :mod:`modelshelf.cache_views`).
* :meth:`Cache.verify` re-hashes every blob and removes the ones that do not match their address.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

import attrs

from .errors import IntegrityError, ModelshelfError
from .records import Blob, FileEntry
from .refs import check_file_path
from .transfer import VerifyingWriter, run_parallel
from .verified_files import (
    Tee,
    copy_file_verified,
    copy_in_kernel_verified,
    digest_no_follow,
    is_within,
    missing_parents,
)

T = TypeVar("T")
TEMP_PREFIX = ".~"
_CHUNK = 1 << 20
_SHA256_NAME = re.compile(r"[0-9a-f]{64}")
#: Files are placed in batches (blobs, about bytes): a task per small file costs more than its copy.
_BATCH_FILES, _BATCH_BYTES = 32, 4 << 20
#: Errors from ``os.link`` after which a copy is the only way (no hardlinks on this filesystem).
_NO_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP)

#: Puts one blob into the cache again, verified while streaming from the shelf.
Refill = Callable[[FileEntry], None]
#: The stored bytes of one blob, in order (a shelf read), to be verified by the cache.
Stream = Callable[[FileEntry], Iterable[bytes]]
#: A file on this machine holding a blob's stored bytes (unverified), or ``None``.
LocalFile = Callable[[FileEntry], Path | None]
#: The bytes of a packed file from a cached pack, or ``None`` when its pack is not at hand.
Unpacked = Callable[[FileEntry], bytes | None]


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


@attrs.frozen
class CorruptBlob:
    """A cached file that :meth:`Cache.verify` found bad (removed) or could not read (kept)."""

    sha256: str
    size: int
    what: str


class _BadCachedBlob(IntegrityError):
    """The cache's copy of a blob is missing or fails verification (the shelf may still be fine)."""


class Cache:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    # --- blobs -----------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return Path(self._blob_name(sha256))

    def _blob_name(self, sha256: str) -> str:
        # Asked several times for every file of a download: string joins, not pathlib's.
        return os.path.join(self.root, "blobs", "sha256", sha256[:2], sha256)

    def has(self, entry: FileEntry | Blob) -> bool:
        """A blob of the right size is present. Whether to download; never a reason to trust it."""
        try:
            return os.stat(self._blob_name(entry.sha256)).st_size == entry.size
        except OSError:
            return False

    def insert(self, entry: FileEntry | Blob, chunks: Iterable[bytes], what: str) -> Path:
        """Stream ``chunks`` into the cache, verifying them against ``entry``; return the blob path.

        On any failure (integrity or transport) nothing is left behind.
        """
        final, temp = self._new_blob(entry.sha256)
        try:
            with (
                open(temp, "xb") as handle,
                VerifyingWriter(handle, entry.sha256, entry.size, what) as writer,
            ):
                for chunk in chunks:
                    writer.write(chunk)
                writer.finish()
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _publish_blob(temp, final)
        return final

    def insert_copy(self, entry: FileEntry | Blob, source: Path, what: str) -> bool:
        """Copy the local file ``source`` into the cache with the kernel, verified like
        :meth:`insert`; ``False``, with nothing left behind, where the kernel cannot."""
        final, temp = self._new_blob(entry.sha256)
        if not copy_in_kernel_verified(source, entry, temp, what):
            return False
        _publish_blob(temp, final)
        return True

    def _new_blob(self, sha256: str, *, create: bool = True) -> tuple[Path, Path]:
        """The blob's final path and a fresh temporary name beside it (its folder made if asked)."""
        final = self.blob_path(sha256)
        if create:
            final.parent.mkdir(parents=True, exist_ok=True)
        return final, final.with_name(f"{TEMP_PREFIX}{sha256}.{secrets.token_hex(6)}")

    def _stream_verified(
        self, entry: FileEntry, target: Path, chunks: Iterable[bytes], what: str, *, keep: bool
    ) -> None:
        """Stream ``chunks`` once into the new file ``target``, verifying them against ``entry``;
        with ``keep``, into a new cache blob too (one write of each, no second read).

        The blob is renamed into the cache only after the digest matched; ``target`` is left for
        the caller to rename. On any failure neither the blob nor ``target`` is left behind.
        """
        final, temp = self._new_blob(entry.sha256, create=keep)
        try:
            with contextlib.ExitStack() as stack:
                copy = stack.enter_context(open(target, "xb"))
                sink: BinaryIO | Tee = copy
                if keep:
                    sink = Tee(stack.enter_context(open(temp, "xb")), copy)
                writer = stack.enter_context(VerifyingWriter(sink, entry.sha256, entry.size, what))
                for chunk in chunks:
                    writer.write(chunk)
                writer.finish()
            if keep:
                _publish_blob(temp, final)
        except BaseException:
            for path in (temp, target):
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # a stream left half-read releases its connection now

    def evict(self, sha256: str) -> None:
        """Remove one blob (a snapshot still linking it is re-verified, and rebuilt, on its next use)."""
        path = self.blob_path(sha256)
        with contextlib.suppress(OSError):
            os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def check(self, entry: FileEntry) -> str | None:
        """Re-hash the cached copy of ``entry``, if any; evict it and say what was wrong when bad."""
        path = self.blob_path(entry.sha256)
        try:
            digest, size, _ = digest_no_follow(path)
        except FileNotFoundError:
            return None
        if (digest, size) == (entry.sha256, entry.size):
            return None
        self.evict(entry.sha256)
        return f"the local cache's copy ({self.root}) did not match its sha256 and was evicted"

    def touch(self, sha256: str) -> None:
        """Mark a blob as used now (for least-recently-used pruning)."""
        with contextlib.suppress(OSError):
            os.utime(self.blob_path(sha256))

    def _blob_files(self) -> Iterator[Path]:
        base = self.root / "blobs" / "sha256"
        if not base.is_dir():
            return
        for folder in base.iterdir():
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if not path.name.startswith(TEMP_PREFIX):
                    yield path

    def blobs(self) -> Iterator[CachedBlob]:
        for path in self._blob_files():
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                yield CachedBlob(path.name, st.st_size, st.st_mtime)

    def verify(self) -> list[CorruptBlob]:
        """Re-hash every cached blob; remove and return those that do not match their address.

        Files this process cannot read are returned too, but kept: they cannot be judged.
        """

        def check(path: Path) -> CorruptBlob | None:
            try:
                digest, size, _ = digest_no_follow(path)
            except FileNotFoundError:  # pruned or evicted meanwhile
                return None
            except OSError as exc:
                # Another user's file in a shared cache, say: it cannot be judged, so it stays.
                return CorruptBlob(
                    path.name, 0, f"is unreadable ({exc.strerror or exc}); left in place"
                )
            if _SHA256_NAME.fullmatch(path.name) is None or path.parent.name != path.name[:2]:
                what = "is not named after a sha256 in its folder; removed"
            elif digest != path.name:
                what = "does not match its sha256; removed"
            else:
                return None
            with contextlib.suppress(OSError):
                os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return CorruptBlob(path.name, size, what)

        found = [bad for bad in run_parallel(check, sorted(self._blob_files())) if bad is not None]
        if any(bad.what.endswith("removed") for bad in found):
            # Snapshot entries may be hardlinks of the removed inodes: drop them (rebuilt on use)
            # so that the bad bytes really leave the disk.
            shutil.rmtree(self.root / "snapshots", ignore_errors=True)
        return found

    # --- verified use ----------------------------------------------------------------------

    def _using_good_blob(
        self, entry: FileEntry, refill: Refill | None, what: str, use: Callable[[], T]
    ) -> T:
        """Run ``use()``, which verifies the cached blob it uses; if bad, evict, refill once, retry.

        Without ``refill`` (nothing to fetch from) a bad blob is evicted and reported.
        """
        for attempt in range(2):
            try:
                return use()
            except _BadCachedBlob:
                self.evict(entry.sha256)
                if refill is None:
                    raise IntegrityError(
                        f"{what}: the cached copy was damaged and has been evicted; fetch it again"
                    ) from None
                if attempt:
                    raise IntegrityError(
                        f"{what}: the cached copy changed again right after it was fetched and "
                        f"verified; is something writing into the cache {self.root}?"
                    ) from None
                refill(entry)
        raise AssertionError("unreachable")  # pragma: no cover

    def _copy_verified(self, entry: FileEntry, target: Path, what: str) -> None:
        """Copy the cached blob to the new file ``target``, hashing as it goes (one read)."""
        try:
            copy_file_verified(
                Path(self._blob_name(entry.sha256)), entry, target, f"cached copy of {what}"
            )
        except FileNotFoundError:
            raise _BadCachedBlob(f"{what}: not in the cache") from None
        except IntegrityError as exc:
            raise _BadCachedBlob(str(exc)) from None

    def _link_verified(
        self, entry: FileEntry, target: Path, what: str, verified: set[tuple[int, int]]
    ) -> None:
        """Hardlink the cached blob as ``target`` and hash what was linked, unless this call already did.

        ``verified`` holds the (device, inode) pairs already hashed by the same operation.
        """
        try:
            os.link(self.blob_path(entry.sha256), target)
        except FileNotFoundError:
            raise _BadCachedBlob(f"{what}: not in the cache") from None
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            self._copy_verified(entry, target, what)
            return
        st = os.lstat(target)
        identity = (st.st_dev, st.st_ino)
        if identity in verified:
            return
        # Hash the link itself, not the blob's path: this is exactly the inode that is handed out.
        digest, size, opened = digest_no_follow(target)
        if opened != identity or (digest, size) != (entry.sha256, entry.size):
            os.unlink(target)
            raise _BadCachedBlob(f"cached copy of {what} does not match its sha256")
        verified.add(identity)

    # --- materialising ---------------------------------------------------------------------

    def materialize(
        self,
        files: Iterable[FileEntry],
        dest: Path,
        *,
        link: bool = False,
        refill: Refill | None = None,
        what: str = "",
        stream: Stream | None = None,
        keep_streamed: bool = True,
        local: LocalFile | None = None,
        unpacked: Unpacked | None = None,
    ) -> None:
        """Place every file under ``dest``, verified: copies, or hardlinks of the blobs with ``link``.

        Every file is first written (or linked) to a temporary name beside its target and verified;
        only when all of them matched are they renamed into place, so a failure leaves ``dest``
        without any new file. A cached blob that fails is evicted and ``refill``-ed, once.

        With ``stream`` (copies only), a blob missing from the cache is fetched with
        ``stream(entry)`` and written once into its temporary file beside the target, and with
        ``keep_streamed`` into the cache as well (:meth:`_stream_verified`), instead of into the
        cache and then copied out of it. Other files with the same content are copied from it.
        Not kept, a blob for which ``local(entry)`` names a file on this machine is copied from it
        by the kernel instead, and verified by reading the copy back.
        With ``unpacked`` (copies only), a packed file missing from the cache is written from the
        bytes it returns (taken out of a cached pack), verified, and not cached on its own.
        """
        self.place(
            tuple(files),
            dest,
            link=link,
            refill=refill,
            what=what,
            verified=set(),
            stream=stream,
            keep_streamed=keep_streamed,
            local=local,
            unpacked=unpacked,
        )

    def place(
        self,
        files: tuple[FileEntry, ...],
        dest: Path,
        *,
        link: bool,
        refill: Refill | None,
        what: str,
        verified: set[tuple[int, int]],
        stream: Stream | None = None,
        keep_streamed: bool = True,
        local: LocalFile | None = None,
        unpacked: Unpacked | None = None,
    ) -> None:
        """:meth:`materialize`; ``verified``: the (device, inode) pairs this call already hashed."""
        dest = dest.absolute()
        created = missing_parents(dest)
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        checked: set[str] = set()
        staged: list[tuple[FileEntry, Path, Path]] = []
        token, base = secrets.token_hex(6), os.fspath(dest)  # a call's targets are distinct
        try:
            for entry in files:
                parts = check_file_path(entry.path).split("/")
                where = os.path.join(base, *parts[:-1])
                # Defence in depth: it must still resolve below dest (a symlinked directory).
                if where not in checked:
                    parent = Path(where)
                    if not is_within(parent.resolve(), root):
                        raise IntegrityError(
                            f"file path {entry.path!r} would be written outside {dest}"
                        )
                    created.extend(missing_parents(parent))
                    parent.mkdir(parents=True, exist_ok=True)
                    checked.add(where)
                target = Path(os.path.join(where, parts[-1]))
                temp = Path(os.path.join(where, f"{TEMP_PREFIX}{parts[-1]}.{token}"))
                staged.append((entry, temp, target))

            def stage(group: list[tuple[FileEntry, Path, Path]]) -> None:
                # One worker per blob: two workers evicting and refilling one blob would race.
                streamed: Path | None = None  # this blob, streamed (verified) beside its target
                for index, (entry, temp, _) in enumerate(group):
                    name = f"{what}/{entry.path}" if what else entry.path
                    data = None
                    if unpacked is not None and not link and entry.pack is not None:
                        data = unpacked(entry) if not self.has(entry) else None
                    if data is not None:
                        with (
                            open(temp, "xb") as handle,
                            VerifyingWriter(handle, entry.sha256, entry.size, name) as writer,
                        ):
                            writer.write(data)
                            writer.finish()
                        continue
                    if stream is not None and not link and index == 0 and not self.has(entry):
                        # Not cached: one stream writes this file (and the cache, if kept); a
                        # shelf file on this machine is copied by the kernel when not kept.
                        source = local(entry) if local is not None and not keep_streamed else None
                        if source is None or not copy_in_kernel_verified(source, entry, temp, name):
                            self._stream_verified(
                                entry, temp, stream(entry), name, keep=keep_streamed
                            )
                        streamed = temp
                        continue
                    if streamed is not None and not keep_streamed:
                        if not copy_in_kernel_verified(streamed, entry, temp, name):
                            copy_file_verified(streamed, entry, temp, name)
                        continue

                    def use(entry: FileEntry = entry, temp: Path = temp, name: str = name) -> None:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(temp)  # left by a failed first attempt
                        if link:
                            self._link_verified(entry, temp, name, verified)
                        else:
                            self._copy_verified(entry, temp, name)

                    self._using_good_blob(entry, refill, name, use)

            groups: dict[str, list[tuple[FileEntry, Path, Path]]] = {}
            for item in staged:
                groups.setdefault(item[0].sha256, []).append(item)
            batches: list[list[list[tuple[FileEntry, Path, Path]]]] = [[]]
            batched = 0
            for group in groups.values():
                if batched >= _BATCH_BYTES or len(batches[-1]) >= _BATCH_FILES:
                    batches.append([])
                    batched = 0
                batches[-1].append(group)
                batched += group[0][0].size

            def stage_all(batch: list[list[tuple[FileEntry, Path, Path]]]) -> None:
                for group in batch:
                    stage(group)

            run_parallel(stage_all, batches)
            for _, temp, target in staged:
                os.replace(temp, target)
        except BaseException:
            for _, temp, _ in staged:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            for folder in reversed(created):  # only the (now empty) directories this call made
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise

    def snapshot(
        self,
        manifest_digest: str,
        files: Iterable[FileEntry],
        *,
        refill: Refill | None = None,
        what: str = "",
    ) -> Path:
        """A directory holding a version's files as hardlinks of their blobs, verified by this call.

        An existing snapshot is used only when it holds exactly the version's files, each the same
        inode as its blob and hashed by this call; otherwise it is rebuilt (and a bad blob evicted
        and refilled, once). The directory is shared and read-only: callers read it, never return it.
        """
        from .cache_views import snapshot

        return snapshot(self, manifest_digest, tuple(files), refill=refill, what=what)

    def private_copy(
        self, files: Iterable[FileEntry], *, refill: Refill | None = None, what: str = ""
    ) -> Path:
        """A directory of verified copies of ``files`` that belongs to this process alone.

        Asking again for the same files returns the same directory while it still holds exactly
        their bytes (re-hashed on every call); once it was edited, a fresh copy is made and the
        edited one is left to whoever edited it. Removed when this process exits
        (:mod:`modelshelf.cache_views`).
        """
        from .cache_views import private_copy

        return private_copy(self, tuple(files), refill=refill, what=what)

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
            temp = path.with_name(f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(6)}")
            temp.write_bytes(data)
            os.replace(temp, path)

    # --- housekeeping ----------------------------------------------------------------------

    def size(self) -> int:
        return sum(blob.size for blob in self.blobs())

    def prune(self, max_size: int, *, dry_run: bool = False) -> list[CachedBlob]:
        """Evict least recently used blobs until the cache holds at most ``max_size`` bytes.

        Snapshots are dropped first (they are only hardlinks and are rebuilt on the next load), so
        that evicting a blob really frees its space. Private copies of live processes are kept.
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
                self.evict(blob.sha256)
        return evicted

    def clear_temp(self, older_than: float = 3600.0) -> None:
        """Remove temporary files and private copies left by crashed processes."""
        now = time.time()
        for folder in (self.root / "blobs" / "sha256").glob("*"):
            for path in folder.glob(f"{TEMP_PREFIX}*"):
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > older_than:
                        path.unlink()
        from .cache_views import sweep_dead_private_copies

        sweep_dead_private_copies(self.root / "private")


def _publish_blob(temp: Path, final: Path) -> None:
    """Make a verified temporary blob read-only and rename it into place; on failure remove it."""
    try:
        os.chmod(temp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(temp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
