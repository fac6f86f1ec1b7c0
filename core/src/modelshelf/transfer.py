"""Hashing, parallel transfer and progress reporting."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import queue
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

from .errors import ChangedWhileUploading, IntegrityError

T = TypeVar("T")
R = TypeVar("R")

#: Show a progress bar only for transfers at least this large (and only on a terminal).
PROGRESS_MIN_BYTES = 8 << 20


def workers() -> int:
    """Parallel transfers per operation (``MODELSHELF_WORKERS``, default 8)."""
    try:
        return max(1, int(os.environ.get("MODELSHELF_WORKERS", "8")))
    except ValueError:
        return 8


#: ``stage(path) -> (sha256, size)``: hashes ``path`` while copying it where the shelf will want it.
Stager = Callable[[Path], tuple[str, int]]
_STAGER: contextvars.ContextVar[Stager | None] = contextvars.ContextVar(
    "modelshelf_stager", default=None
)


@contextlib.contextmanager
def hashing_with(stager: Stager | None) -> Iterator[None]:
    """Within the block, :func:`hash_file` (in this thread and in :func:`run_parallel` workers it
    starts) hashes through ``stager``: a local shelf copies each file into place while it hashes
    it, so an upload reads every byte once instead of twice. ``None`` changes nothing."""
    token = _STAGER.set(stager)
    try:
        yield
    finally:
        _STAGER.reset(token)


@contextlib.contextmanager
def staged_hashing(storage: object) -> Iterator[None]:
    """:func:`hashing_with` the storage's ``upload_staging()`` when it has one (local shelves:
    files are copied in while hashed, and publishing renames them); otherwise nothing changes."""
    staging = getattr(storage, "upload_staging", None)
    if staging is None:
        yield
        return
    with staging() as stage, hashing_with(stage):
        yield


def hash_file(path: Path) -> tuple[str, int]:
    """Return the sha256 hex digest and size of a file (hashlib releases the GIL while hashing)."""
    stager = _STAGER.get()
    if stager is not None:
        return stager(Path(path))
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
        return digest.hexdigest(), handle.tell()


class _Hasher:
    """sha256 of chunks fed from one thread and hashed on another (hashlib releases the GIL), so
    that reading, writing and hashing overlap; a bounded queue keeps memory constant."""

    _QUEUE_CHUNKS = 8

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=self._QUEUE_CHUNKS)
        self._thread = threading.Thread(target=self._run, name="modelshelf-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self.digest.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        self.close()
        return self.digest.hexdigest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def copy_hashing(
    source: Path,
    write: Callable[[bytes], Any],
    *,
    limit: int | None = None,
    chunk_size: int = 4 << 20,
    written: Callable[[int], None] | None = None,
) -> tuple[str, int]:
    """Copy ``source`` through ``write`` reading it once, hashing on a helper thread; return the
    sha256 and size of exactly the bytes written. Stops after ``limit + 1`` bytes when a limit is
    given (the caller then knows the file grew). ``written(total)`` is called after each chunk."""
    hasher = _Hasher()
    copied = 0
    try:
        with open(source, "rb", buffering=0) as reader:
            while chunk := reader.read(chunk_size):
                hasher.update(chunk)
                write(chunk)
                copied += len(chunk)
                if written is not None:
                    written(copied)
                if limit is not None and copied > limit:
                    break
        return hasher.hexdigest(), copied
    finally:
        hasher.close()


def copy_verified(
    source: Path, handle: Any, sha256: str, size: int, chunk_size: int = 4 << 20
) -> None:
    """Copy ``source`` into the open binary ``handle``, hashing the bytes as they are copied.

    Raises :class:`ChangedWhileUploading` unless exactly ``size`` bytes with digest ``sha256`` were
    copied: what was hashed earlier is then not what would be stored.
    """
    digest, copied = copy_hashing(Path(source), handle.write, limit=size, chunk_size=chunk_size)
    if copied != size or digest != sha256:
        raise changed_while_uploading(source)


def changed_while_uploading(source: Path) -> ChangedWhileUploading:
    return ChangedWhileUploading(
        f"{source} changed while it was being uploaded (it no longer matches the sha256 and size "
        "computed when the upload started): nothing was published; upload it again once the "
        "file is complete"
    )


@contextlib.contextmanager
def stable_copy(source: Path, sha256: str, size: int) -> Iterator[Path]:
    """A private temporary copy of ``source``, checked against ``sha256`` and ``size`` while copied
    (by the kernel where it can, the copy hashed as it grows; else in user space)."""
    from .kernel_copy import copy_hashing_in_kernel

    fd, name = tempfile.mkstemp(prefix="modelshelf-blob-")  # open for reading and writing
    try:
        with os.fdopen(fd, "wb") as handle:
            with open(source, "rb", buffering=0) as reader:
                done = copy_hashing_in_kernel(reader.fileno(), handle.fileno())
            if done is None:
                copy_verified(source, handle, sha256, size)
            elif done != (sha256, size):
                raise changed_while_uploading(source)
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


class VerifyingWriter:
    """Writes chunks to a file while checking them against an expected sha256 and size.

    Hashing runs on a helper thread fed through a bounded queue (hashlib releases the GIL), so a
    download costs about max(transfer, hash) rather than their sum. Use it as a context manager:
    leaving the block always stops the helper thread.
    """

    _QUEUE_CHUNKS = 8

    def __init__(self, handle: Any, sha256: str, size: int, what: str) -> None:
        self.handle = handle
        self.expected_sha256 = sha256
        self.expected_size = size
        self.what = what
        self.digest = hashlib.sha256()
        self.written = 0
        # Started by the second chunk: a file written in one chunk (most small files) is hashed
        # inline, without the cost of a thread and its queue.
        self._queue: queue.Queue[bytes | None] | None = None
        self._hasher: threading.Thread | None = None

    def _hash_chunks(self, chunks: queue.Queue[bytes | None]) -> None:
        while (chunk := chunks.get()) is not None:
            self.digest.update(chunk)

    def __enter__(self) -> VerifyingWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._queue is not None and self._hasher is not None and self._hasher.is_alive():
            self._queue.put(None)
            self._hasher.join()

    def write(self, chunk: bytes) -> None:
        first = self.written == 0
        self.written += len(chunk)
        if self.written > self.expected_size:
            raise IntegrityError(
                f"{self.what} is larger than its recorded size ({self.expected_size} bytes): the "
                "stored copy is corrupted; run `modelshelf verify` to see every damaged version"
            )
        if first:
            self.digest.update(chunk)
        else:
            if self._queue is None:
                self._queue = queue.Queue(maxsize=self._QUEUE_CHUNKS)
                self._hasher = threading.Thread(
                    target=self._hash_chunks,
                    args=(self._queue,),
                    name="modelshelf-verify",
                    daemon=True,
                )
                self._hasher.start()
            self._queue.put(chunk)
        self.handle.write(chunk)

    def finish(self) -> None:
        self._stop()
        check_digest(
            self.what,
            (self.digest.hexdigest(), self.written),
            self.expected_sha256,
            self.expected_size,
        )


def check_digest(what: str, found: tuple[str, int], sha256: str, size: int) -> None:
    """Raise :class:`IntegrityError` unless ``found`` (sha256, size) is the recorded ``sha256`` and ``size``."""
    digest, written = found
    if written != size:
        raise IntegrityError(
            f"{what} has {written} bytes, its manifest records {size}: "
            "the stored copy is truncated or corrupted; run `modelshelf verify`"
        )
    if digest != sha256:
        raise IntegrityError(
            f"{what} does not match its recorded sha256 {sha256[:12]}...: "
            "the stored copy is corrupted; run `modelshelf verify`"
        )


def run_parallel(
    function: Callable[[T], R], items: Iterable[T], *, max_workers: int | None = None
) -> list[R]:
    """Apply ``function`` to every item on a thread pool, in order; the first error cancels the rest."""
    items = list(items)
    count = min(max_workers or workers(), len(items))
    if count <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="modelshelf") as pool:
        # Each item runs in a copy of the caller's context (see hashing_with).
        futures: list[Future[R]] = [
            pool.submit(contextvars.copy_context().run, function, item) for item in items
        ]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        return [future.result() for future in futures]


class Progress:
    """A thread-safe byte counter shown as a tqdm bar on stderr when it is worth showing."""

    def __init__(self, total: int, description: str, enabled: bool | None = None) -> None:
        if enabled is None:
            enabled = total >= PROGRESS_MIN_BYTES and sys.stderr.isatty()
        self._lock = threading.Lock()
        self._bar = None
        if enabled:
            from tqdm import tqdm  # imported only when a bar is shown

            self._bar = tqdm(
                total=total,
                desc=description,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                leave=False,
            )

    def update(self, count: int) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def counted(chunks: Iterable[bytes], progress: Progress) -> Iterator[bytes]:
    for chunk in chunks:
        progress.update(len(chunk))
        yield chunk
