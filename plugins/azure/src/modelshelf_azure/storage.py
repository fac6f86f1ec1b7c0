"""The Azure Blob Storage backend: a shelf is ``az://<container>/<prefix>``.

Every key ``k`` of the shelf is the block blob ``<prefix>/k`` in ``<container>``. The primitives
map onto the service like this:

* ``put_if_absent``: a single Put Blob with ``If-None-Match: *`` (409 -> AlreadyExists);
* ``put_if_match``: a single Put Blob with ``If-Match: <etag>`` (412 or 404 -> PreconditionFailed);
* ``put_file``: parallel Put Block calls streamed from the open file, then Put Block List, so the
  blob becomes visible only when complete and memory stays at about
  ``max_concurrency * max_block_size`` whatever the file size;
* ``read_stream``: ranged GETs of ``max_chunk_get_size``, pinned to the first response's etag;
* ``list`` / ``list_prefixes``: paged List Blobs (flat, or with ``delimiter='/'``).

A conditional write whose response is lost may have been applied. The SDK's automatic retry would
then see its own write as a conflict and report a lost race that was in fact won, so conditional
writes are retried here instead: after an uncertain failure, a conflict whose current content is
exactly the bytes we sent counts as our own success.

An answer cut inside its header block (the connection closed at a header-line boundary) looks to
``http.client`` like a complete answer lacking some headers, and often an empty body. The SDK then
raises plain ``ValueError`` / ``TypeError`` / ``AttributeError`` / ``DeserializationError``, or
returns properties holding ``None``. Every SDK call is therefore made through
:meth:`AzureBlobStorage._sdk`, which retries such malformed answers a few times (they are
transient) and then raises :class:`~modelshelf.errors.BackendUnavailable`; sizes and etags are
checked before use. The catch wraps SDK calls only, so a bug in this module still surfaces as is.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobPrefix, BlobServiceClient, ContainerClient, ExponentialRetry
from modelshelf.errors import (
    AccessDenied,
    AlreadyExists,
    BackendUnavailable,
    KeyNotFound,
    PreconditionFailed,
    StorageError,
)
from modelshelf.storage import CHUNK_SIZE, ObjectInfo, Storage, StoredBytes, check_key

from ._config import Connection, parse_url, resolve_connection, safe_url
from ._errors import error_code, status_code, translate

MiB = 1 << 20

#: Tuning defaults, each overridable by the option of the same name given to ``modelshelf.open``.
DEFAULTS: dict[str, Any] = {
    # Parallel block uploads per file. Memory is about max_concurrency * max_block_size.
    "max_concurrency": 4,
    # 8 MiB blocks: 50,000 blocks allow blobs up to 390 GiB, and a block is small enough that a
    # slow link never hits the read timeout on one request (the modelstore #231 failure).
    "max_block_size": 8 * MiB,
    # Files up to this size go up in one Put Blob; larger ones in parallel blocks.
    "max_single_put_size": 8 * MiB,
    # Size of each ranged GET when downloading (and of the first one).
    "max_chunk_get_size": 4 * MiB,
    # Seconds to open a connection, and to wait for each socket read.
    "connection_timeout": 20,
    "read_timeout": 120,
    # Retries of one request (exponential back-off: 1 s, 4 s, 10 s, 28 s, 82 s, +-1 s jitter).
    # Connection failures get fewer so that a wrong endpoint fails in about 5 s. (The SDK's
    # counter allows one retry more than the number given: 1 means two retries, 1 s + 4 s.)
    "retry_total": 5,
    "retry_connect": 1,
    # Listing page size; None is the service maximum (5,000).
    "results_per_page": None,
}

_CREDENTIAL_OPTIONS = (
    "connection_string",
    "account_url",
    "account_name",
    "sas_token",
    "credential",
)

#: Failures after which a write may or may not have been applied by the service.
_UNCERTAIN_STATUS = frozenset({408, 500, 502, 504})
#: Failures after which a write was certainly not applied, and which are worth retrying.
_RETRYABLE_STATUS = frozenset({429, 503})

#: Attempts at one SDK call whose answer keeps coming back malformed, and the pause between them.
_MALFORMED_ATTEMPTS = 4
_MALFORMED_PAUSE = 0.25

T = TypeVar("T")


class _MalformedAnswer(Exception):
    """An answer the SDK accepted but that lacks what it must carry (a size, an etag, its bytes).

    Raised by this module's own checks; its message is ours and never holds a secret."""


#: What the SDK raises, besides AzureError, on an answer cut short or otherwise malformed:
#: ``ValueError`` ("Required Content-Range response header is missing"; ``DeserializationError``
#: is a subclass), ``TypeError`` and ``AttributeError`` (a ``None`` where a parsed value was
#: expected, e.g. a listing page), ``KeyError`` (a missing response header).
_MALFORMED = (ValueError, TypeError, AttributeError, KeyError, _MalformedAnswer)


class AzureBlobStorage(Storage):
    """A shelf in an Azure Blob Storage container, below an optional prefix.

    ``AzureBlobStorage("az://models/team-a", connection_string=...)``. Options:

    * credentials (see :func:`modelshelf_azure._config.resolve_connection` for the order):
      ``connection_string``, ``account_url``, ``account_name``, ``sas_token``, ``credential``;
    * tuning: the keys of :data:`DEFAULTS`.

    Unknown options raise :class:`~modelshelf.errors.StorageError`. Creating the storage does no
    network I/O; the first operation does. The object is thread-safe.
    """

    def __init__(self, url: str, **options: Any) -> None:
        unknown = sorted(set(options) - set(DEFAULTS) - set(_CREDENTIAL_OPTIONS))
        if unknown:
            raise StorageError(
                f"unknown option(s) for Azure shelves: {', '.join(unknown)}; known: "
                f"{', '.join([*_CREDENTIAL_OPTIONS, *DEFAULTS])}"
            )
        location = parse_url(url)
        self.url = location.url
        self.container_name = location.container
        self._root = location.prefix
        settings = {**DEFAULTS, **{k: v for k, v in options.items() if k in DEFAULTS}}
        self._settings = settings
        connection = resolve_connection(
            self.url, **{k: v for k, v in options.items() if k in _CREDENTIAL_OPTIONS}
        )
        self._retry = ExponentialRetry(
            initial_backoff=1,
            increment_base=3,
            retry_total=settings["retry_total"],
            random_jitter_range=1,
            retry_connect=settings["retry_connect"],
        )
        self._session, transport = _transport(settings["max_concurrency"])
        self._service = _service_client(connection, self.url, self._retry, transport, settings)
        self.account_url = safe_url(self._service.url)
        self._container: ContainerClient = self._service.get_container_client(self.container_name)
        self._closed = threading.Event()

    # --- helpers ---------------------------------------------------------------------------

    def describe(self) -> str:
        return f"{self.url} (Azure account {self.account_url})"

    def __repr__(self) -> str:
        return f"AzureBlobStorage({self.url!r}, account_url={self.account_url!r})"

    def _name(self, key: str) -> str:
        return self._root + check_key(key)

    def _list_prefix(self, prefix: str) -> str:
        if prefix.startswith("/") or any(part in (".", "..") for part in prefix.split("/")):
            raise StorageError(f"invalid listing prefix {prefix!r} for shelf {self.url}")
        return self._root + prefix

    def _error(
        self, exc: AzureError, action: str, key: str, *, write: bool = False
    ) -> StorageError | KeyNotFound:
        if type(exc).__name__ == "AzureSigningError":
            return AccessDenied(
                f"shelf {self.url}: the account key in use cannot sign requests (it is not valid "
                "base64): check AccountKey in the connection string"
            )
        return translate(
            exc, shelf=self.url, account=self.account_url, action=action, key=key, write=write
        )

    def _garbled(self, exc: BaseException, action: str, key: str, attempts: int) -> StorageError:
        """The error for an answer that stayed malformed after ``attempts`` tries.

        The SDK's text is not repeated (it may quote a URL); our own checks' text is safe."""
        where = f"{action} {key!r}" if key else action
        detail = str(exc) if isinstance(exc, _MalformedAnswer) else type(exc).__name__
        return BackendUnavailable(
            f"shelf {self.url}: the Azure Blob service at {self.account_url} sent a malformed or "
            f"truncated answer to {where} ({detail}), {attempts} time(s): check the network "
            "(a proxy or connection cutting answers short) and try again"
        )

    def _sdk(self, call: Callable[[], T], action: str, key: str, *, write: bool = False) -> T:
        """Run ``call`` (SDK calls, plus checks raising :class:`_MalformedAnswer`) and return its
        result. ``call`` must be safe to repeat: a malformed answer is retried up to
        :data:`_MALFORMED_ATTEMPTS` times, then reported as BackendUnavailable. Azure errors are
        translated to modelshelf errors (the SDK already retried those that are transient)."""
        failure: BaseException | None = None
        for attempt in range(_MALFORMED_ATTEMPTS):
            if attempt:
                time.sleep(_MALFORMED_PAUSE * attempt)
            try:
                return call()
            except AzureError as exc:
                raise self._error(exc, action, key, write=write) from None
            except _MALFORMED as exc:
                failure = exc
        assert failure is not None
        raise self._garbled(failure, action, key, _MALFORMED_ATTEMPTS) from None

    def _pages(self, pager: Callable[[], Any], action: str, prefix: str) -> Iterator[Any]:
        """Yield the items of a paged SDK listing, fetching each page through :meth:`_sdk`.

        A page is fetched whole (one request) and retried alone when its answer is malformed,
        resuming from the previous page's continuation marker."""
        token: str | None = None
        while True:

            def fetch(token: str | None = token) -> tuple[list[Any], str | None]:
                pages = pager().by_page(continuation_token=token)
                page = list(next(pages, []))
                return page, pages.continuation_token

            page, token = self._sdk(fetch, action, prefix)
            yield from page
            if not token:
                return

    # --- reads -----------------------------------------------------------------------------

    def read(self, key: str) -> StoredBytes:
        blob = self._container.get_blob_client(self._name(key))

        def fetch() -> StoredBytes:
            downloader = blob.download_blob()
            data = downloader.readall()
            # A ranged answer that lost its Content-Length has an empty body: the SDK would
            # return the blob short (or a later range shifted), so the length is checked.
            size = _size(downloader.size)
            if len(data) != size:
                raise _MalformedAnswer(f"got {len(data)} of {size} bytes")
            return StoredBytes(data, _etag(downloader.properties.etag))

        return self._sdk(fetch, "read", key)

    def read_stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the blob in pieces of at most ``chunk_size`` bytes, in constant memory.

        The first request is made by this call, so a missing key raises :class:`KeyNotFound`
        here, like the other backends. The service is then asked for ``max_chunk_get_size`` bytes
        at a time, every range pinned to the etag of the first response, so a blob replaced
        mid-download raises instead of mixing two versions.
        """
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        blob = self._container.get_blob_client(self._name(key))

        def first() -> tuple[Any, int, str]:
            downloader = blob.download_blob(max_concurrency=1)
            return downloader, _size(downloader.size), _etag(downloader.properties.etag)

        downloader, size, etag = self._sdk(first, "read", key)
        return self._pieces(blob, downloader, key, size, etag, chunk_size)

    def _pieces(
        self, blob: Any, downloader: Any, key: str, size: int, etag: str, chunk_size: int
    ) -> Iterator[bytes]:
        """The blob's bytes, checked piece by piece, resuming after a malformed answer.

        ``downloader.chunks()`` yields pieces of exactly ``max_chunk_get_size`` bytes but the last
        (the first GET asks for the same size, see :func:`_service_client`). A shorter piece is
        an answer cut short: its bytes are a true prefix of that range, but the SDK would carry
        on with the next range and shift everything after it. So a short piece, or a malformed
        answer, ends this downloader, and a new one resumes at the first missing byte, pinned to
        the first answer's etag so that a replaced blob raises instead of mixing two versions.
        """
        step = self._settings["max_chunk_get_size"]
        done = 0
        failures = 0
        chunks = downloader.chunks()
        while done < size:
            expected = min(step, size - done)
            failure: BaseException | None = None
            try:
                # chunks(), never readall(): one ranged GET at a time, nothing accumulated.
                piece = next(chunks, b"")
            except ResourceModifiedError:
                raise self._replaced(key) from None
            except AzureError as exc:
                raise self._error(exc, "read", key) from None
            except _MALFORMED as exc:
                piece, failure = b"", exc
            if len(piece) > size - done:
                # More bytes than the blob holds: nothing here can be trusted.
                raise self._garbled(
                    _MalformedAnswer(f"{done + len(piece)} bytes of a {size}-byte blob"),
                    "read",
                    key,
                    failures + 1,
                )
            view = memoryview(piece)
            for start in range(0, len(view), chunk_size):
                yield bytes(view[start : start + chunk_size])
            done += len(piece)
            if failure is None and len(piece) >= expected:
                continue
            failures += 1
            if failures >= _MALFORMED_ATTEMPTS:
                raise self._garbled(
                    failure or _MalformedAnswer(f"got {done} of {size} bytes"),
                    "read",
                    key,
                    failures,
                )
            time.sleep(_MALFORMED_PAUSE * failures)
            resume = functools.partial(self._resume, blob, key, done, etag)
            chunks = self._sdk(resume, "read", key).chunks()

    def _resume(self, blob: Any, key: str, offset: int, etag: str) -> Any:
        """A downloader for the blob from ``offset`` on, if it still has ``etag``."""
        try:
            return blob.download_blob(
                offset=offset,
                max_concurrency=1,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            raise self._replaced(key) from None

    def _replaced(self, key: str) -> StorageError:
        return StorageError(
            f"shelf {self.url}: {key} was replaced while being downloaded; try again"
        )

    def stat(self, key: str) -> ObjectInfo | None:
        blob = self._container.get_blob_client(self._name(key))

        def fetch() -> ObjectInfo:
            props = blob.get_blob_properties()
            return ObjectInfo(key, _size(props.size), _etag(props.etag), props.last_modified)

        try:
            return self._sdk(fetch, "stat", key)
        except KeyNotFound:
            return None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        start = self._list_prefix(prefix)
        cut = len(self._root)
        # results_per_page only sets how many names each request brings back.
        pager = lambda: self._container.list_blobs(  # noqa: E731
            name_starts_with=start, results_per_page=self._settings["results_per_page"]
        )
        for props in self._pages(pager, "list", prefix):
            name = str(props.name)
            if name.endswith("/"):  # a "directory" marker some tools create: not a key
                continue
            try:
                size, etag = _size(props.size), _etag(props.etag)
            except _MalformedAnswer as exc:
                raise self._garbled(exc, "list", prefix, 1) from None
            yield ObjectInfo(name[cut:], size, etag, props.last_modified)

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        start = self._list_prefix(prefix)
        cut = len(self._root)
        pager = lambda: self._container.walk_blobs(  # noqa: E731
            name_starts_with=start,
            delimiter="/",
            results_per_page=self._settings["results_per_page"],
        )
        for item in self._pages(pager, "list", prefix):
            # walk_blobs yields blobs directly below the prefix and BlobPrefix "folders"; only
            # the folders are wanted. A BlobPrefix is itself iterable (a lazy sub-listing) and
            # must not be walked.
            if isinstance(item, BlobPrefix):
                yield str(item.name)[cut:]

    # --- writes ----------------------------------------------------------------------------

    def put_file(self, key: str, path: Path) -> None:
        name = self._name(key)
        path = Path(path)
        blob = self._container.get_blob_client(name)
        with path.open("rb") as handle:
            size = path.stat().st_size

            def upload() -> None:
                # An unconditional overwrite is safe to repeat; each attempt starts afresh.
                handle.seek(0)
                blob.upload_blob(
                    handle,
                    length=size,
                    overwrite=True,
                    max_concurrency=self._settings["max_concurrency"],
                )

            self._sdk(upload, "write", key, write=True)

    def put_if_absent(self, key: str, data: bytes) -> str:
        return self._conditional_put(key, bytes(data), etag=None)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        if not etag:
            raise PreconditionFailed(f"{key}: empty etag given for compare-and-swap in {self.url}")
        return self._conditional_put(key, bytes(data), etag=etag)

    def _conditional_put(self, key: str, data: bytes, *, etag: str | None) -> str:
        """One atomic conditional Put Blob, retried here (not by the SDK) so that a lost
        response cannot turn our own success into a reported conflict."""
        blob = self._container.get_blob_client(self._name(key))
        if etag is None:
            conditions: dict[str, Any] = {"overwrite": False}  # the SDK sends If-None-Match: *
        else:
            conditions = {
                "overwrite": True,
                "etag": etag,
                "match_condition": MatchConditions.IfNotModified,
            }
        uncertain = False  # an earlier attempt may have been applied
        attempt = 0
        while True:
            try:
                # The data is far below max_single_put_size: one request, atomic on the service.
                response = blob.upload_blob(data, retry_total=0, **conditions)
                return _etag(response.get("etag"))
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
                conflict = self._conflict(exc, key, etag is None)
                if conflict is None:
                    raise self._error(exc, "write", key, write=True) from None
                if uncertain:
                    current = self._current_if_equal(blob, data)
                    if current is not None:
                        return current
                raise conflict from None
            except (ServiceRequestError, ServiceResponseError, HttpResponseError) as exc:
                status = status_code(exc) if isinstance(exc, HttpResponseError) else None
                if isinstance(exc, HttpResponseError) and status not in (
                    _UNCERTAIN_STATUS | _RETRYABLE_STATUS
                ):
                    raise self._error(exc, "write", key, write=True) from None
                # Same budget as the SDK's policy gives other requests (see DEFAULTS).
                limit = (
                    self._settings["retry_connect"] + 1
                    if isinstance(exc, ServiceRequestError)
                    else self._settings["retry_total"]
                )
                if attempt >= limit:
                    raise self._error(exc, "write", key, write=True) from None
                if isinstance(exc, ServiceResponseError) or status in _UNCERTAIN_STATUS:
                    uncertain = True
                time.sleep(self._retry.get_backoff_time({"count": attempt}))
                attempt += 1
            except _MALFORMED as exc:
                # A malformed answer (e.g. cut before its ETag) came after the service read the
                # request: the write may have been applied, exactly like a lost answer.
                if attempt >= self._settings["retry_total"]:
                    raise self._garbled(exc, "write", key, attempt + 1) from None
                uncertain = True
                time.sleep(_MALFORMED_PAUSE * (attempt + 1))
                attempt += 1

    def _conflict(self, exc: AzureError, key: str, create_only: bool) -> StorageError | None:
        """The AlreadyExists / PreconditionFailed a refused conditional write means, or None."""
        code = error_code(exc) if isinstance(exc, HttpResponseError) else ""
        if code == "ContainerNotFound":
            return None
        if create_only and isinstance(exc, ResourceExistsError):
            return AlreadyExists(f"{key} already exists in shelf {self.url}")
        if not create_only and isinstance(exc, ResourceModifiedError | ResourceNotFoundError):
            return PreconditionFailed(f"{key} changed since it was read (shelf {self.url})")
        if isinstance(exc, HttpResponseError) and status_code(exc) in (409, 412):
            return (AlreadyExists if create_only else PreconditionFailed)(
                f"{key} {'already exists' if create_only else 'changed since it was read'} "
                f"in shelf {self.url}"
            )
        return None

    def _current_if_equal(self, blob: Any, data: bytes) -> str | None:
        """The blob's etag if it now holds exactly ``data`` (our uncertain write landed)."""
        try:
            downloader = blob.download_blob()
            current = downloader.readall()
            etag = _etag(downloader.properties.etag)
        except (AzureError, *_MALFORMED):
            return None  # unknown: the caller reports the conflict it saw
        return etag if current == data else None

    def delete(self, key: str) -> None:
        blob = self._container.get_blob_client(self._name(key))
        # Already gone is fine (a missing container is a StorageError, not KeyNotFound).
        with contextlib.suppress(KeyNotFound):
            self._sdk(
                lambda: blob.delete_blob(delete_snapshots="include"), "delete", key, write=True
            )

    def touch(self, key: str) -> None:
        """Refresh a blob's Last-Modified time so ``gc``'s grace period starts again.

        Core calls this when an upload reuses a blob that is already stored. Setting metadata is
        the cheapest write that moves Last-Modified without sending the content again. A blob
        that vanished meanwhile is not an error: core re-checks and re-uploads before publishing.
        """
        blob = self._container.get_blob_client(self._name(key))
        # Vanished meanwhile is fine (a missing container is a StorageError, not KeyNotFound).
        with contextlib.suppress(KeyNotFound):
            self._sdk(
                lambda: blob.set_blob_metadata({"modelshelf_touched": f"{time.time():.0f}"}),
                "touch",
                key,
                write=True,
            )

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._service.close()
        self._session.close()


def _etag(value: object) -> str:
    """One spelling for every etag: the quoted form of the HTTP header.

    Blob listings return etags unquoted while HEAD/GET/PUT return them quoted; a caller that
    compares a listed etag with a read one, or passes either to ``put_if_match``, must not care.
    A missing or empty etag (an answer cut before its ETag header) raises
    :class:`_MalformedAnswer`: turning it into the string ``"None"`` would break every later
    compare-and-swap.
    """
    if not isinstance(value, str) or value.strip('"') == "":
        raise _MalformedAnswer("no ETag in the answer")
    return value if value.startswith('"') else f'"{value}"'


def _size(value: object) -> int:
    """A blob size from an answer; a missing or negative one raises :class:`_MalformedAnswer`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _MalformedAnswer("no valid size (Content-Length / Content-Range) in the answer")
    return value


def _transport(max_concurrency: int) -> tuple[Any, Any]:
    """A requests transport whose connection pool fits parallel transfers.

    The default pool keeps 10 connections per host; core transfers several files at once, each
    with ``max_concurrency`` block uploads, and urllib3 would otherwise open and discard
    connections (and warn) past 10.
    """
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(32, 8 * int(max_concurrency)))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session, RequestsTransport(session=session, session_owner=False)


def _service_client(
    connection: Connection,
    shelf_url: str,
    retry: ExponentialRetry,
    transport: Any,
    settings: dict[str, Any],
) -> BlobServiceClient:
    kwargs: dict[str, Any] = {
        "retry_policy": retry,
        "transport": transport,
        "connection_timeout": settings["connection_timeout"],
        "read_timeout": settings["read_timeout"],
        "max_single_put_size": settings["max_single_put_size"],
        "max_block_size": settings["max_block_size"],
        "max_single_get_size": settings["max_chunk_get_size"],
        "max_chunk_get_size": settings["max_chunk_get_size"],
    }
    if connection.connection_string is not None:
        try:
            return BlobServiceClient.from_connection_string(connection.connection_string, **kwargs)
        except ValueError:
            # The SDK's text may quote the string; it holds the key, so it is never repeated.
            raise StorageError(
                f"shelf {shelf_url}: the Azure connection string ({connection.source}) is "
                "malformed: expected 'AccountName=...;AccountKey=...;' or "
                "'BlobEndpoint=...;SharedAccessSignature=...'"
            ) from None
    try:
        return BlobServiceClient(
            connection.account_url or "", credential=connection.credential, **kwargs
        )
    except ValueError:
        raise StorageError(
            f"shelf {shelf_url}: invalid Azure account URL or credential for "
            f"{safe_url(connection.account_url or '')}"
        ) from None
