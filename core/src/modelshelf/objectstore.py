"""The storage algorithms every object store shares, written once; backends supply primitives.

:class:`ObjectStoreStorage` implements the whole :class:`~modelshelf.storage.Storage` interface on
top of a handful of small primitives, the way fsspec's ``AbstractBufferedFile`` builds files on
``_fetch_range``. A backend (S3, Azure Blob, GCS...) implements only SDK calls:

=====================================================  =========================================
primitive                                              contract
=====================================================  =========================================
``_get(name) -> StoredBytes``                          the whole object and its etag
``_open_read(name, start, pin, chunk) -> ObjectRead``  the object from byte ``start`` on; with a
                                                       ``pin`` (the first answer), that version
                                                       only, else :class:`Replaced`
``_head(name) -> ObjectInfo``                          size, etag and time (``key`` = ``name``)
``_list_page(prefix, token, delimited) -> ListPage``   one page of a listing, full names
``_put(name, data, if_none_match, if_match)``          one single-request write; its new etag, or
                                                       ``None`` when the answer lacked it; a
                                                       refused condition raises :class:`Refused`
``_upload_file(name, path)``                           a streamed (multipart...) upload
``_read_range(name, start, end, pin) -> bytes``        optional: exactly bytes ``start`` to ``end``
                                                       (exclusive) of the version ``pin`` names,
                                                       else :class:`Replaced`; large objects are
                                                       then read in parallel ranges
``_delete(name)``                                      delete; a missing object may raise or not
``_map_error(exc, action, key, write)``                the modelshelf error for an SDK exception
                                                       (or a signal below), or ``None``
``_is_malformed(exc)``                                 the SDK's way of failing on a cut answer
``_bucket_exists()`` / ``_touch(name)``                optional
=====================================================  =========================================

Primitives work on full object names (the shelf root prefix included) and raise the SDK's own
exceptions, or these signals: :class:`MalformedAnswer` (an answer that parsed but lacks what every
whole answer carries: it was cut, ask again), :class:`TryAgain` (a write attempt that may be
repeated), :class:`Refused` (a condition failed), :class:`Replaced` (a pinned read found another
version). Every primitive call goes through :meth:`ObjectStoreStorage._call`: the one retry loop
(:func:`modelshelf.retry.retrying`) and the one error-mapping entry point
(:meth:`ObjectStoreStorage._error`), which drops the SDK exception's chain so that no request
detail (a signed URL, a token) reaches a traceback.

Backends import every name they need from here. Behind it, each concern has its module: the
signals and records in :mod:`modelshelf.object_answers`, streamed reads (resumed after a break,
or in parallel pinned ranges) in :mod:`modelshelf.object_reads`, option checks in
:mod:`modelshelf.backend_options`.
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import attrs

from . import object_reads
from .backend_options import check_options, option_value, without_userinfo
from .errors import (
    AlreadyExists,
    BackendUnavailable,
    KeyNotFound,
    ModelshelfError,
    PreconditionFailed,
    ReadOnlyShelf,
    StorageError,
)
from .object_answers import (
    Garbled,
    ListPage,
    MalformedAnswer,
    ObjectRead,
    Refused,
    Replaced,
    TryAgain,
    Unconfirmed,
)
from .retry import Backoff, retrying
from .storage import CHUNK_SIZE, ObjectInfo, Storage, StoredBytes, check_key

T = TypeVar("T")

__all__ = [
    "ListPage",
    "MalformedAnswer",
    "ObjectRead",
    "ObjectStoreStorage",
    "Refused",
    "Replaced",
    "TryAgain",
    "check_options",
    "option_value",
    "without_userinfo",
]

# --- the algorithms ----------------------------------------------------------------------------


class ObjectStoreStorage(Storage):
    """A :class:`~modelshelf.storage.Storage` on an object store, from a backend's primitives.

    Subclasses set :attr:`url`, :attr:`root`, :attr:`endpoint` and :attr:`service`, and
    implement the primitives listed in this module's docstring.
    """

    #: Object-name prefix of every key: ``""`` or ending with ``/``.
    root: str = ""
    #: Where requests go (an endpoint or account URL without credentials), for messages.
    endpoint: str = ""
    #: The service's name in messages ("S3", "the Azure Blob service"...).
    service: str = "the storage service"
    #: Set when the shelf cannot be written (e.g. anonymous access): every write is refused
    #: before any request, with this reason.
    read_only_reason: str | None = None
    #: Tries and pauses for a malformed answer (and for resuming a read).
    answer_retry = Backoff(attempts=4, first=0.05, cap=1.0)
    #: Tries and pauses for a write attempt that may be repeated (see :class:`TryAgain`).
    write_retry = Backoff(attempts=6, first=0.05, cap=1.0)
    #: Blobs up to this size are read into memory, verified, and sent in one request.
    small_blob_limit = 8 << 20
    #: Objects at least this large are read in parallel ranges when the backend implements
    #: :meth:`_read_range` and ``MODELSHELF_RANGE_WORKERS`` (default 4) is above 1.
    parallel_read_min = 64 << 20
    #: The size of one ranged read; at most ``workers + 1`` ranges are held in memory at once.
    range_size = 8 << 20
    #: Whether the bucket (container) is known to exist: until then a 404 on an object may mean
    #: either, and is told apart once by :meth:`_bucket_exists`.
    _bucket_known: bool = False

    # --- names -------------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        return self.root + check_key(key)

    def _full_prefix(self, prefix: str) -> str:
        """A listing prefix: ``""`` (everything) or a key, possibly ending with ``/``."""
        if prefix:
            check_key(prefix[:-1] if prefix.endswith("/") and prefix != "/" else prefix)
        return self.root + prefix

    # --- the one retry loop and the one error entry point ------------------------------------

    def _call(
        self,
        call: Callable[[], T],
        action: str,
        key: str,
        *,
        write: bool = False,
        backoff: Backoff | None = None,
        on_retry: Callable[[Exception], None] | None = None,
    ) -> T:
        """Return ``call()`` (primitives only), retrying malformed answers and :class:`TryAgain`.

        ``call`` must be safe to repeat. :class:`Refused` and modelshelf errors pass through;
        everything else leaves as the modelshelf error :meth:`_error` maps it to.
        """
        backoff = backoff or self.answer_retry

        def retryable(exc: Exception, attempt: int) -> bool:
            if isinstance(exc, TryAgain):
                return exc.attempts is None or attempt < exc.attempts
            return not isinstance(exc, ModelshelfError) and self._is_malformed(exc)

        try:
            return retrying(call, backoff, retryable, on_retry)
        except (Refused, ModelshelfError):
            raise
        except Exception as exc:
            failure: BaseException = exc
            if self._is_malformed(exc) and not isinstance(exc, TryAgain):
                failure = Garbled(exc, backoff.attempts)
            elif isinstance(exc, TryAgain) and exc.cause is not None:
                failure = exc.cause
            raise self._error(failure, action, key, write=write) from None

    def _error(
        self, exc: BaseException, action: str, key: str, *, write: bool = False
    ) -> BaseException:
        """The modelshelf error for ``exc``, raised while doing ``action`` on ``key``.

        The backend's :meth:`_map_error` has the first word; core words what it leaves. An
        exception neither knows (a bug, an interrupt) comes back unchanged. A
        :class:`~modelshelf.errors.KeyNotFound` is first told apart from a missing bucket.
        """
        if isinstance(exc, ModelshelfError):
            return exc
        mapped = self._map_error(exc, action, key, write) or self._core_error(exc, key, write)
        if mapped is None:
            return exc
        if isinstance(mapped, KeyNotFound) and not self._bucket_known:
            try:
                exists = self._bucket_exists()
            except Exception as again:
                return self._error(again, "check the bucket of", "")
            if not exists:
                return self._no_bucket_error()
            self._bucket_known = True
        return mapped

    def _core_error(self, exc: BaseException, key: str, write: bool) -> ModelshelfError | None:
        """Core's wording for the signals (backends may word them in :meth:`_map_error`)."""
        where = f"{key!r} on shelf {self.url}" if key else f"shelf {self.url}"
        if isinstance(exc, Garbled):
            return BackendUnavailable(
                f"{self.service} at {self.endpoint} kept failing to answer about {where}: "
                f"{exc.attempts} incomplete answers in a row (last: {exc}); a malformed or "
                "truncated answer means the connection is being cut: check the network "
                "(proxies, load balancers) and try again"
            )
        if isinstance(exc, Refused):
            if exc.create_only:
                return AlreadyExists(f"{key} already exists in shelf {self.url}")
            return PreconditionFailed(f"{key} changed since it was read (shelf {self.url})")
        if isinstance(exc, Replaced):
            return BackendUnavailable(
                f"{where} was replaced or deleted while being read; try again"
            )
        if isinstance(exc, Unconfirmed):
            why = f" (reading it back: {exc})" if str(exc) else ": check the network and try again"
            return BackendUnavailable(
                f"{self.service} at {self.endpoint} was sent {where} but its answer was lost and "
                f"the write could not be confirmed{why}"
            )
        if isinstance(exc, OSError) and write:
            return StorageError(f"cannot upload {where}: {exc}")  # the local file, named by path
        return None

    def _no_bucket_error(self) -> StorageError:
        return StorageError(f"the bucket of shelf {self.url} does not exist: create it")

    def _refuse_if_read_only(self, action: str, key: str) -> None:
        if self.read_only_reason is not None:
            raise ReadOnlyShelf(
                f"cannot {action} {key!r}: shelf {self.url} {self.read_only_reason}"
            )

    # --- reads -------------------------------------------------------------------------------

    def read(self, key: str) -> StoredBytes:
        name = self._name(key)
        return self._call(lambda: self._get(name), "read", key)

    def read_stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The object in pieces of at most ``chunk_size`` bytes, in constant memory.

        The first request is made by this call, so a missing key raises here. A read that breaks
        off (an error, a malformed answer, or a body that ends short) resumes at the first missing
        byte, pinned to the first answer's etag: a replaced object raises instead of mixing two
        versions. :attr:`answer_retry` bounds the breaks over the whole read.
        """
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        name = self._name(key)
        first = self._call(lambda: self._open_read(name, 0, None, chunk_size), "read", key)
        workers = object_reads.range_workers()
        if workers > 1 and first.size >= self.parallel_read_min and self._has_ranges():
            return object_reads.in_ranges(self, key, name, first, chunk_size, workers)
        return object_reads.resumed(self, key, name, first, chunk_size)

    def read_range(self, key: str, offset: int, size: int) -> bytes:
        """``size`` bytes from ``offset`` in one ranged request (fewer when the object ends first),
        pinned to the etag :meth:`stat` reports; a short or cut answer is asked again. Backends
        without ranged reads stream from the start."""
        if not self._has_ranges():
            return super().read_range(key, offset, size)
        info = self.stat(key)
        if info is None:
            raise KeyNotFound(f"no object {key} (shelf {self.url})")
        end = min(offset + max(size, 0), info.size)
        if offset >= end:
            return b""
        name = self._name(key)
        pin = ObjectRead(size=info.size, etag=info.etag, chunks=iter(()))

        def read() -> bytes:
            data = self._read_range(name, offset, end, pin)
            if len(data) != end - offset:
                raise MalformedAnswer(f"got {len(data)} of {end - offset} bytes of a range")
            return data

        return self._call(read, "read", key)

    def _has_ranges(self) -> bool:
        return type(self)._read_range is not ObjectStoreStorage._read_range

    def stat(self, key: str) -> ObjectInfo | None:
        name = self._name(key)
        try:
            info = self._call(lambda: self._head(name), "stat", key)
        except KeyNotFound:
            return None
        return attrs.evolve(info, key=key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object below ``prefix``, page after page, each page asked again when cut."""
        cut = len(self.root)
        for page in self._pages(prefix, delimited=False):
            for info in page.objects:
                if not info.key.endswith("/"):  # a "directory" marker some tools create
                    yield attrs.evolve(info, key=info.key[cut:])

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        cut = len(self.root)
        seen: set[str] = set()
        for page in self._pages(prefix, delimited=True):
            for found in page.prefixes:
                if found not in seen:
                    seen.add(found)
                    yield found[cut:]

    def _pages(self, prefix: str, *, delimited: bool) -> Iterator[ListPage]:
        """Listing pages fetched one at a time from the last token, so that a cut page is asked
        for again rather than taken for the end of the listing."""
        full = self._full_prefix(prefix)
        token: str | None = None
        while True:
            page = self._call(
                functools.partial(self._list_page, full, token, delimited), "list", prefix
            )
            yield page
            if not page.token:
                return
            token = page.token

    # --- writes ------------------------------------------------------------------------------

    def put_file(self, key: str, path: Path) -> None:
        """A streamed upload; repeated when its answer is malformed (blobs are immutable)."""
        self._refuse_if_read_only("write", key)
        name = self._name(key)
        self._call(lambda: self._upload_file(name, Path(path)), "write", key, write=True)

    def put_blob(self, key: str, path: Path, sha256: str, size: int) -> None:
        """Up to :attr:`small_blob_limit`: read ``path`` once into memory while hashing it, and
        send exactly the verified bytes in one request. Larger: the verified default of
        :meth:`Storage.put_blob <modelshelf.storage.Storage.put_blob>`."""
        if size > self.small_blob_limit:
            super().put_blob(key, path, sha256, size)
            return
        from .transfer import copy_verified  # keeps this module free of threads and hashing

        self._refuse_if_read_only("write", key)
        name = self._name(key)
        buffer = io.BytesIO()
        copy_verified(Path(path), buffer, sha256, size)
        data = buffer.getvalue()
        self._call(
            lambda: self._put(name, data, if_none_match=False, if_match=None),
            "write",
            key,
            write=True,
            backoff=self.write_retry,
        )

    def put_if_absent(self, key: str, data: bytes) -> str:
        return self._put_conditionally("create", key, bytes(data), None)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        return self._put_conditionally("replace", key, bytes(data), etag)

    def _put_conditionally(self, action: str, key: str, data: bytes, etag: str | None) -> str:
        """One atomic conditional write, exactly once even when an answer is lost.

        A write whose answer was lost may have landed: its repetition is then refused by our own
        write. So a refusal that follows an uncertain attempt, and a success whose answer lacked
        the new etag, are settled by reading the object back: if it holds exactly our bytes
        (records carry a time and a writer, so another writer's differ), the write was ours.
        When that cannot be told, BackendUnavailable says so: never a guessed etag, and never a
        conflict that did not happen.
        """
        self._refuse_if_read_only(action, key)
        name = self._name(key)
        create_only = etag is None
        if etag is not None and not etag:
            raise self._error(Refused(create_only=False), action, key, write=True)
        uncertain = False

        def note(exc: Exception) -> None:
            nonlocal uncertain
            uncertain = uncertain or not (isinstance(exc, TryAgain) and not exc.maybe_applied)

        try:
            written = self._call(
                lambda: self._put(name, data, if_none_match=create_only, if_match=etag),
                action,
                key,
                write=True,
                backoff=self.write_retry,
                on_retry=note,
            )
        except Refused as refusal:
            if uncertain or refusal.retried:
                mine = self._etag_if_holds(name, key, data)
                if mine is not None:
                    return mine
            raise self._error(refusal, action, key, write=True) from None
        if written:
            return written
        mine = self._etag_if_holds(name, key, data)
        if mine is None:
            raise self._error(Unconfirmed(), action, key, write=True)
        return mine

    def _etag_if_holds(self, name: str, key: str, data: bytes) -> str | None:
        """The etag of ``name`` if it now holds exactly ``data``; ``None`` if it holds other bytes
        or nothing; BackendUnavailable if it cannot be read."""
        try:
            current = self._call(lambda: self._get(name), "check", key)
        except KeyNotFound:
            return None
        except StorageError as exc:
            raise self._error(Unconfirmed(str(exc)), "check", key, write=True) from None
        return current.etag if current.data == data else None

    def delete(self, key: str) -> None:
        """Delete; a missing key is fine (a missing bucket is not)."""
        self._refuse_if_read_only("delete", key)
        name = self._name(key)
        with contextlib.suppress(KeyNotFound):
            self._call(lambda: self._delete(name), "delete", key, write=True)

    def touch(self, key: str) -> None:
        """Restart ``gc``'s grace period for ``key`` (see :meth:`_touch`); a vanished key is
        fine: the uploader re-checks its blobs before publishing."""
        self._refuse_if_read_only("touch", key)
        name = self._name(key)
        with contextlib.suppress(KeyNotFound):
            self._call(lambda: self._touch(name), "touch", key, write=True)

    # --- primitives --------------------------------------------------------------------------

    def _get(self, name: str) -> StoredBytes:
        raise NotImplementedError

    def _open_read(
        self, name: str, start: int, pin: ObjectRead | None, chunk_size: int
    ) -> ObjectRead:
        raise NotImplementedError

    def _head(self, name: str) -> ObjectInfo:
        raise NotImplementedError

    def _list_page(self, prefix: str, token: str | None, delimited: bool) -> ListPage:
        raise NotImplementedError

    def _put(
        self, name: str, data: bytes, *, if_none_match: bool, if_match: str | None
    ) -> str | None:
        raise NotImplementedError

    def _upload_file(self, name: str, path: Path) -> None:
        raise NotImplementedError

    def _read_range(self, name: str, start: int, end: int, pin: ObjectRead) -> bytes:
        raise NotImplementedError

    def _delete(self, name: str) -> None:
        raise NotImplementedError

    def _map_error(
        self, exc: BaseException, action: str, key: str, write: bool
    ) -> ModelshelfError | None:
        return None

    def _is_malformed(self, exc: BaseException) -> bool:
        return isinstance(exc, MalformedAnswer)

    def _bucket_exists(self) -> bool:
        return True

    def _touch(self, name: str) -> None:
        """Move the object's modification time without sending its content (optional)."""
