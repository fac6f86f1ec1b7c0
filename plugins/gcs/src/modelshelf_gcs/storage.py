"""The ``gs://bucket/prefix`` storage backend, a thin wrapper around ``google-cloud-storage``.

The algorithms live in :mod:`modelshelf.objectstore`. How the primitives map onto GCS:

* etag = the object *generation* (as a decimal string). Every write of an object gets a new one.
* ``_put`` = a simple (single-request) upload, with ``if_generation_match=0`` (create-only: "only
  if no live object") or ``=<generation>`` (compare-and-swap). GCS commits it atomically, and
  fake-gcs-server honours preconditions on it (it ignores them on resumable uploads).
* ``_upload_file`` = resumable upload in ``chunk_size`` pieces (constant memory); the object
  appears only when the last piece is committed, so nobody sees a partial blob.
* ``_open_read`` = ranged GETs pinned to the generation found first, so a replacement racing the
  read can never mix two contents into one stream.

Retries: transient failures (429, 5xx, dropped connections, timeouts) are retried by the SDK with
exponential back-off for up to ``retry_deadline`` seconds, including uploads of blobs (safe:
content-addressed) and conditional writes (safe: the precondition makes a replay harmless). A
connection that cannot be opened at all (refused, unknown host) is not retried (see
:func:`modelshelf_gcs._errors.transient`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exc
from google.cloud import storage as gcs
from modelshelf import objectstore
from modelshelf.errors import AccessDenied, ModelshelfError, StorageError
from modelshelf.retry import Backoff
from modelshelf.storage import ObjectInfo, StoredBytes

from . import _errors
from .options import GCSOptions, parse

#: Bytes fetched per ranged GET in ``read_stream`` (then yielded in the caller's chunk size).
#: Large enough that request latency is amortised, small enough to keep memory constant.
DOWNLOAD_RANGE_SIZE = 16 << 20
#: Objects per listing page (the GCS maximum).
PAGE_SIZE = 1000


class _Attempts:
    """Notes whether the SDK retried a request (a refusal may then be of our own write)."""

    def __init__(self) -> None:
        self.retried = False

    def note(self, _exc: Exception) -> None:
        self.retried = True


class GCSStorage(objectstore.ObjectStoreStorage):
    """A shelf below ``gs://bucket/prefix``; options as for :func:`modelshelf_gcs.open_storage`.

    Makes no request when created. Thread-safe: the SDK client's HTTP session is shared by the
    transfer threads of one operation.
    """

    service = "GCS"
    answer_retry = write_retry = Backoff(attempts=3, first=0.2, cap=1.0, jitter=False)

    def __init__(self, url: str, **options: Any) -> None:
        self.options = parsed = parse(url, options)
        self.url = parsed.url
        self.location = parsed.location
        self.root = parsed.location.prefix
        self.read_only = parsed.anonymous
        if parsed.anonymous:
            self.read_only_reason = (
                "is opened anonymously, which is read-only; open it with credentials to write"
            )
        self.timeout = parsed.timeout
        self.retry_deadline = parsed.retry_deadline
        self.chunk_size = parsed.chunk_size
        self._owns_client = parsed.client is None
        self.client = parsed.client if parsed.client is not None else _make_client(parsed)
        self.bucket = self.client.bucket(parsed.location.bucket)

    @property
    def endpoint(self) -> str:  # type: ignore[override]
        """The API endpoint in use (``STORAGE_EMULATOR_HOST`` when set), for messages."""
        endpoint = getattr(self.client, "api_endpoint", None)
        return str(endpoint or self.client._connection.API_BASE_URL)

    def _retry(self, attempts: _Attempts | None = None) -> Retry:
        return Retry(
            predicate=_errors.transient,
            initial=0.5,
            maximum=16.0,
            multiplier=2.0,
            timeout=self.retry_deadline,
            on_error=attempts.note if attempts is not None else None,
        )

    # --- primitives --------------------------------------------------------------------------

    def _get(self, name: str) -> StoredBytes:
        blob = self.bucket.blob(name)
        data = blob.download_as_bytes(timeout=self.timeout, retry=self._retry())
        # The download answer carries the generation of exactly these bytes.
        return StoredBytes(data, _generation(blob))

    def _open_read(
        self, name: str, start: int, pin: objectstore.ObjectRead | None, chunk_size: int
    ) -> objectstore.ObjectRead:
        if pin is None:
            blob = self.bucket.blob(name)
            blob.reload(timeout=self.timeout, retry=self._retry())
            pin = objectstore.ObjectRead(int(blob.size or 0), _generation(blob), iter(()))
        pinned = self.bucket.blob(name, generation=int(pin.etag))
        return objectstore.ObjectRead(
            pin.size, pin.etag, self._ranges(pinned, start, pin.size, chunk_size)
        )

    def _ranges(self, blob: Any, start: int, size: int, chunk_size: int) -> Iterator[bytes]:
        step = max(DOWNLOAD_RANGE_SIZE, chunk_size)
        while start < size:
            end = min(start + step, size) - 1
            try:
                # Checksums are per whole object, so none for a range; core verifies sha256.
                data = blob.download_as_bytes(
                    start=start, end=end, checksum=None, timeout=self.timeout, retry=self._retry()
                )
            except gexc.NotFound:
                raise objectstore.Replaced() from None  # that generation is gone
            yield data
            if len(data) != end - start + 1:  # e.g. an answer cut before Content-Length
                return
            start = end + 1

    def _head(self, name: str) -> ObjectInfo:
        blob = self.bucket.blob(name)
        blob.reload(timeout=self.timeout, retry=self._retry())
        return _info(blob)

    def _list_page(self, prefix: str, token: str | None, delimited: bool) -> objectstore.ListPage:
        # Only what ObjectInfo needs: a quarter of the bytes of a full listing.
        shape: dict[str, str] = (
            {"delimiter": "/", "fields": "prefixes,nextPageToken"}
            if delimited
            else {"fields": "items(name,size,generation,updated),nextPageToken"}
        )
        iterator = self.client.list_blobs(
            self.bucket,
            prefix=prefix,
            page_size=PAGE_SIZE,
            page_token=token,
            timeout=self.timeout,
            retry=self._retry(),
            **shape,
        )
        page = next(iterator.pages, None)
        if page is None:
            return objectstore.ListPage()
        return objectstore.ListPage(
            [_info(blob) for blob in page], list(page.prefixes), iterator.next_page_token
        )

    def _put(
        self, name: str, data: bytes, *, if_none_match: bool, if_match: str | None
    ) -> str | None:
        if if_match is not None and (not if_match.isdigit() or int(if_match) == 0):
            # Not a generation we handed out (0 would mean "create-only"): it cannot match.
            raise objectstore.Refused(create_only=False)
        # A fresh blob each time: after a malformed answer the old one holds a broken resource.
        blob = self.bucket.blob(name)
        blob.content_type = (
            "application/json" if name.endswith(".json") else "application/octet-stream"
        )
        # Publicly readable objects are cached by Google's edge for an hour by default; a reader
        # must never see an alias or a tombstoned manifest that stale.
        blob.cache_control = "no-cache"
        attempts = _Attempts()
        try:
            blob.upload_from_string(
                data,
                content_type=blob.content_type,
                if_generation_match=0 if if_none_match else (int(if_match) if if_match else None),
                timeout=self.timeout,
                retry=self._retry(attempts),
            )
        except gexc.PreconditionFailed:
            raise objectstore.Refused(create_only=if_none_match, retried=attempts.retried) from None
        return _generation(blob)  # without one the answer was cut: the write is retried

    def _upload_file(self, name: str, path: Path) -> None:
        # Blobs are content-addressed, so replaying an upload is harmless: retried even though
        # the SDK's default retries unconditional uploads not at all.
        blob = self.bucket.blob(name, chunk_size=self.chunk_size)
        blob.upload_from_filename(
            os.fspath(path),
            content_type="application/octet-stream",
            timeout=self.timeout,
            retry=self._retry(),
        )
        _generation(blob)  # an answer without one was cut

    def _delete(self, name: str) -> None:
        self.bucket.delete_blob(name, timeout=self.timeout, retry=self._retry())

    def _touch(self, name: str) -> None:
        """GCS sets ``updated`` (what ``list`` reports as ``modified``) on every metadata change,
        by the server's clock: patching one field refreshes it without rewriting the content."""
        blob = self.bucket.blob(name)
        blob.metadata = {"modelshelf-touched": dt.datetime.now(dt.UTC).isoformat()}
        blob.patch(timeout=self.timeout, retry=self._retry())
        _generation(blob)

    def _bucket_exists(self) -> bool:
        try:
            return bool(self.bucket.exists(timeout=self.timeout, retry=self._retry()))
        except (gexc.Forbidden, gexc.Unauthorized, auth_exc.InvalidOperation):
            # Readers of a public bucket may get objects but not bucket metadata.
            return True

    def _no_bucket_error(self) -> StorageError:
        return _errors.no_bucket(self.location.bucket, self.url)

    def _is_malformed(self, exc: BaseException) -> bool:
        return _errors.is_malformed(exc)

    def _map_error(
        self, exc: BaseException, action: str, key: str, write: bool
    ) -> ModelshelfError | None:
        return _errors.translate(self, exc, action, key, write)

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        if self._owns_client:
            close = getattr(self.client, "close", None)
            if close is not None:
                close()

    def describe(self) -> str:
        return self.url


def _generation(blob: Any) -> str:
    """The generation an answer reported; GCS always sends it, so without one it was cut.

    Reading the property raises ``AttributeError`` when the SDK stored a non-JSON body."""
    if blob.generation is None:
        raise objectstore.MalformedAnswer(f"no generation for {blob.name!r} in the answer")
    return str(blob.generation)


def _info(blob: Any) -> ObjectInfo:
    return ObjectInfo(blob.name, int(blob.size or 0), _generation(blob), blob.updated)


def _make_client(options: GCSOptions) -> gcs.Client:
    if options.anonymous:
        if options.credentials is not None or options.credentials_file is not None:
            raise StorageError(
                "anonymous=True cannot be combined with credentials= or credentials_file=; "
                "choose one"
            )
        return gcs.Client.create_anonymous_client()
    if options.credentials_file is not None:
        if options.credentials is not None:
            raise StorageError("pass credentials= or credentials_file=, not both")
        path = Path(options.credentials_file).expanduser()
        if not path.is_file():
            raise StorageError(
                f"credentials_file {os.fspath(path)!r} does not exist; give the path of a "
                "service account JSON key"
            )
        try:
            return gcs.Client.from_service_account_json(os.fspath(path), project=options.project)
        except (ValueError, KeyError, auth_exc.GoogleAuthError) as exc:
            # Never echo the exception: it may quote the key file's content.
            raise AccessDenied(
                f"credentials_file {os.fspath(path)!r} is not a valid service account JSON key "
                f"({type(exc).__name__}); download a new key or use another credential"
            ) from None
    try:
        return gcs.Client(project=options.project, credentials=options.credentials)
    except auth_exc.DefaultCredentialsError:
        raise AccessDenied(
            "no Google credentials found for gs:// shelves: run `gcloud auth application-default "
            "login`, set GOOGLE_APPLICATION_CREDENTIALS, pass credentials_file=, or anonymous=True "
            "for a public bucket"
        ) from None
