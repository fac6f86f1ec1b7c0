"""S3Storage: the modelshelf storage primitives on Amazon S3 and S3-compatible services.

This module imports boto3; the plugin imports it only when a shelf with an ``s3://`` URL is
opened. Every primitive is one or a few S3 requests:

========================  ===============================================================
``read``                  GetObject, body read whole (small records only)
``read_stream``           GetObject, body yielded in chunks; resumes with a Range request
                          pinned to the same ETag if the connection drops mid-body
``stat``                  HeadObject (404 -> ``None``)
``list``                  ListObjectsV2 through a paginator (no 1,000-key limit)
``list_prefixes``         ListObjectsV2 with ``Delimiter='/'``, paginated
``put_file``              boto3 managed transfer: multipart, parallel, constant memory;
                          S3 shows a multipart object only once it is complete
``put_if_absent``         PutObject ``IfNoneMatch='*'`` (412 -> AlreadyExists)
``put_if_match``          PutObject ``IfMatch=etag`` (412 or 404 -> PreconditionFailed)
``delete``                DeleteObject
========================  ===============================================================

Throttling (SlowDown, 503), 5xx and connection errors are retried by botocore's retry handler
with exponential backoff and jitter (``retry_mode`` / ``max_attempts`` options). What is left after
retries is mapped to a :mod:`modelshelf.errors` exception by :func:`_translate`, whose messages
name the shelf and the endpoint and never a credential.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import boto3
import botocore.config
import botocore.exceptions
import botocore.parsers
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
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

from .options import S3Options, _safe

#: Error codes meaning "these credentials are not valid", as opposed to "not allowed to do this".
_BAD_CREDENTIALS = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "RequestExpired",
        "RequestTimeTooSkewed",
    }
)
_FORBIDDEN = frozenset({"AccessDenied", "AllAccessDisabled", "AccountProblem", "403", "Forbidden"})
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_UNAVAILABLE = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "503",
        "500",
        "RequestTimeout",
        "Throttling",
    }
)
_NETWORK_ERRORS: tuple[type[Exception], ...] = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.HTTPClientError,
)


class _IncompleteAnswer(Exception):
    """An answer that parsed but lacks what every complete answer carries: a connection cut.

    ``http.client`` takes an EOF at a header-line boundary for the end of the headers, so an
    answer cut there looks complete but misses later headers (ETag, Content-Length...) and,
    without Content-Length, has an empty body. botocore does not retry these; we do, and what
    is left after the retries becomes :class:`~modelshelf.errors.BackendUnavailable`.
    """


#: Answers that a cut connection can produce and that deserve another try.
_TRANSIENT_ANSWERS: tuple[type[Exception], ...] = (
    _IncompleteAnswer,
    botocore.parsers.ResponseParserError,
)
#: How often one request whose answer came back incomplete is sent again.
_INCOMPLETE_ATTEMPTS = 4
#: How often a create-only PutObject answered 409 ConditionalRequestConflict is tried again.
#: S3 answers 409 while another conditional write to the same key is in flight; AWS's advice is
#: to retry, after which one of the writers gets 412.
_CONFLICT_ATTEMPTS = 6
#: How often ``read_stream`` resumes a body whose connection dropped.
_RESUME_ATTEMPTS = 3
#: ``touch`` leaves blobs modified more recently than this alone (see :meth:`S3Storage.touch`).
TOUCH_AFTER = dt.timedelta(hours=1)
#: The largest object one CopyObject request can copy.
_MAX_SINGLE_COPY = 5 * (1 << 30)


class S3Storage(Storage):
    """A shelf rooted at ``s3://bucket/prefix``.

    One boto3 Session and one client per storage: botocore clients are thread-safe, so the core's
    parallel transfers share it; Sessions are not, so none is shared across storages.
    """

    def __init__(self, options: S3Options) -> None:
        self.options = options
        self.url = options.url
        self.bucket = options.bucket
        self.root = options.root
        #: Set once the bucket has answered anything; until then a 404 on HeadObject may mean
        #: "no such bucket" (HEAD responses have no body to say which), so ``stat`` checks once.
        self._bucket_seen = False
        try:
            session = boto3.Session(profile_name=options.profile, region_name=options.region)
            s3_config: dict[str, Any] = {}
            if options.addressing_style:
                s3_config["addressing_style"] = options.addressing_style
            config = botocore.config.Config(
                retries={"mode": options.retry_mode, "total_max_attempts": options.max_attempts},
                connect_timeout=options.connect_timeout,
                read_timeout=options.read_timeout,
                max_pool_connections=max(options.max_pool_connections, options.max_concurrency),
                s3=s3_config or None,
                user_agent_extra="modelshelf-s3",
            )
            self.client = session.client("s3", endpoint_url=options.endpoint_url, config=config)
        except botocore.exceptions.ProfileNotFound:
            raise AccessDenied(
                f"AWS profile {options.profile!r} for shelf {self.url} is not in ~/.aws/config "
                "or ~/.aws/credentials: check the name or set AWS_PROFILE"
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise StorageError(
                f"cannot set up S3 access for shelf {self.url}: {type(exc).__name__}"
            ) from None
        self.endpoint = options.endpoint_url or self.client.meta.endpoint_url
        self.transfer_config = TransferConfig(
            multipart_threshold=options.multipart_threshold,
            multipart_chunksize=options.multipart_chunksize,
            max_concurrency=options.max_concurrency,
            use_threads=True,
        )

    # --- keys --------------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self.root + check_key(key)

    def _prefix(self, prefix: str) -> str:
        # An empty prefix lists the whole shelf; anything else must be a safe key fragment.
        if prefix:
            check_key(prefix.rstrip("/") or "/")
        return self.root + prefix

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.root) :]

    # --- reads -------------------------------------------------------------------------------

    def read(self, key: str) -> StoredBytes:
        """GetObject, whole body. For manifests, aliases and markers: small by design."""
        full = self._key(key)
        for attempt in range(_RESUME_ATTEMPTS + 1):
            try:
                # A failing request is retried by botocore already (max_attempts)...
                response = self.client.get_object(Bucket=self.bucket, Key=full)
            except Exception as exc:
                self._raise(exc, "read", key)
            try:
                data = response["Body"].read()
                # Without Content-Length (a cut header block) botocore cannot tell a short body:
                # an empty manifest with the real ETag would look like a damaged record.
                _check_object_answer(response, len(data))
                break
            except (*_NETWORK_ERRORS, *_TRANSIENT_ANSWERS) as exc:
                # ...but a body that breaks once it flows is not: read it again.
                response["Body"].close()
                if attempt == _RESUME_ATTEMPTS:
                    self._raise(exc, "read", key)
                _backoff(attempt)
            except Exception as exc:
                self._raise(exc, "read", key)
        self._bucket_seen = True
        return StoredBytes(data=data, etag=str(response["ETag"]))

    def read_stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """GetObject now (so a missing key raises here), then yield its body in chunks.

        If the connection drops mid-body, the rest is fetched with ``Range: bytes=N-`` and
        ``IfMatch`` on the first response's ETag, so a replaced object is never spliced in.
        """
        full = self._key(key)
        for attempt in range(_INCOMPLETE_ATTEMPTS):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=full)
            except Exception as exc:
                self._raise(exc, "read", key)
            try:
                # The size and ETag pin the resumes below: an answer without them is a cut one.
                _check_object_answer(response, None)
                break
            except _IncompleteAnswer as exc:
                response["Body"].close()
                if attempt + 1 == _INCOMPLETE_ATTEMPTS:
                    self._raise(exc, "read", key)
                _backoff(attempt)
        self._bucket_seen = True
        return self._stream(key, full, response, chunk_size)

    def _stream(
        self, key: str, full: str, response: dict[str, Any], chunk_size: int
    ) -> Iterator[bytes]:
        etag = response["ETag"]
        size = int(response["ContentLength"])
        offset = 0
        resumes = 0
        body = response["Body"]
        try:
            while True:
                try:
                    for chunk in body.iter_chunks(chunk_size):
                        offset += len(chunk)
                        yield chunk
                    if offset < size:
                        # urllib3 may end a truncated body without raising; treat it as a drop.
                        raise botocore.exceptions.IncompleteReadError(
                            actual_bytes=offset, expected_bytes=size
                        )
                    return
                except _NETWORK_ERRORS as exc:
                    body.close()
                    resumes += 1
                    if resumes > _RESUME_ATTEMPTS:
                        raise BackendUnavailable(
                            f"the connection to S3 endpoint {_safe(self.endpoint)} kept dropping "
                            f"while reading {key!r} from shelf {self.url} ({type(exc).__name__}, "
                            f"{_RESUME_ATTEMPTS} resumes): check the network and try again"
                        ) from None
                    time.sleep(min(2.0, 0.1 * 2**resumes) * random.random())
                    try:
                        response = self.client.get_object(
                            Bucket=self.bucket, Key=full, Range=f"bytes={offset}-", IfMatch=etag
                        )
                    except botocore.exceptions.ClientError as again:
                        if _code(again) in ("PreconditionFailed", "412", *_NOT_FOUND):
                            raise BackendUnavailable(
                                f"S3 object {key!r} on shelf {self.url} was replaced or deleted "
                                "while it was being read; read it again"
                            ) from None
                        self._raise(again, "read", key)
                    except Exception as again:
                        self._raise(again, "read", key)
                    body = response["Body"]
        finally:
            body.close()

    def stat(self, key: str) -> ObjectInfo | None:
        """HeadObject; ``None`` when the key does not exist."""
        full = self._key(key)
        for attempt in range(_INCOMPLETE_ATTEMPTS):
            try:
                response = self.client.head_object(Bucket=self.bucket, Key=full)
            except botocore.exceptions.ClientError as exc:
                if _code(exc) in _NOT_FOUND:
                    self._check_bucket()
                    return None
                self._raise(exc, "read", key)
            except Exception as exc:
                self._raise(exc, "read", key)
            try:
                _check_object_answer(response, None)
                break
            except _IncompleteAnswer as exc:
                if attempt + 1 == _INCOMPLETE_ATTEMPTS:
                    self._raise(exc, "read", key)
                _backoff(attempt)
        self._bucket_seen = True
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=str(response["ETag"]),
            modified=response.get("LastModified"),
        )

    def _check_bucket(self) -> None:
        """Once per storage, tell "no such key" from "no such bucket" after a bodiless 404."""
        if self._bucket_seen:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                self._raise_no_bucket()
            # 403: HeadBucket needs s3:ListBucket, which a reader may lack; the object answered.
        except Exception as exc:
            self._raise(exc, "read", None)
        self._bucket_seen = True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every key below ``prefix``, page after page (ListObjectsV2 returns 1,000 at most)."""
        full = self._prefix(prefix)
        for page in self._pages(prefix, Prefix=full):
            for item in page.get("Contents", ()):
                yield ObjectInfo(
                    key=self._relative(item["Key"]),
                    size=int(item["Size"]),
                    etag=str(item["ETag"]),
                    modified=item.get("LastModified"),
                )

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """Immediate "sub-directories" below ``prefix`` (``Delimiter='/'``), paginated."""
        full = self._prefix(prefix)
        for page in self._pages(prefix, Prefix=full, Delimiter="/"):
            for item in page.get("CommonPrefixes", ()):
                yield self._relative(item["Prefix"])

    def _pages(self, prefix: str, **request: str) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages, following continuation tokens, each one checked complete.

        Not botocore's paginator: a page whose answer was cut (an empty body reads as an empty
        listing, a truncated one does not parse) must be asked for again, not taken for "no keys"
        -- core would then report a model that exists as missing.
        """
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, **request}
            if token is not None:
                args["ContinuationToken"] = token
            for attempt in range(_INCOMPLETE_ATTEMPTS):
                try:
                    page = self.client.list_objects_v2(**args)
                    _check_list_answer(page)
                    break
                except _TRANSIENT_ANSWERS as exc:
                    if attempt + 1 == _INCOMPLETE_ATTEMPTS:
                        self._raise(exc, "list", prefix or None)
                    _backoff(attempt)
                except Exception as exc:
                    self._raise(exc, "list", prefix or None)
            self._bucket_seen = True
            yield page
            if not page["IsTruncated"]:
                return
            token = str(page["NextContinuationToken"])

    # --- writes ------------------------------------------------------------------------------

    def put_file(self, key: str, path: Path) -> None:
        """Managed upload: parts of ``multipart_chunksize`` sent by ``max_concurrency`` threads.

        Memory stays near ``max_concurrency * multipart_chunksize`` whatever the file size. A
        failed multipart upload is aborted by boto3, and S3 exposes the object only on completion.
        """
        full = self._key(key)
        try:
            self.client.upload_file(str(path), self.bucket, full, Config=self.transfer_config)
        except Exception as exc:
            self._raise(exc, "write", key)
        self._bucket_seen = True

    def put_if_absent(self, key: str, data: bytes) -> str:
        """PutObject with ``If-None-Match: *``: exactly one concurrent creator wins."""
        full = self._key(key)
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                response = self.client.put_object(
                    Bucket=self.bucket, Key=full, Body=data, IfNoneMatch="*"
                )
            except botocore.exceptions.ClientError as exc:
                code = _code(exc)
                if code in ("PreconditionFailed", "412"):
                    self._bucket_seen = True
                    mine = self._landed_earlier(exc, full, data)
                    if mine is not None:
                        return mine
                    raise AlreadyExists(f"{key!r} already exists on shelf {self.url}") from None
                if code == "ConditionalRequestConflict" and attempt + 1 < _CONFLICT_ATTEMPTS:
                    _backoff(attempt)
                    continue
                if code == "ConditionalRequestConflict":
                    # Another create of this key is still in flight after every retry. Saying
                    # "absent" would be a lie that could produce two winners; "exists" makes the
                    # caller re-read, which is always safe.
                    raise AlreadyExists(
                        f"{key!r} is being created concurrently on shelf {self.url}"
                    ) from None
                self._raise(exc, "write", key)
            except Exception as exc:
                self._raise(exc, "write", key)
            self._bucket_seen = True
            return self._etag_of_put(response, key, full, data)
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns/raises

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        """PutObject with ``If-Match: etag``: refused if the object changed or vanished."""
        full = self._key(key)
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=full, Body=data, IfMatch=etag)
        except botocore.exceptions.ClientError as exc:
            code = _code(exc)
            # 409: a concurrent conditional write to this key is in flight, so ours is stale too.
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", *_NOT_FOUND):
                self._bucket_seen = True
                mine = self._landed_earlier(exc, full, data)
                if mine is not None:
                    return mine
                raise PreconditionFailed(
                    f"{key!r} on shelf {self.url} changed or vanished since it was read"
                ) from None
            self._raise(exc, "write", key)
        except Exception as exc:
            self._raise(exc, "write", key)
        self._bucket_seen = True
        return self._etag_of_put(response, key, full, data)

    def _etag_of_put(self, response: dict[str, Any], key: str, full: str, data: bytes) -> str:
        """The ETag of a PutObject that succeeded, even when its answer lost the ETag header.

        The write landed (S3 said 200), so the object is read back: if it still holds exactly
        our bytes, its ETag is ours. Otherwise another writer replaced it meanwhile and no etag
        can be vouched for: the caller gets BackendUnavailable, never a guessed etag.
        """
        if response.get("ETag"):
            return str(response["ETag"])
        for attempt in range(_INCOMPLETE_ATTEMPTS):
            try:
                again = self.client.get_object(Bucket=self.bucket, Key=full)
                current = again["Body"].read()
                _check_object_answer(again, len(current))
            except (*_NETWORK_ERRORS, *_TRANSIENT_ANSWERS):
                _backoff(attempt)
                continue
            except Exception as exc:
                self._raise(exc, "read", key)
            if current == data:
                return str(again["ETag"])
            break
        raise BackendUnavailable(
            f"S3 endpoint {_safe(self.endpoint)} stored {key!r} on shelf {self.url} but its "
            "answer was cut (no ETag) and the object could not be confirmed: check the network "
            "and try again"
        ) from None

    def _landed_earlier(
        self, exc: botocore.exceptions.ClientError, full: str, data: bytes
    ) -> str | None:
        """After a retried conditional PUT was refused, tell whether our first attempt landed.

        When a connection drops after S3 applied a PutObject but before the answer arrived,
        botocore retries it, and the retry's condition fails against our own write. Reporting
        that as "someone else won" would make core claim a second version number for one upload.
        If the request was retried and the object now holds exactly our bytes (records carry a
        timestamp and the writer, so another writer's bytes differ), it is ours: return its etag.
        """
        retries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        if not retries:
            return None
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=full)
            current = response["Body"].read()
            _check_object_answer(response, len(current))
        except Exception:
            return None  # cannot tell: report the refusal, which is always safe
        return str(response["ETag"]) if current == data else None

    def delete(self, key: str) -> None:
        """DeleteObject; S3 answers 204 for a missing key too."""
        full = self._key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=full)
        except Exception as exc:
            self._raise(exc, "write", key)

    # --- optional hooks core uses when present -----------------------------------------------

    def touch(self, key: str) -> None:
        """Restart ``gc``'s grace period for a blob an upload is about to reference again.

        S3 has no "set LastModified": copying the object onto itself is the way. To keep re-uploads
        of big shared blobs cheap, a blob modified within :data:`TOUCH_AFTER` is left alone, which
        protects it from any ``gc`` whose grace is at least that long (the default is 24 hours).
        The copy happens server-side; nothing is transferred to or from this machine.
        """
        info = self.stat(key)
        if info is None or (
            info.modified is not None and dt.datetime.now(dt.UTC) - info.modified < TOUCH_AFTER
        ):
            return
        full = self._key(key)
        source = {"Bucket": self.bucket, "Key": full}
        try:
            if info.size <= _MAX_SINGLE_COPY:
                self.client.copy_object(
                    Bucket=self.bucket, Key=full, CopySource=source, MetadataDirective="REPLACE"
                )
            else:
                # CopyObject stops at 5 GiB; the managed copy does it in parts.
                self.client.copy(source, self.bucket, full, Config=self.transfer_config)
        except Exception as exc:
            self._raise(exc, "write", key)

    def cleanup(self, grace: dt.timedelta) -> None:
        """Abort multipart uploads below the shelf started more than ``grace`` ago (called by gc).

        boto3 aborts the uploads it fails, but a killed process leaves its parts behind, invisible
        to listings and billed by S3 until aborted.
        """
        cutoff = dt.datetime.now(dt.UTC) - grace
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.root):
                for upload in page.get("Uploads", ()):
                    if upload["Initiated"] <= cutoff:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in ("NoSuchUpload", "404"):
                return  # finished or aborted meanwhile: nothing left to clean
            self._raise(exc, "write", None)
        except Exception as exc:
            self._raise(exc, "write", None)

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the client's connection pool."""
        self.client.close()

    def describe(self) -> str:
        if self.options.endpoint_url:
            return f"{self.url} (endpoint {_safe(self.options.endpoint_url)})"
        return self.url

    def __repr__(self) -> str:
        return f"S3Storage({self.describe()!r})"

    # --- errors ------------------------------------------------------------------------------

    def _raise(self, exc: BaseException, action: str, key: str | None) -> NoReturn:
        """Raise the modelshelf error for ``exc`` (from boto3/botocore) and drop the chain.

        ``from None`` on purpose: botocore exceptions can carry request details, and a
        traceback is where a credential would leak first.
        """
        if isinstance(exc, StorageError | KeyNotFound):
            raise exc
        mapped = _translate(self, exc, action, key)
        if mapped is None:
            raise exc  # not a storage failure (a bug, KeyboardInterrupt...): keep it as it is
        raise mapped from None

    def _raise_no_bucket(self) -> NoReturn:
        raise StorageError(
            f"bucket {self.bucket!r} does not exist (shelf {self.url}"
            f"{self._endpoint_note()}): create it or check the name"
        ) from None

    def _endpoint_note(self) -> str:
        return f", endpoint {_safe(self.options.endpoint_url)}" if self.options.endpoint_url else ""


def _check_object_answer(response: dict[str, Any], body_length: int | None) -> None:
    """Raise :class:`_IncompleteAnswer` unless a GetObject/HeadObject answer is whole.

    Every S3 object answer carries ETag and Content-Length; a cut header block drops them (and
    every header after the cut). ``body_length``, when the body was read, must match.
    """
    missing = [name for name in ("ETag", "ContentLength") if response.get(name) is None]
    if missing or not response["ETag"]:
        raise _IncompleteAnswer(f"no {' or '.join(missing or ['ETag'])} header")
    if body_length is not None and body_length != int(response["ContentLength"]):
        raise _IncompleteAnswer(f"{body_length} of {int(response['ContentLength'])} body bytes")


def _check_list_answer(page: dict[str, Any]) -> None:
    """Raise :class:`_IncompleteAnswer` unless a ListObjectsV2 answer has its ListBucketResult.

    An empty body (the answer cut before Content-Length) parses to no fields at all, which
    botocore's paginator would take for an empty listing. ``IsTruncated`` is in every complete
    answer, and a truncated one must say where to continue.
    """
    if "IsTruncated" not in page:
        raise _IncompleteAnswer("no ListBucketResult in the listing answer")
    if page["IsTruncated"] and not page.get("NextContinuationToken"):
        raise _IncompleteAnswer("a truncated listing answer without NextContinuationToken")


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) or str(
        exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    )


def _backoff(attempt: int) -> None:
    # Full jitter, as AWS recommends, so racing writers spread out instead of colliding again.
    time.sleep(random.uniform(0, min(1.0, 0.05 * 2**attempt)))


def _unwrap(exc: BaseException) -> BaseException:
    """boto3's managed transfer wraps the real error in S3UploadFailedError; find it."""
    seen = 0
    while isinstance(exc, S3UploadFailedError) and seen < 5:
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
        seen += 1
    return exc


def _translate(
    storage: S3Storage, exc: BaseException, action: str, key: str | None
) -> Exception | None:
    """Map a boto3/botocore exception to a one-line modelshelf error. Never echo credentials.

    Returns ``None`` for exceptions that are not storage failures, which the caller re-raises.
    """
    exc = _unwrap(exc)
    shelf = storage.url
    where = f" {key!r}" if key else ""
    endpoint = storage.endpoint
    if isinstance(exc, botocore.exceptions.ClientError):
        code = _code(exc)
        if code == "NoSuchBucket":
            return StorageError(
                f"bucket {storage.bucket!r} does not exist (shelf {shelf}"
                f"{storage._endpoint_note()}): create it or check the name"
            )
        if code in _NOT_FOUND:
            return KeyNotFound(f"{key!r} does not exist on shelf {shelf}")
        if code in _BAD_CREDENTIALS:
            return AccessDenied(
                f"S3 refused the credentials for shelf {shelf} ({code}): check AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (an expired "
                "session needs a new login)"
            )
        if code in _FORBIDDEN:
            if action == "write":
                return ReadOnlyShelf(
                    f"shelf {shelf} is read-only for these credentials (S3 refused to {action}"
                    f"{where}): use credentials allowed s3:PutObject and s3:DeleteObject"
                )
            return AccessDenied(
                f"access denied to shelf {shelf} (S3 refused to {action}{where}): check that "
                "the credentials in use (AWS_PROFILE or AWS_ACCESS_KEY_ID) may read this bucket"
            )
        if code in ("PermanentRedirect", "301", "AuthorizationHeaderMalformed"):
            return StorageError(
                f"bucket {storage.bucket!r} is in another region than the one configured for "
                f"shelf {shelf} ({code}): pass region=... or set AWS_REGION"
            )
        if code in _UNAVAILABLE:
            return BackendUnavailable(
                f"S3 at {_safe(endpoint)} is unavailable for shelf {shelf} ({code}) after "
                f"{storage.options.max_attempts} attempts: try again later or raise max_attempts"
            )
        message = str(exc.response.get("Error", {}).get("Message", ""))[:200]
        return StorageError(
            f"S3 could not {action}{where} on shelf {shelf}: {code}"
            + (f" ({message})" if message else "")
        )
    if isinstance(
        exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return AccessDenied(
            f"no AWS credentials found for shelf {shelf}: set AWS_PROFILE (or pass profile=...), "
            "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an instance/container "
            "role is available"
        )
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        return AccessDenied(
            f"AWS profile for shelf {shelf} is not configured: check AWS_PROFILE or profile=..."
        )
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return StorageError(f"no AWS region for shelf {shelf}: pass region=... or set AWS_REGION")
    if isinstance(exc, _TRANSIENT_ANSWERS):
        # The parser's message quotes the answer body: name the failure, not the content.
        why = str(exc) if isinstance(exc, _IncompleteAnswer) else "an unparsable answer"
        return BackendUnavailable(
            f"S3 endpoint {_safe(endpoint)} kept sending incomplete answers to {action}{where} "
            f"on shelf {shelf} ({why}, {_INCOMPLETE_ATTEMPTS} tries): the connection is being "
            "cut (check the network, proxies, load balancers) and try again"
        )
    if isinstance(exc, _NETWORK_ERRORS):
        return BackendUnavailable(
            f"cannot reach S3 endpoint {_safe(endpoint)} for shelf {shelf} "
            f"({type(exc).__name__}, after {storage.options.max_attempts} attempts): check "
            "the network, endpoint_url / AWS_ENDPOINT_URL, and that the service is running"
        )
    if isinstance(exc, botocore.exceptions.BotoCoreError | S3UploadFailedError):
        return StorageError(f"S3 could not {action}{where} on shelf {shelf}: {type(exc).__name__}")
    if isinstance(exc, OSError) and action == "write":
        # A local file that cannot be read (put_file); the message names the local path only.
        return StorageError(f"cannot upload{where} to shelf {shelf}: {exc}")
    return None
