"""Turn boto3/botocore exceptions into modelshelf errors a person can act on.

Pure functions, no I/O. Messages name the shelf and the endpoint, never a credential: botocore's
own texts are not repeated where they may quote a request or an answer body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import botocore.exceptions
import botocore.parsers
from boto3.exceptions import S3UploadFailedError
from modelshelf.errors import (
    AccessDenied,
    AlreadyExists,
    BackendUnavailable,
    KeyNotFound,
    ModelshelfError,
    PreconditionFailed,
    ReadOnlyShelf,
    StorageError,
)
from modelshelf.objectstore import Refused, Replaced
from modelshelf.objectstore import without_userinfo as safe

if TYPE_CHECKING:
    from .storage import S3Storage

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
#: Codes of a missing object (HEAD answers have no body, so only "404" there).
NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
#: Codes of a refused condition.
PRECONDITION = frozenset({"PreconditionFailed", "412"})
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
#: A connection that failed or broke off (botocore has retried these already).
NETWORK_ERRORS: tuple[type[Exception], ...] = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.HTTPClientError,
)
#: What botocore raises on an answer it cannot parse (a cut one, typically).
UNPARSABLE = botocore.parsers.ResponseParserError


def code(exc: botocore.exceptions.ClientError) -> str:
    """The S3 error code, or the HTTP status when the answer had no body (HEAD)."""
    return str(exc.response.get("Error", {}).get("Code", "")) or str(
        exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    )


def retried(exc: botocore.exceptions.ClientError) -> bool:
    """Whether botocore sent the request more than once before this answer."""
    return bool(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0))


def no_bucket(bucket: str, shelf: str, endpoint_url: str | None) -> StorageError:
    note = f", endpoint {safe(endpoint_url)}" if endpoint_url else ""
    return StorageError(
        f"bucket {bucket!r} does not exist (shelf {shelf}{note}): create it or check the name"
    )


def _unwrap(exc: BaseException) -> BaseException:
    """boto3's managed transfer wraps the real error in S3UploadFailedError; find it."""
    for _ in range(5):
        inner = exc.__cause__ or exc.__context__
        if not isinstance(exc, S3UploadFailedError) or inner is None:
            break
        exc = inner
    return exc


def translate(
    storage: S3Storage, exc: BaseException, action: str, key: str, write: bool
) -> ModelshelfError | None:
    """Map one exception raised while doing ``action`` on ``key`` of ``storage`` to a one-line
    modelshelf error; ``None`` for exceptions that are not storage failures (kept as they are)."""
    shelf, bucket, endpoint = storage.url, storage.bucket, storage.endpoint
    endpoint_url, max_attempts = storage.options.endpoint_url, storage.options.max_attempts
    exc = _unwrap(exc)
    where = f" {key!r}" if key else ""
    if isinstance(exc, Refused):
        if exc.create_only:
            return AlreadyExists(f"{key!r} already exists on shelf {shelf}")
        return PreconditionFailed(f"{key!r} on shelf {shelf} changed or vanished since it was read")
    if isinstance(exc, Replaced):
        return BackendUnavailable(
            f"S3 object {key!r} on shelf {shelf} was replaced or deleted while it was being read; "
            "read it again"
        )
    if isinstance(exc, botocore.exceptions.ClientError):
        failed = code(exc)
        if failed == "NoSuchBucket":
            return no_bucket(bucket, shelf, endpoint_url)
        if failed in NOT_FOUND:
            return KeyNotFound(f"{key!r} does not exist on shelf {shelf}")
        if failed == "ConditionalRequestConflict":
            # Another create of this key stayed in flight through every retry. Saying "absent"
            # could make two winners; "exists" makes the caller re-read, which is always safe.
            return AlreadyExists(f"{key!r} is being created concurrently on shelf {shelf}")
        if failed in _BAD_CREDENTIALS:
            return AccessDenied(
                f"S3 refused the credentials for shelf {shelf} ({failed}): check AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (an expired "
                "session needs a new login)"
            )
        if failed in _FORBIDDEN:
            if write:
                return ReadOnlyShelf(
                    f"shelf {shelf} is read-only for these credentials (S3 refused to {action}"
                    f"{where}): use credentials allowed s3:PutObject and s3:DeleteObject"
                )
            return AccessDenied(
                f"access denied to shelf {shelf} (S3 refused to {action}{where}): check that "
                "the credentials in use (AWS_PROFILE or AWS_ACCESS_KEY_ID) may read this bucket"
            )
        if failed in ("PermanentRedirect", "301", "AuthorizationHeaderMalformed"):
            return StorageError(
                f"bucket {bucket!r} is in another region than the one configured for shelf "
                f"{shelf} ({failed}): pass region=... or set AWS_REGION"
            )
        if failed in _UNAVAILABLE:
            return BackendUnavailable(
                f"S3 at {safe(endpoint)} is unavailable for shelf {shelf} ({failed}) after "
                f"{max_attempts} attempts: try again later or raise max_attempts"
            )
        message = str(exc.response.get("Error", {}).get("Message", ""))[:200]
        return StorageError(
            f"S3 could not {action}{where} on shelf {shelf}: {failed}"
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
    if isinstance(exc, NETWORK_ERRORS):
        return BackendUnavailable(
            f"cannot reach S3 endpoint {safe(endpoint)} for shelf {shelf} "
            f"({type(exc).__name__}, after {max_attempts} attempts): check the network, "
            "endpoint_url / AWS_ENDPOINT_URL, and that the service is running"
        )
    if isinstance(exc, botocore.exceptions.BotoCoreError | S3UploadFailedError):
        return StorageError(f"S3 could not {action}{where} on shelf {shelf}: {type(exc).__name__}")
    return None
