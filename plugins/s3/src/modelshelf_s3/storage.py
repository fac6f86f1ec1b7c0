"""S3Storage: the object-store primitives on Amazon S3 and S3-compatible services.

This module imports boto3; the plugin imports it only when a shelf with an ``s3://`` URL is
opened. The algorithms (retries of cut answers, paged listing, resumed reads pinned to the first
ETag, lost answers of conditional writes) live in :mod:`modelshelf.objectstore`; each primitive
here is one S3 request:

=================  ====================================================================
``_get``           GetObject, body read whole (small records only)
``_open_read``     GetObject, then ``Range: bytes=N-`` with ``IfMatch`` on the first ETag
``_read_range``    GetObject with ``Range: bytes=A-B`` and ``IfMatch`` (parallel ranges of large blobs)
``_head``          HeadObject
``_list_page``     ListObjectsV2 (``Delimiter='/'`` for prefixes), one page
``_put``           PutObject, ``IfNoneMatch='*'`` / ``IfMatch=etag`` when conditional
``_upload_file``   boto3 managed transfer: multipart, parallel, constant memory; S3 shows
                   a multipart object only once it is complete
``_delete``        DeleteObject
=================  ====================================================================

Throttling (SlowDown, 503), 5xx and connection errors are retried by botocore's retry handler
with exponential backoff and jitter (``retry_mode`` / ``max_attempts`` options). What is left is
mapped by :func:`modelshelf_s3._errors.translate`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from modelshelf import objectstore
from modelshelf.errors import AccessDenied, ModelshelfError, StorageError
from modelshelf.storage import ObjectInfo, StoredBytes

from . import _errors
from .options import _safe, parse

#: ``touch`` leaves blobs modified more recently than this alone (see :meth:`S3Storage._touch`).
TOUCH_AFTER = dt.timedelta(hours=1)
#: The largest object one CopyObject request can copy.
_MAX_SINGLE_COPY = 5 * (1 << 30)


class S3Storage(objectstore.ObjectStoreStorage):
    """A shelf rooted at ``s3://bucket/prefix``; options as for :func:`modelshelf_s3.open_storage`.

    One boto3 Session and one client per storage: botocore clients are thread-safe, so the core's
    parallel transfers share it; Sessions are not, so none is shared across storages.
    """

    service = "S3"

    def __init__(self, url: str, **options: Any) -> None:
        self.options = parsed = parse(url, options)
        self.url = parsed.url
        self.bucket = parsed.bucket
        self.root = parsed.root
        try:
            session = boto3.Session(profile_name=parsed.profile, region_name=parsed.region)
            s3_config: dict[str, Any] = {}
            if parsed.addressing_style:
                s3_config["addressing_style"] = parsed.addressing_style
            config = botocore.config.Config(
                retries={"mode": parsed.retry_mode, "total_max_attempts": parsed.max_attempts},
                connect_timeout=parsed.connect_timeout,
                read_timeout=parsed.read_timeout,
                max_pool_connections=max(parsed.max_pool_connections, parsed.max_concurrency),
                s3=s3_config or None,
                user_agent_extra="modelshelf-s3",
            )
            self.client = session.client("s3", endpoint_url=parsed.endpoint_url, config=config)
        except botocore.exceptions.ProfileNotFound:
            raise AccessDenied(
                f"AWS profile {parsed.profile!r} for shelf {self.url} is not in ~/.aws/config "
                "or ~/.aws/credentials: check the name or set AWS_PROFILE"
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise StorageError(
                f"cannot set up S3 access for shelf {self.url}: {type(exc).__name__}"
            ) from None
        self.endpoint = _safe(parsed.endpoint_url or self.client.meta.endpoint_url)
        self.transfer_config = TransferConfig(
            multipart_threshold=parsed.multipart_threshold,
            multipart_chunksize=parsed.multipart_chunksize,
            max_concurrency=parsed.max_concurrency,
            use_threads=True,
        )

    # --- primitives --------------------------------------------------------------------------

    def _get(self, name: str) -> StoredBytes:
        response = self.client.get_object(Bucket=self.bucket, Key=name)
        body = response["Body"]
        try:
            data = body.read()
        except _errors.NETWORK_ERRORS as exc:
            # botocore retries a failing request, not a body that breaks once it flows.
            raise objectstore.MalformedAnswer(
                f"the body broke off ({type(exc).__name__})"
            ) from None
        finally:
            body.close()
        # Without Content-Length (a cut header block) botocore cannot tell a short body.
        _check_object_answer(response, len(data))
        return StoredBytes(data=data, etag=str(response["ETag"]))

    def _open_read(
        self, name: str, start: int, pin: objectstore.ObjectRead | None, chunk_size: int
    ) -> objectstore.ObjectRead:
        etag = pin.etag if pin is not None else None
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        if etag is not None:
            request.update(Range=f"bytes={start}-", IfMatch=etag)
        try:
            response = self.client.get_object(**request)
        except botocore.exceptions.ClientError as exc:
            if etag is not None and _errors.code(exc) in (
                *_errors.PRECONDITION,
                *_errors.NOT_FOUND,
            ):
                raise objectstore.Replaced() from None
            raise
        body = response["Body"]
        try:
            # The size and ETag pin the resumes: an answer without them is a cut one.
            _check_object_answer(response, None)
        except objectstore.MalformedAnswer:
            body.close()
            raise

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(chunk_size)
            except _errors.NETWORK_ERRORS as exc:
                raise objectstore.MalformedAnswer(
                    f"the connection dropped ({type(exc).__name__})"
                ) from None

        size = start + int(response["ContentLength"])
        return objectstore.ObjectRead(size, str(response["ETag"]), chunks(), body.close)

    def _read_range(self, name: str, start: int, end: int, pin: objectstore.ObjectRead) -> bytes:
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=name, Range=f"bytes={start}-{end - 1}", IfMatch=pin.etag
            )
        except botocore.exceptions.ClientError as exc:
            if _errors.code(exc) in (*_errors.PRECONDITION, *_errors.NOT_FOUND):
                raise objectstore.Replaced() from None
            raise
        body = response["Body"]
        try:
            _check_object_answer(response, None)
            try:
                data: bytes = body.read()
            except _errors.NETWORK_ERRORS as exc:
                raise objectstore.MalformedAnswer(
                    f"the connection dropped ({type(exc).__name__})"
                ) from None
        finally:
            body.close()
        _check_object_answer(response, len(data))
        return data

    def _head(self, name: str) -> ObjectInfo:
        response = self.client.head_object(Bucket=self.bucket, Key=name)
        _check_object_answer(response, None)
        size, etag = int(response["ContentLength"]), str(response["ETag"])
        return ObjectInfo(name, size, etag, response.get("LastModified"))

    def _list_page(self, prefix: str, token: str | None, delimited: bool) -> objectstore.ListPage:
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimited:
            request["Delimiter"] = "/"
        if token:
            request["ContinuationToken"] = token
        page = self.client.list_objects_v2(**request)
        _check_list_answer(page)
        objects = [
            ObjectInfo(item["Key"], int(item["Size"]), str(item["ETag"]), item.get("LastModified"))
            for item in page.get("Contents", ())
        ]
        prefixes = [item["Prefix"] for item in page.get("CommonPrefixes", ())]
        return objectstore.ListPage(
            objects, prefixes, page.get("NextContinuationToken") if page["IsTruncated"] else None
        )

    def _put(
        self, name: str, data: bytes, *, if_none_match: bool, if_match: str | None
    ) -> str | None:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": name, "Body": data}
        if if_none_match:
            request["IfNoneMatch"] = "*"
        if if_match is not None:
            request["IfMatch"] = if_match
        try:
            response = self.client.put_object(**request)
        except botocore.exceptions.ClientError as exc:
            failed, again = _errors.code(exc), _errors.retried(exc)
            if if_none_match and failed in _errors.PRECONDITION:
                raise objectstore.Refused(create_only=True, retried=again) from None
            if if_match is not None and failed in (
                *_errors.PRECONDITION,
                *_errors.NOT_FOUND,
                "ConditionalRequestConflict",
            ):
                # 409: a concurrent conditional write to this key is in flight: ours is stale too.
                raise objectstore.Refused(create_only=False, retried=again) from None
            if if_none_match and failed == "ConditionalRequestConflict":
                # S3 answers 409 while another create of the key is in flight; AWS's advice is
                # to retry, after which one of the writers gets 412.
                raise objectstore.TryAgain(exc, maybe_applied=False) from None
            raise
        return str(response["ETag"]) if response.get("ETag") else None

    def _upload_file(self, name: str, path: Path) -> None:
        """Managed upload: parts of ``multipart_chunksize`` sent by ``max_concurrency`` threads;
        a failed multipart upload is aborted by boto3."""
        self.client.upload_file(str(path), self.bucket, name, Config=self.transfer_config)

    def _delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=name)  # 204 for a missing key too

    def _bucket_exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            # 403: HeadBucket needs s3:ListBucket, which a reader may lack; the object answered.
            return _errors.code(exc) not in ("404", "NoSuchBucket", "NotFound")
        return True

    def _touch(self, name: str) -> None:
        """S3 has no "set LastModified": the object is copied onto itself, server-side.

        To keep re-uploads of big shared blobs cheap, a blob modified within :data:`TOUCH_AFTER`
        is left alone, which protects it from any ``gc`` whose grace is at least that long.
        """
        info = self._head(name)
        if info.modified is not None and dt.datetime.now(dt.UTC) - info.modified < TOUCH_AFTER:
            return
        source = {"Bucket": self.bucket, "Key": name}
        if info.size <= _MAX_SINGLE_COPY:
            self.client.copy_object(
                Bucket=self.bucket, Key=name, CopySource=source, MetadataDirective="REPLACE"
            )
        else:  # CopyObject stops at 5 GiB; the managed copy does it in parts.
            self.client.copy(source, self.bucket, name, Config=self.transfer_config)

    def _is_malformed(self, exc: BaseException) -> bool:
        return isinstance(exc, objectstore.MalformedAnswer | _errors.UNPARSABLE)

    def _map_error(
        self, exc: BaseException, action: str, key: str, write: bool
    ) -> ModelshelfError | None:
        return _errors.translate(self, exc, action, key, write)

    def _no_bucket_error(self) -> StorageError:
        return _errors.no_bucket(self.bucket, self.url, self.options.endpoint_url)

    # --- housekeeping and lifecycle ----------------------------------------------------------

    def cleanup(self, older_than: dt.timedelta) -> None:
        """Abort multipart uploads below the shelf started more than ``older_than`` ago (gc).

        boto3 aborts the uploads it fails, but a killed process leaves its parts behind, invisible
        to listings and billed by S3 until aborted.
        """
        cutoff = dt.datetime.now(dt.UTC) - older_than
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.root):
                for upload in page.get("Uploads", ()):
                    if upload["Initiated"] <= cutoff:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
        except botocore.exceptions.ClientError as exc:
            if _errors.code(exc) not in ("NoSuchUpload", "404"):  # else finished meanwhile
                raise self._error(exc, "clean up", "", write=True) from None
        except Exception as exc:
            raise self._error(exc, "clean up", "", write=True) from None

    def close(self) -> None:
        """Close the client's connection pool."""
        self.client.close()

    def describe(self) -> str:
        if self.options.endpoint_url:
            return f"{self.url} (endpoint {_safe(self.options.endpoint_url)})"
        return self.url

    def __repr__(self) -> str:
        return f"S3Storage({self.describe()!r})"


def _check_object_answer(response: dict[str, Any], body_length: int | None) -> None:
    """Raise :class:`~modelshelf.objectstore.MalformedAnswer` unless a GetObject/HeadObject answer is whole.

    Every S3 object answer carries ETag and Content-Length; a cut header block drops them (and
    every header after the cut). ``body_length``, when the body was read, must match.
    """
    missing = [name for name in ("ETag", "ContentLength") if response.get(name) is None]
    if missing or not response["ETag"]:
        raise objectstore.MalformedAnswer(f"no {' or '.join(missing or ['ETag'])} header")
    if body_length is not None and body_length != int(response["ContentLength"]):
        raise objectstore.MalformedAnswer(
            f"{body_length} of {int(response['ContentLength'])} body bytes"
        )


def _check_list_answer(page: dict[str, Any]) -> None:
    """Raise :class:`~modelshelf.objectstore.MalformedAnswer` unless a ListObjectsV2 answer has its ListBucketResult.

    An empty body (the answer cut before Content-Length) parses to no fields at all, which would
    read as an empty listing. ``IsTruncated`` is in every complete answer, and a truncated one
    must say where to continue.
    """
    if "IsTruncated" not in page:
        raise objectstore.MalformedAnswer("no ListBucketResult in the listing answer")
    if page["IsTruncated"] and not page.get("NextContinuationToken"):
        raise objectstore.MalformedAnswer(
            "a truncated listing answer without NextContinuationToken"
        )
