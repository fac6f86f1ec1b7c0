"""Turn google-cloud-storage exceptions into modelshelf errors, and classify them for retries.

Pure functions, no I/O. Messages carry a short reason (an HTTP status and the service's first
message line), never request headers, so never a token.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from modelshelf import errors
from modelshelf.objectstore import MalformedAnswer

if TYPE_CHECKING:
    from .storage import GCSStorage

try:  # the predicate behind google.cloud.storage.retry.DEFAULT_RETRY
    from google.cloud.storage.retry import _should_retry as _sdk_should_retry
except ImportError:  # pragma: no cover - a future SDK renamed it; keep its public default
    from google.cloud.storage.retry import DEFAULT_RETRY as _DEFAULT

    _sdk_should_retry = _DEFAULT._predicate

#: Actions on one object, where a 404 may mean "no such key" or "no such bucket".
_OBJECT_ACTIONS = frozenset({"read", "stat", "check", "delete", "touch"})


def unreachable(exc: BaseException) -> bool:
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


def transient(exc: Exception) -> bool:
    """Retry what the SDK retries by default, except connections that could not be opened:
    that endpoint is wrong or down, and the user should hear so at once."""
    return bool(_sdk_should_retry(exc)) and not unreachable(exc)


def is_malformed(exc: BaseException) -> bool:
    """True for what the SDK raises when an answer is malformed rather than an error answer.

    A header block cut short (e.g. before ``Content-Type`` or ``Content-Length``) reaches the SDK
    as a 200 with an empty or non-JSON body: it then fails with ``ValueError`` (JSON decoding),
    or stores the body as bytes where a dict belongs and fails with ``AttributeError`` /
    ``TypeError`` when the resource is read. Credential and request-building errors share those
    base classes (``google.auth`` errors, ``requests.InvalidURL``): they are not transient.
    """
    if isinstance(exc, MalformedAnswer | requests.JSONDecodeError):
        return True
    if isinstance(exc, auth_exc.GoogleAuthError | requests.RequestException):
        return False
    return isinstance(exc, AttributeError | ValueError | TypeError)


def _is_network(exc: BaseException) -> bool:
    return isinstance(
        exc, requests.ConnectionError | requests.Timeout | auth_exc.TransportError | ConnectionError
    )


def reason(exc: BaseException) -> str:
    """A short one-line reason from an SDK exception (never request headers, so no token)."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, gexc.GoogleAPICallError):
        message = (exc.message or "").strip().splitlines()
        text = f"HTTP {exc.code} {message[0] if message else ''}".strip()
    elif isinstance(status, int):
        # The media layer's InvalidResponse, as it escapes a retry loop that ran out of time.
        text = f"HTTP {status} {_error_message(exc.response)}".strip()  # type: ignore[attr-defined]
    elif unreachable(exc):
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


def no_bucket(bucket: str, shelf: str) -> errors.StorageError:
    return errors.StorageError(
        f"bucket {bucket!r} of shelf {shelf} does not exist: create the bucket or check its name"
    )


def translate(
    storage: GCSStorage, exc: BaseException, action: str, key: str, write: bool
) -> errors.ModelshelfError | None:
    """Map one exception raised while doing ``action`` on ``key`` of ``storage`` to a one-line
    modelshelf error; ``None`` for what is neither a Google nor an HTTP library exception."""
    shelf, bucket, endpoint = storage.url, storage.location.bucket, storage.endpoint
    what = f"{action} {key!r}" if key else f"{action} shelf"
    if isinstance(exc, gexc.NotFound):
        if action in _OBJECT_ACTIONS:
            return errors.KeyNotFound(f"{key} not found in shelf {shelf}")
        return no_bucket(bucket, shelf)  # listings and uploads only 404 without a bucket
    why = reason(exc)
    if isinstance(exc, auth_exc.InvalidOperation):
        # A 401 makes the SDK refresh its credentials; anonymous ones cannot, and say so.
        why = "HTTP 401, and anonymous credentials cannot sign in"
    if isinstance(exc, gexc.Unauthorized | gexc.Forbidden | auth_exc.InvalidOperation):
        if write:
            return errors.ReadOnlyShelf(
                f"cannot {what}: shelf {shelf} is read-only for these credentials ({why}); use "
                f"credentials that may create objects in bucket {bucket!r} (e.g. "
                "roles/storage.objectUser)"
            )
        return errors.AccessDenied(
            f"cannot {what}: access to shelf {shelf} denied ({why}); check the credentials and "
            f"their roles on bucket {bucket!r}"
        )
    if isinstance(exc, auth_exc.DefaultCredentialsError | auth_exc.RefreshError):
        return errors.AccessDenied(
            f"cannot {what}: no usable Google credentials for shelf {shelf} ({why}); set "
            "GOOGLE_APPLICATION_CREDENTIALS, pass credentials_file=, or anonymous=True for a "
            "public bucket"
        )
    if isinstance(exc, gexc.RetryError):
        cause = exc.cause if exc.cause is not None else exc
        return errors.BackendUnavailable(
            f"cannot {what}: {endpoint} kept failing for {storage.retry_deadline:g}s (last error: "
            f"{reason(cause)}); shelf {shelf}, try again later"
        )
    if _is_network(exc):
        return errors.BackendUnavailable(
            f"cannot {what}: cannot reach {endpoint} for shelf {shelf} ({why}); check the "
            "network, or STORAGE_EMULATOR_HOST if you use an emulator"
        )
    if isinstance(exc, OSError):
        return None  # a local file: core names it
    if isinstance(
        exc, gexc.GoogleAPICallError | auth_exc.GoogleAuthError | requests.RequestException
    ):
        return errors.StorageError(f"cannot {what} in shelf {shelf}: {why}")
    if type(exc).__module__.startswith(("google.", "requests.", "urllib3.")):
        return errors.StorageError(f"cannot {what} in shelf {shelf}: {why}")
    return None
