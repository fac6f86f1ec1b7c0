"""The ``gs://bucket/prefix`` storage backend, a thin wrapper around ``google-cloud-storage``.

How the :class:`~modelshelf.storage.Storage` contract maps onto GCS:

* etag = the object *generation* (as a decimal string). Every write of an object gets a new one.
* ``put_if_absent`` = upload with ``if_generation_match=0`` (GCS: "only if no live object");
  ``put_if_match`` = upload with ``if_generation_match=<generation>``. Both are simple (multipart,
  single-request) uploads: GCS commits them atomically, and fake-gcs-server honours preconditions
  on them (it ignores them on resumable uploads).
* ``put_file`` = resumable upload in ``chunk_size`` pieces (constant memory); the object appears
  only when the last piece is committed, so nobody sees a partial blob.
* ``read_stream`` = ranged GETs pinned to the generation found first, so a replacement racing the
  read can never mix two contents into one stream.

Retries: transient failures (429, 5xx, dropped connections, timeouts) are retried with exponential
back-off for up to ``retry_deadline`` seconds, including uploads of blobs (safe: content-addressed)
and conditional writes (safe: the precondition makes a replay harmless). A connection that cannot
be opened at all (refused, unknown host) is not retried: that endpoint is wrong or down, and the
user should hear so at once rather than after two minutes. An answer that the SDK takes for a
success but cannot read (its headers cut short: a JSON body kept as bytes, no generation, a short
range) is asked for again a few times, then reported as BackendUnavailable (see ``_sdk``).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import requests
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exc
from google.cloud import storage as gcs
from modelshelf.errors import (
    AccessDenied,
    AlreadyExists,
    BackendUnavailable,
    KeyNotFound,
    PreconditionFailed,
    ReadOnlyShelf,
    StorageError,
)
from modelshelf.storage import CHUNK_SIZE, ObjectInfo, Storage, StoredBytes, check_key

from ._url import GCSLocation, parse_url

try:  # the predicate behind google.cloud.storage.retry.DEFAULT_RETRY
    from google.cloud.storage.retry import _should_retry as _sdk_should_retry
except ImportError:  # pragma: no cover - a future SDK renamed it; keep its public default
    from google.cloud.storage.retry import DEFAULT_RETRY as _DEFAULT

    _sdk_should_retry = _DEFAULT._predicate

#: Resumable upload piece size. GCS needs a multiple of 256 KiB; memory use is about one piece.
UPLOAD_CHUNK_SIZE = 16 << 20
#: Bytes fetched per ranged GET in ``read_stream`` (then yielded in the caller's chunk size).
#: Large enough that request latency is amortised, small enough to keep memory constant.
DOWNLOAD_RANGE_SIZE = 16 << 20
#: Seconds one HTTP request may take (connect, and each read) before it counts as failed.
DEFAULT_TIMEOUT = 60.0
#: Seconds to keep retrying a transient failure before giving up.
DEFAULT_RETRY_DEADLINE = 120.0
#: Objects per listing page (the GCS maximum).
PAGE_SIZE = 1000
#: Times one SDK call is tried when the answer is malformed (see :meth:`GCSStorage._sdk`).
MALFORMED_ATTEMPTS = 3
#: Seconds to wait before the second try after a malformed answer (doubled each time).
MALFORMED_BACKOFF = 0.2

_T = TypeVar("_T")

_OPTIONS = (
    "project",
    "credentials",
    "credentials_file",
    "anonymous",
    "client",
    "timeout",
    "retry_deadline",
    "chunk_size",
)


def _unreachable(exc: BaseException) -> bool:
    """True when no connection could be opened at all (refused, unknown host).

    requests/urllib3 bury the socket error a few levels down (``__context__``, ``args``,
    ``reason``), so walk everything reachable from ``exc``.
    """
    stack: list[object] = [exc]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ConnectionRefusedError | socket.gaierror):
            return True
        stack += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return False


def _transient(exc: Exception) -> bool:
    """Retry what the SDK retries by default, except connections that could not be opened."""
    return bool(_sdk_should_retry(exc)) and not _unreachable(exc)


class _MalformedAnswer(Exception):
    """An answer that parsed but lacks what GCS always sends (e.g. a download without its
    generation, a range shorter than asked): the sign of a connection cut inside the headers."""


def _malformed(exc: BaseException) -> bool:
    """True for what the SDK raises when an answer is malformed rather than an error answer.

    A header block cut short (e.g. before ``Content-Type`` or ``Content-Length``) reaches the SDK
    as a 200 with an empty or non-JSON body: it then fails with ``ValueError`` (JSON decoding),
    or stores the body as bytes where a dict belongs and fails with ``AttributeError`` /
    ``TypeError`` when the resource is read. Credential and request-building errors share those
    base classes (``google.auth`` errors, ``requests.InvalidURL``): they are not transient.
    """
    if isinstance(exc, _MalformedAnswer | requests.JSONDecodeError):
        return True
    if isinstance(exc, auth_exc.GoogleAuthError | requests.RequestException):
        return False
    return isinstance(exc, AttributeError | ValueError | TypeError)


def _is_network(exc: BaseException) -> bool:
    return isinstance(
        exc, requests.ConnectionError | requests.Timeout | auth_exc.TransportError | ConnectionError
    )


def _reason(exc: BaseException) -> str:
    """A short one-line reason from an SDK exception (never request headers, so no token)."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, gexc.GoogleAPICallError):
        message = (exc.message or "").strip().splitlines()
        text = f"HTTP {exc.code} {message[0] if message else ''}".strip()
    elif isinstance(status, int):
        # The media layer's InvalidResponse, as it escapes a retry loop that ran out of time.
        text = f"HTTP {status} {_error_message(exc.response)}".strip()  # type: ignore[attr-defined]
    elif _unreachable(exc):
        text = "connection refused or host unknown"
    else:
        lines = str(exc).strip().splitlines()
        text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _error_message(response: Any) -> str:
    """The ``error.message`` of a JSON API error body, or ""."""
    try:
        message = response.json()["error"]["message"]
    except Exception:
        return ""
    return str(message).strip().splitlines()[0] if message else ""


class _Attempts:
    """Notes whether the SDK retried a request (used to resolve an ambiguous 412, see below)."""

    def __init__(self) -> None:
        self.retried = False

    def note(self, _exc: Exception) -> None:
        self.retried = True


class GCSStorage(Storage):
    """A shelf below ``gs://bucket/prefix``.

    ``client`` is a ``google.cloud.storage.Client``; ``read_only`` refuses every write before any
    request (anonymous clients cannot write). Thread-safe: the SDK client's HTTP session is shared
    by the transfer threads of one operation.
    """

    def __init__(
        self,
        location: GCSLocation,
        client: gcs.Client,
        *,
        url: str | None = None,
        read_only: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        retry_deadline: float = DEFAULT_RETRY_DEADLINE,
        chunk_size: int = UPLOAD_CHUNK_SIZE,
        owns_client: bool = True,
    ) -> None:
        self.url = url or location.url
        self.location = location
        self.client = client
        self.bucket = client.bucket(location.bucket)
        self.read_only = read_only
        self.timeout = timeout
        self.retry_deadline = retry_deadline
        self.chunk_size = chunk_size
        self._owns_client = owns_client
        # Set once the bucket is known to exist, so that a 404 is then always a missing key.
        self._bucket_known = False

    # --- helpers ---------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The API endpoint in use (``STORAGE_EMULATOR_HOST`` when set), for messages."""
        endpoint = getattr(self.client, "api_endpoint", None)
        return str(endpoint or self.client._connection.API_BASE_URL)

    def _name(self, key: str) -> str:
        return self.location.prefix + check_key(key)

    def _list_prefix(self, prefix: str) -> str:
        """Validate a listing prefix ("" or like a key, possibly ending with "/")."""
        if prefix:
            body = prefix[:-1] if prefix.endswith("/") else prefix
            if body:
                check_key(body)
            elif prefix == "/":
                check_key(prefix)  # raises: a bare "/" would be absolute
        return self.location.prefix + prefix

    def _retry(self, attempts: _Attempts | None = None) -> Retry:
        return Retry(
            predicate=_transient,
            initial=0.5,
            maximum=16.0,
            multiplier=2.0,
            timeout=self.retry_deadline,
            on_error=attempts.note if attempts is not None else None,
        )

    def _no_bucket(self) -> StorageError:
        return StorageError(
            f"bucket {self.location.bucket!r} of shelf {self.url} does not exist: create the "
            "bucket or check its name"
        )

    def _bucket_exists(self) -> bool:
        """Whether the bucket exists; asked at most until the first yes (a 404 is ambiguous)."""
        if self._bucket_known:
            return True
        try:
            exists = bool(
                self._sdk(
                    lambda: self.bucket.exists(timeout=self.timeout, retry=self._retry()),
                    "check the bucket of",
                )
            )
        except StorageError:
            raise
        except (gexc.Forbidden, gexc.Unauthorized, auth_exc.InvalidOperation):
            # Readers of a public bucket may get objects but not bucket metadata: assume it exists.
            exists = True
        except Exception as exc:
            raise self._error(exc, "check the bucket of") from None
        self._bucket_known = exists
        return exists

    def _not_found(self, key: str) -> KeyNotFound | StorageError:
        """Turn a 404 on an object into KeyNotFound, or the missing-bucket error."""
        if not self._bucket_exists():
            return self._no_bucket()
        return KeyNotFound(f"{key} not found in shelf {self.url}")

    def _error(
        self, exc: BaseException, action: str, key: str = "", *, write: bool = False
    ) -> StorageError:
        """Translate an SDK/network exception into a one-line modelshelf error."""
        what = f"{action} {key!r}" if key else f"{action} shelf"
        reason = _reason(exc)
        if isinstance(exc, auth_exc.InvalidOperation):
            # A 401 makes the SDK refresh its credentials; anonymous ones cannot, and say so.
            reason = "HTTP 401, and anonymous credentials cannot sign in"
        if isinstance(exc, gexc.Unauthorized | gexc.Forbidden | auth_exc.InvalidOperation):
            if write:
                return ReadOnlyShelf(
                    f"cannot {what}: shelf {self.url} is read-only for these credentials "
                    f"({reason}); use credentials that may create objects in bucket "
                    f"{self.location.bucket!r} (e.g. roles/storage.objectUser)"
                )
            return AccessDenied(
                f"cannot {what}: access to shelf {self.url} denied ({reason}); check the "
                f"credentials and their roles on bucket {self.location.bucket!r}"
            )
        if isinstance(exc, auth_exc.DefaultCredentialsError | auth_exc.RefreshError):
            return AccessDenied(
                f"cannot {what}: no usable Google credentials for shelf {self.url} ({reason}); "
                "set GOOGLE_APPLICATION_CREDENTIALS, pass credentials_file=, or anonymous=True "
                "for a public bucket"
            )
        if isinstance(exc, gexc.RetryError):
            cause = exc.cause if exc.cause is not None else exc
            return BackendUnavailable(
                f"cannot {what}: {self.endpoint} kept failing for {self.retry_deadline:g}s "
                f"(last error: {_reason(cause)}); shelf {self.url}, try again later"
            )
        if _is_network(exc):
            return BackendUnavailable(
                f"cannot {what}: cannot reach {self.endpoint} for shelf {self.url} ({reason}); "
                "check the network, or STORAGE_EMULATOR_HOST if you use an emulator"
            )
        return StorageError(f"cannot {what} in shelf {self.url}: {reason}")

    def _sdk(
        self,
        call: Callable[[], _T],
        action: str,
        key: str = "",
        *,
        attempts: _Attempts | None = None,
    ) -> _T:
        """Run ``call`` (SDK calls and checks of their answers only), retrying malformed answers.

        The SDK retries error answers and dropped connections itself, but takes an answer whose
        headers were cut short for a success and then trips over it (see :func:`_malformed`).
        Such a call is tried :data:`MALFORMED_ATTEMPTS` times, then fails with
        :class:`~modelshelf.errors.BackendUnavailable` naming the endpoint. Keep our own logic
        out of ``call``: its ``AttributeError``/``TypeError``/``ValueError`` would be mistaken for
        the network's. ``attempts`` is marked as retried, like the SDK's retries mark it.
        """
        last: BaseException | None = None
        for attempt in range(MALFORMED_ATTEMPTS):
            if attempt:
                if attempts is not None:
                    attempts.retried = True
                time.sleep(MALFORMED_BACKOFF * 2 ** (attempt - 1))
            try:
                return call()
            except Exception as exc:
                if not _malformed(exc):
                    raise
                last = exc
        what = f"{action} {key!r}" if key else f"{action} shelf"
        raise BackendUnavailable(
            f"cannot {what}: {self.endpoint} sent a malformed answer {MALFORMED_ATTEMPTS} times "
            f"(last: {_reason(last) if last else 'unknown'}); shelf {self.url}, try again later"
        ) from None

    @staticmethod
    def _loaded(blob: Any) -> Any:
        """``blob`` (or None) if its resource holds a generation; raises if the answer was bad.

        Reading the property raises ``AttributeError`` when the SDK stored a non-JSON body.
        """
        if blob is not None and blob.generation is None:
            raise _MalformedAnswer(f"no generation for {blob.name!r} in the answer")
        return blob

    def _check_writable(self, action: str, key: str) -> None:
        if self.read_only:
            raise ReadOnlyShelf(
                f"cannot {action} {key!r}: shelf {self.url} is opened anonymously, which is "
                "read-only; open it with credentials to write"
            )

    @staticmethod
    def _generation(blob: Any) -> str:
        if blob.generation is None:  # GCS always reports it; an odd proxy might not
            raise StorageError(f"GCS did not report the generation of {blob.name!r}")
        return str(blob.generation)

    def _info(self, blob: Any) -> ObjectInfo:
        key = blob.name[len(self.location.prefix) :]
        return ObjectInfo(key, int(blob.size or 0), self._generation(blob), blob.updated)

    def _small_blob(self, name: str) -> Any:
        """A blob for a small registry record (manifest, alias, marker): one simple upload."""
        blob = self.bucket.blob(name)
        blob.content_type = (
            "application/json" if name.endswith(".json") else "application/octet-stream"
        )
        # Publicly readable objects are cached by Google's edge for an hour by default; a reader
        # must never see an alias or a tombstoned manifest that stale.
        blob.cache_control = "no-cache"
        return blob

    def _holds(self, name: str, data: bytes) -> str | None:
        """Generation of ``name`` if it now holds exactly ``data``, else None.

        A conditional write whose first attempt succeeded but whose answer was lost is replayed by
        the retry, and the replay fails its precondition against our own write. Only in that case
        (the SDK did retry) do we check whether the object is ours.
        """

        def download() -> tuple[bytes, Any]:
            blob = self.bucket.blob(name)
            data = blob.download_as_bytes(timeout=self.timeout, retry=self._retry())
            return data, self._loaded(blob)  # without its generation, the answer was cut short

        try:
            current, blob = self._sdk(download, "check", name[len(self.location.prefix) :])
        except gexc.NotFound:
            return None
        except StorageError:
            # Cannot tell whether the write was ours: say so, never "exists"/"changed" (wrong).
            raise
        except Exception as exc:
            raise self._error(exc, "check", name[len(self.location.prefix) :]) from None
        return str(blob.generation) if current == data and blob.generation is not None else None

    # --- reads -----------------------------------------------------------------------------

    def read(self, key: str) -> StoredBytes:
        name = self._name(key)

        def download() -> tuple[bytes, Any]:
            blob = self.bucket.blob(name)
            data = blob.download_as_bytes(timeout=self.timeout, retry=self._retry())
            self._loaded(blob)  # a download answer without x-goog-generation was cut short
            return data, blob

        try:
            data, blob = self._sdk(download, "read", key)
        except gexc.NotFound:
            raise self._not_found(key) from None
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(exc, "read", key) from None
        # The download response carries the generation of exactly the bytes we got.
        return StoredBytes(data, self._generation(blob))

    def read_stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        # Not a generator itself: a missing key raises here, at the call, not at the first next().
        info = self._stat_blob(key)
        if info is None:
            raise self._not_found(key)
        return self._ranges(key, info.generation, int(info.size or 0), chunk_size)

    def _ranges(self, key: str, generation: int, size: int, chunk_size: int) -> Iterator[bytes]:
        step = max(DOWNLOAD_RANGE_SIZE, chunk_size)
        blob = self.bucket.blob(self._name(key), generation=generation)
        start = 0
        while start < size:
            end = min(start + step, size) - 1

            def download(start: int = start, end: int = end) -> bytes:
                # Checksums are per whole object, so none for a range; core verifies sha256.
                data = blob.download_as_bytes(
                    start=start, end=end, checksum=None, timeout=self.timeout, retry=self._retry()
                )
                if len(data) != end - start + 1:  # e.g. an answer cut before Content-Length
                    raise _MalformedAnswer(
                        f"short read: asked bytes {start}-{end}, got {len(data)}"
                    )
                return data

            try:
                data = self._sdk(download, "read", key)
            except gexc.NotFound:
                raise StorageError(
                    f"{key} in shelf {self.url} was replaced or deleted while being read; try again"
                ) from None
            except StorageError:
                raise
            except Exception as exc:
                raise self._error(exc, "read", key) from None
            for offset in range(0, len(data), chunk_size):
                yield data[offset : offset + chunk_size]
            start = end + 1

    def _stat_blob(self, key: str) -> Any:
        name = self._name(key)
        try:
            return self._sdk(
                lambda: self._loaded(
                    self.bucket.get_blob(name, timeout=self.timeout, retry=self._retry())
                ),
                "stat",
                key,
            )
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(exc, "stat", key) from None

    def stat(self, key: str) -> ObjectInfo | None:
        blob = self._stat_blob(key)
        if blob is None:
            if not self._bucket_exists():
                raise self._no_bucket()
            return None
        return self._info(blob)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        full = self._list_prefix(prefix)
        return self._list(prefix, full)

    def _pages(
        self, shown: str, **options: Any
    ) -> Iterator[tuple[tuple[Any, ...], tuple[str, ...]]]:
        """The pages of a listing, as (blobs, prefixes), each page fetched through :meth:`_sdk`.

        ``shown`` is the prefix as the caller gave it (for messages); ``options`` go to
        ``Client.list_blobs``.

        Pages are fetched one by one from the last page token, so that a malformed page can be
        asked for again (the SDK's page iterator cannot resume once it has raised).
        """
        token: str | None = None
        while True:

            def fetch(token: str | None = token) -> tuple[tuple[Any, ...], tuple[str, ...], Any]:
                iterator = self.client.list_blobs(
                    self.bucket,
                    page_size=PAGE_SIZE,
                    page_token=token,
                    timeout=self.timeout,
                    retry=self._retry(),
                    **options,
                )
                page = next(iterator.pages, None)
                if page is None:
                    return (), (), None
                blobs = tuple(self._loaded(blob) for blob in page)
                return blobs, tuple(page.prefixes), iterator.next_page_token

            blobs, prefixes, token = self._sdk(fetch, "list", shown)
            yield blobs, prefixes
            if not token:
                return

    def _list(self, prefix: str, full: str) -> Iterator[ObjectInfo]:
        pages = self._pages(
            prefix,
            prefix=full,
            # Only what ObjectInfo needs: a quarter of the bytes of a full listing.
            fields="items(name,size,generation,updated),nextPageToken",
        )
        try:
            for blobs, _ in pages:
                for blob in blobs:
                    yield self._info(blob)
        except gexc.NotFound:
            raise self._no_bucket() from None  # listing only 404s when the bucket is missing
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(exc, "list", prefix) from None

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        full = self._list_prefix(prefix)
        return self._list_prefixes(prefix, full)

    def _list_prefixes(self, prefix: str, full: str) -> Iterator[str]:
        pages = self._pages(prefix, prefix=full, delimiter="/", fields="prefixes,nextPageToken")
        cut = len(self.location.prefix)
        seen: set[str] = set()
        try:
            for _, prefixes in pages:
                for found in prefixes:
                    if found not in seen:
                        seen.add(found)
                        yield found[cut:]
        except gexc.NotFound:
            raise self._no_bucket() from None
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(exc, "list", prefix) from None

    # --- writes ----------------------------------------------------------------------------

    def put_file(self, key: str, path: Path) -> None:
        self._check_writable("write", key)
        name = self._name(key)

        def upload() -> None:
            # A fresh blob each time: after a malformed answer the old one holds a broken resource.
            blob = self.bucket.blob(name, chunk_size=self.chunk_size)
            blob.upload_from_filename(
                os.fspath(path),
                content_type="application/octet-stream",
                timeout=self.timeout,
                retry=self._retry(),
            )
            self._loaded(blob)

        try:
            # Blobs are content-addressed, so replaying an upload is harmless: retry it even
            # though the SDK's default retries unconditional uploads not at all.
            self._sdk(upload, "write", key)
        except gexc.NotFound:
            raise self._no_bucket() from None  # an upload only 404s when the bucket is missing
        except StorageError:
            raise
        except OSError as exc:
            if _is_network(exc):
                raise self._error(exc, "write", key, write=True) from None
            raise StorageError(f"cannot upload local file {os.fspath(path)!r}: {exc}") from None
        except Exception as exc:
            raise self._error(exc, "write", key, write=True) from None

    def put_if_absent(self, key: str, data: bytes) -> str:
        self._check_writable("create", key)
        name = self._name(key)
        attempts = _Attempts()
        try:
            written = self._sdk(
                lambda: self._upload_record(name, data, 0, attempts),
                "create",
                key,
                attempts=attempts,
            )
        except gexc.PreconditionFailed:
            if attempts.retried and (generation := self._holds(name, data)) is not None:
                return generation
            raise AlreadyExists(f"{key} already exists in shelf {self.url}") from None
        except gexc.NotFound:
            raise self._no_bucket() from None
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(exc, "create", key, write=True) from None
        return written

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        self._check_writable("replace", key)
        if not etag.isdigit() or int(etag) == 0:
            # Not a generation we handed out (0 would mean "create-only"): it cannot match.
            raise PreconditionFailed(f"{key} changed since it was read (shelf {self.url})")
        name = self._name(key)
        attempts = _Attempts()
        try:
            written = self._sdk(
                lambda: self._upload_record(name, data, int(etag), attempts),
                "replace",
                key,
                attempts=attempts,
            )
        except gexc.PreconditionFailed:
            if attempts.retried and (generation := self._holds(name, data)) is not None:
                return generation
            raise PreconditionFailed(
                f"{key} changed since it was read (shelf {self.url})"
            ) from None
        except gexc.NotFound:
            raise self._no_bucket() from None
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(exc, "replace", key, write=True) from None
        return written

    def _upload_record(
        self, name: str, data: bytes, if_generation_match: int, attempts: _Attempts
    ) -> str:
        """One conditional simple upload of a record; its new generation. For :meth:`_sdk`.

        A fresh blob each time: after a malformed answer the old one holds a broken resource.
        """
        blob = self._small_blob(name)
        blob.upload_from_string(
            data,
            # upload_from_string would otherwise send "text/plain" over blob.content_type
            content_type=blob.content_type,
            if_generation_match=if_generation_match,
            timeout=self.timeout,
            retry=self._retry(attempts),
        )
        return str(self._loaded(blob).generation)

    def delete(self, key: str) -> None:
        self._check_writable("delete", key)
        try:
            self.bucket.delete_blob(self._name(key), timeout=self.timeout, retry=self._retry())
        except gexc.NotFound:
            if not self._bucket_exists():
                raise self._no_bucket() from None
        except Exception as exc:
            raise self._error(exc, "delete", key, write=True) from None

    def touch(self, key: str) -> None:
        """Restart ``gc``'s grace period for a blob an upload is about to reference again.

        GCS sets an object's ``updated`` time (what :meth:`list` reports as ``modified``) on every
        metadata change, by the server's clock; patching one metadata field is a cheap way to
        refresh it without rewriting the content. A key deleted meanwhile is ignored: the
        uploader re-checks its blobs before publishing.
        """
        self._check_writable("touch", key)
        name = self._name(key)

        def patch() -> None:
            # A fresh blob each time: after a malformed answer the old one holds a broken resource.
            blob = self.bucket.blob(name)
            now = dt.datetime.now(dt.timezone.utc)  # noqa: UP017 - dt.UTC needs Python 3.11
            blob.metadata = {"modelshelf-touched": now.isoformat()}
            blob.patch(timeout=self.timeout, retry=self._retry())
            self._loaded(blob)

        try:
            self._sdk(patch, "touch", key)
        except gexc.NotFound:
            if not self._bucket_exists():
                raise self._no_bucket() from None
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(exc, "touch", key, write=True) from None

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        if self._owns_client:
            close = getattr(self.client, "close", None)
            if close is not None:
                close()

    def describe(self) -> str:
        return self.url


def _make_client(
    *,
    project: str | None,
    credentials: Any,
    credentials_file: str | os.PathLike[str] | None,
    anonymous: bool,
) -> gcs.Client:
    if anonymous:
        if credentials is not None or credentials_file is not None:
            raise StorageError(
                "anonymous=True cannot be combined with credentials= or credentials_file=; "
                "choose one"
            )
        return gcs.Client.create_anonymous_client()
    if credentials_file is not None:
        if credentials is not None:
            raise StorageError("pass credentials= or credentials_file=, not both")
        path = Path(credentials_file).expanduser()
        if not path.is_file():
            raise StorageError(
                f"credentials_file {os.fspath(path)!r} does not exist; give the path of a "
                "service account JSON key"
            )
        try:
            return gcs.Client.from_service_account_json(os.fspath(path), project=project)
        except (ValueError, KeyError, auth_exc.GoogleAuthError) as exc:
            # Never echo the exception: it may quote the key file's content.
            raise AccessDenied(
                f"credentials_file {os.fspath(path)!r} is not a valid service account JSON key "
                f"({type(exc).__name__}); download a new key or use another credential"
            ) from None
    try:
        return gcs.Client(project=project, credentials=credentials)
    except auth_exc.DefaultCredentialsError:
        raise AccessDenied(
            "no Google credentials found for gs:// shelves: run `gcloud auth application-default "
            "login`, set GOOGLE_APPLICATION_CREDENTIALS, pass credentials_file=, or anonymous=True "
            "for a public bucket"
        ) from None


def open_gcs(url: str, **options: Any) -> GCSStorage:
    """Open the shelf at ``gs://bucket/prefix``. Makes no request: problems show on first use.

    Options (keywords of ``modelshelf.open``):

    * ``project``: Google Cloud project of the client (default: the credentials' or the
      environment's); reading and writing objects does not depend on it.
    * ``credentials``: a ``google.auth.credentials.Credentials`` object.
    * ``credentials_file``: path of a service account JSON key.
    * ``anonymous=True``: no credentials, read-only (public buckets). Default: true when the
      environment variable ``MODELSHELF_GCS_ANONYMOUS`` is ``1``/``true``/``yes`` (for the CLI).
    * ``client``: a ready ``google.cloud.storage.Client`` (custom endpoint, session, ...); the
      caller keeps ownership and closes it.
    * ``timeout`` (seconds per request, default 60), ``retry_deadline`` (seconds to keep retrying
      transient failures, default 120), ``chunk_size`` (resumable upload piece in bytes, a
      multiple of 256 KiB, default 16 MiB).

    Without options, Application Default Credentials are used, and ``STORAGE_EMULATOR_HOST``
    (``http://host:port``) points the client at an emulator with anonymous credentials.
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise StorageError(
            f"unknown option(s) {', '.join(unknown)} for gs:// shelves; known options: "
            f"{', '.join(_OPTIONS)}"
        )
    location = parse_url(url)
    timeout = float(options.get("timeout", DEFAULT_TIMEOUT))
    retry_deadline = float(options.get("retry_deadline", DEFAULT_RETRY_DEADLINE))
    chunk_size = int(options.get("chunk_size", UPLOAD_CHUNK_SIZE))
    if timeout <= 0 or retry_deadline < 0:
        raise StorageError("timeout must be > 0 and retry_deadline >= 0 (seconds)")
    if chunk_size <= 0 or chunk_size % (256 << 10):
        raise StorageError(
            f"chunk_size {chunk_size} is not a positive multiple of 256 KiB (262144 bytes), "
            "which GCS resumable uploads require"
        )
    anonymous = options.get("anonymous")
    if anonymous is None:
        # The command line passes no options: let it read public buckets through the environment.
        anonymous = os.environ.get("MODELSHELF_GCS_ANONYMOUS", "").lower() in ("1", "true", "yes")
    if not isinstance(anonymous, bool):
        raise StorageError(f"anonymous must be True or False, not {anonymous!r}")
    client = options.get("client")
    if client is not None:
        if any(options.get(k) is not None for k in ("credentials", "credentials_file", "project")):
            raise StorageError(
                "client= already carries project and credentials; do not pass them as well"
            )
        owns_client = False
    else:
        client = _make_client(
            project=options.get("project"),
            credentials=options.get("credentials"),
            credentials_file=options.get("credentials_file"),
            anonymous=anonymous,
        )
        owns_client = True
    return GCSStorage(
        location,
        client,
        url=url.rstrip("/"),
        read_only=anonymous,
        timeout=timeout,
        retry_deadline=retry_deadline,
        chunk_size=chunk_size,
        owns_client=owns_client,
    )
