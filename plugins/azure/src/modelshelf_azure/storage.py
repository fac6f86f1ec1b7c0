"""The Azure Blob Storage backend: a shelf is ``az://<container>/<prefix>``.

Every key ``k`` of the shelf is the block blob ``<prefix>/k`` in ``<container>``. The algorithms
live in :mod:`modelshelf.objectstore`; the primitives here map onto the service like this:

* ``_put``: a single Put Blob, with ``If-None-Match: *`` or ``If-Match: <etag>`` when conditional;
* ``_upload_file``: parallel Put Block calls streamed from the open file, then Put Block List, so
  the blob becomes visible only when complete and memory stays at about
  ``max_concurrency * max_block_size`` whatever the file size;
* ``_open_read``: ranged GETs of ``max_chunk_get_size``; resumed ones pinned to the first etag;
* ``_list_page``: one page of List Blobs (flat, or with ``delimiter='/'``).

A Put Blob is sent with the SDK's retries off: a write whose answer is lost may have been applied,
and the SDK's retry would then report our own write as a lost race. The core's conditional-write
algorithm retries it instead (see :class:`~modelshelf.objectstore.TryAgain`).

An answer cut inside its header block makes the SDK raise plain ``ValueError`` / ``TypeError`` /
``AttributeError`` / ``DeserializationError``, or return properties holding ``None``: such answers
count as malformed (:data:`modelshelf_azure._errors.MALFORMED`) and are asked for again; sizes and
etags are checked before use. Primitives hold SDK calls only, so a bug here still surfaces as is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceModifiedError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobPrefix, BlobServiceClient, ContainerClient, ExponentialRetry
from modelshelf import objectstore
from modelshelf.errors import ModelshelfError, StorageError
from modelshelf.retry import Backoff
from modelshelf.storage import ObjectInfo, StoredBytes

from . import _errors
from .options import Connection, parse, resolve_connection, safe_url


class AzureBlobStorage(objectstore.ObjectStoreStorage):
    """A shelf in an Azure Blob Storage container, below an optional prefix.

    ``AzureBlobStorage("az://models/team-a", connection_string=...)``. Options:

    * credentials (see :func:`modelshelf_azure.options.resolve_connection` for the order):
      ``connection_string``, ``account_url``, ``account_name``, ``sas_token``, ``credential``;
    * tuning: the keys of :data:`modelshelf_azure.options.DEFAULTS`.

    Unknown options raise :class:`~modelshelf.errors.StorageError`. Creating the storage does no
    network I/O; the first operation does. The object is thread-safe.
    """

    service = "the Azure Blob service"
    answer_retry = Backoff(attempts=4, first=0.25, cap=1.0)
    # Error codes tell a missing container from a missing blob, even on HEAD requests.
    _bucket_known = True

    def __init__(self, url: str, **options: Any) -> None:
        location, settings, credentials = parse(url, options)
        self.url = location.url
        self.container_name = location.container
        self.root = location.prefix
        self.settings = settings
        self.small_blob_limit = settings["max_single_put_size"]
        # Conditional writes are retried here, not by the SDK (see the module docstring), with
        # the budget the SDK's policy gives other requests.
        self.write_retry = Backoff(attempts=settings["retry_total"] + 1, first=0.5, cap=8.0)
        connection = resolve_connection(self.url, **credentials)
        retry = ExponentialRetry(
            initial_backoff=1,
            increment_base=3,
            retry_total=settings["retry_total"],
            random_jitter_range=1,
            retry_connect=settings["retry_connect"],
        )
        self._session, transport = _transport(settings["max_concurrency"])
        self._service = _service_client(connection, self.url, retry, transport, settings)
        self.account_url = self.endpoint = safe_url(self._service.url)
        self._container: ContainerClient = self._service.get_container_client(self.container_name)
        self._closed = threading.Event()

    def describe(self) -> str:
        return f"{self.url} (Azure account {self.account_url})"

    def __repr__(self) -> str:
        return f"AzureBlobStorage({self.url!r}, account_url={self.account_url!r})"

    # --- primitives --------------------------------------------------------------------------

    def _blob(self, name: str) -> Any:
        return self._container.get_blob_client(name)

    def _get(self, name: str) -> StoredBytes:
        downloader = self._blob(name).download_blob()
        data = downloader.readall()
        # A ranged answer that lost its Content-Length has an empty body: the SDK would return
        # the blob short (or a later range shifted), so the length is checked.
        size = _size(downloader.size)
        if len(data) != size:
            raise objectstore.MalformedAnswer(f"got {len(data)} of {size} bytes")
        return StoredBytes(data, _etag(downloader.properties.etag))

    def _open_read(
        self, name: str, start: int, pin: objectstore.ObjectRead | None, chunk_size: int
    ) -> objectstore.ObjectRead:
        etag = pin.etag if pin is not None else None
        blob = self._blob(name)
        if etag is None:
            downloader = blob.download_blob(max_concurrency=1)
        else:
            try:
                downloader = blob.download_blob(
                    offset=start,
                    max_concurrency=1,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceModifiedError:
                raise objectstore.Replaced() from None
        size = start + _size(downloader.size)
        return objectstore.ObjectRead(
            size, _etag(downloader.properties.etag), self._pieces(downloader, start, size)
        )

    def _pieces(self, downloader: Any, start: int, size: int) -> Iterator[bytes]:
        """``downloader.chunks()``, one ranged GET at a time, ending at the first short piece.

        Every piece holds exactly ``max_chunk_get_size`` bytes but the last (the first GET asks
        for the same size, see :func:`_service_client`). A shorter one is an answer cut short: its
        bytes are a true prefix of the range, but the SDK would go on with the next range and
        shift everything after it; ending here makes the core resume at the first missing byte.
        """
        step = self.settings["max_chunk_get_size"]
        chunks = downloader.chunks()
        done = start
        while done < size:
            expected = min(step, size - done)
            try:
                piece = next(chunks, b"")
            except ResourceModifiedError:
                raise objectstore.Replaced() from None
            if piece:
                yield piece
            done += len(piece)
            if len(piece) < expected:
                return

    def _head(self, name: str) -> ObjectInfo:
        props = self._blob(name).get_blob_properties()
        return ObjectInfo(name, _size(props.size), _etag(props.etag), props.last_modified)

    def _list_page(self, prefix: str, token: str | None, delimited: bool) -> objectstore.ListPage:
        per_page = self.settings["results_per_page"]  # only how many names a request brings
        pager: Any
        if delimited:
            pager = self._container.walk_blobs(
                name_starts_with=prefix, delimiter="/", results_per_page=per_page
            )
        else:
            pager = self._container.list_blobs(name_starts_with=prefix, results_per_page=per_page)
        pages = pager.by_page(continuation_token=token)
        objects, prefixes = [], []
        for item in list(next(pages, [])):
            # A BlobPrefix is itself iterable (a lazy sub-listing) and must not be walked.
            if isinstance(item, BlobPrefix):
                prefixes.append(str(item.name))
            elif not delimited:
                size, etag = _size(item.size), _etag(item.etag)
                objects.append(ObjectInfo(str(item.name), size, etag, item.last_modified))
        return objectstore.ListPage(objects, prefixes, pages.continuation_token)

    def _put(
        self, name: str, data: bytes, *, if_none_match: bool, if_match: str | None
    ) -> str | None:
        conditions: dict[str, Any] = {"overwrite": not if_none_match}  # False: If-None-Match: *
        if if_match is not None:
            conditions.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        try:
            # Far below max_single_put_size: one request, atomic on the service.
            response = self._blob(name).upload_blob(data, retry_total=0, **conditions)
        except ServiceRequestError as exc:  # never sent: the SDK's connect budget
            attempts = self.settings["retry_connect"] + 2
            raise objectstore.TryAgain(exc, maybe_applied=False, attempts=attempts) from None
        except ServiceResponseError as exc:
            raise objectstore.TryAgain(exc, maybe_applied=True) from None
        except HttpResponseError as exc:
            conditional = if_none_match or if_match is not None
            if conditional and _errors.refused(exc, create_only=if_none_match):
                raise objectstore.Refused(create_only=if_none_match) from None
            status = _errors.status_code(exc)
            if status in _errors.UNCERTAIN_STATUS | _errors.RETRYABLE_STATUS:
                raise objectstore.TryAgain(
                    exc, maybe_applied=status in _errors.UNCERTAIN_STATUS
                ) from None
            raise
        etag = response.get("etag")
        return _etag(etag) if etag else None

    def _upload_file(self, name: str, path: Path) -> None:
        with path.open("rb") as handle:
            self._blob(name).upload_blob(
                handle,
                length=path.stat().st_size,
                overwrite=True,
                max_concurrency=self.settings["max_concurrency"],
            )

    def _delete(self, name: str) -> None:
        self._blob(name).delete_blob(delete_snapshots="include")

    def _touch(self, name: str) -> None:
        """Setting metadata is the cheapest write that moves Last-Modified."""
        self._blob(name).set_blob_metadata({"modelshelf_touched": f"{time.time():.0f}"})

    def _is_malformed(self, exc: BaseException) -> bool:
        return isinstance(exc, _errors.MALFORMED)

    def _map_error(
        self, exc: BaseException, action: str, key: str, write: bool
    ) -> ModelshelfError | None:
        return _errors.translate(
            exc, shelf=self.url, account=self.account_url, action=action, key=key, write=write
        )

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
    A missing or empty etag (an answer cut before its ETag header) is a malformed answer: turning
    it into the string ``"None"`` would break every later compare-and-swap.
    """
    if not isinstance(value, str) or value.strip('"') == "":
        raise objectstore.MalformedAnswer("no ETag in the answer")
    return value if value.startswith('"') else f'"{value}"'


def _size(value: object) -> int:
    """A blob size from an answer; a missing or negative one is a malformed answer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise objectstore.MalformedAnswer(
            "no valid size (Content-Length / Content-Range) in the answer"
        )
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
