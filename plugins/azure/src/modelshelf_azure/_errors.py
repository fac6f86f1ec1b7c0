"""Turn Azure SDK exceptions into modelshelf errors a person can act on.

The SDK's own messages are never copied: a connection error's text can contain the request URL
with its SAS query string, and a service error carries a multi-line XML body. Messages are built
from the HTTP status and the service's error code instead, which never hold a secret.
"""

from __future__ import annotations

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from modelshelf.errors import (
    AccessDenied,
    BackendUnavailable,
    KeyNotFound,
    ModelshelfError,
    ReadOnlyShelf,
    StorageError,
)
from modelshelf.objectstore import MalformedAnswer, Replaced

#: What the SDK raises, besides AzureError, on an answer cut short or otherwise malformed:
#: ``ValueError`` ("Required Content-Range response header is missing"; ``DeserializationError``
#: is a subclass), ``TypeError`` and ``AttributeError`` (a ``None`` where a parsed value was
#: expected, e.g. a listing page), ``KeyError`` (a missing response header).
MALFORMED = (ValueError, TypeError, AttributeError, KeyError, MalformedAnswer)
#: Failures after which a write may or may not have been applied by the service.
UNCERTAIN_STATUS = frozenset({408, 500, 502, 504})
#: Failures after which a write was certainly not applied, and which are worth retrying.
RETRYABLE_STATUS = frozenset({429, 503})

#: 403 error codes that mean "you may read but not do this", as opposed to bad credentials.
_PERMISSION_CODES = frozenset(
    {
        "AuthorizationPermissionMismatch",
        "AuthorizationResourceTypeMismatch",
        "AuthorizationServiceMismatch",
        "AuthorizationProtocolMismatch",
        "AuthorizationSourceIPMismatch",
    }
)

#: Errors raised while writing that mean the data is locked against changes.
_IMMUTABLE_CODES = frozenset(
    {"BlobImmutableDueToPolicy", "BlobImmutableDueToLegalHold", "ContainerBeingDeleted"}
)

#: Fragments of connection-error texts worth repeating (they never contain a URL or a secret).
_REASONS = (
    ("refused", "connection refused"),
    ("Name or service not known", "host name not found"),
    ("nodename nor servname", "host name not found"),
    ("Temporary failure in name resolution", "host name not found"),
    ("getaddrinfo failed", "host name not found"),
    ("timed out", "timed out"),
    ("Timeout", "timed out"),
    ("reset by peer", "connection reset"),
    ("RemoteDisconnected", "connection closed by the server"),
    ("Connection aborted", "connection aborted"),
    ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed"),
    ("SSL", "TLS error"),
)


def error_code(exc: HttpResponseError) -> str:
    """The service's error code (``ContainerNotFound``...), or ``""`` when there is none."""
    code = getattr(exc, "error_code", None)
    if code:
        return str(getattr(code, "value", code))
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return str(headers.get("x-ms-error-code", ""))


def status_code(exc: HttpResponseError) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None and getattr(exc, "response", None) is not None:
        status = getattr(exc.response, "status_code", None)
    return status


def short_reason(exc: BaseException) -> str:
    """A few safe words on why a connection failed, without the SDK's message (it holds URLs)."""
    text = f"{type(exc).__name__} {exc}"
    inner = getattr(exc, "inner_exception", None)
    if inner is not None:
        text += f" {type(inner).__name__} {inner}"
    for fragment, reason in _REASONS:
        if fragment in text:
            return reason
    return type(exc).__name__


def refused(exc: HttpResponseError, *, create_only: bool) -> bool:
    """Whether a conditional Put Blob failed because its condition did not hold."""
    if error_code(exc) == "ContainerNotFound":
        return False
    if create_only and isinstance(exc, ResourceExistsError):
        return True
    if not create_only and isinstance(exc, ResourceModifiedError | ResourceNotFoundError):
        return True
    return status_code(exc) in (409, 412)


def translate(
    exc: BaseException, *, shelf: str, account: str, action: str, key: str, write: bool
) -> ModelshelfError | None:
    """Map one exception raised while doing ``action`` on ``key`` to a modelshelf error.

    ``shelf`` is the shelf URL and ``account`` the account URL without query (both safe to show).
    ``write`` tells whether the operation changes the shelf, so a permission refusal on a write is
    a :class:`ReadOnlyShelf`. Callers raise the result ``from None``: the SDK exception's text is
    not safe to chain into a traceback that may be logged.
    """
    where = f"{action} {key!r}" if key else action
    if isinstance(exc, Replaced):
        return StorageError(f"shelf {shelf}: {key} was replaced while being downloaded; try again")
    if type(exc).__name__ == "AzureSigningError":
        return AccessDenied(
            f"shelf {shelf}: the account key in use cannot sign requests (it is not valid "
            "base64): check AccountKey in the connection string"
        )
    if not isinstance(exc, AzureError):
        return None
    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "response", None) is None:
        # No HTTP response: the credential itself failed to produce a token (azure-identity).
        return AccessDenied(
            f"shelf {shelf}: could not get an Azure token to {where} ({type(exc).__name__}): sign "
            "in (az login), configure a managed or workload identity, or use a connection string "
            "or SAS token instead"
        )
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return BackendUnavailable(
            f"shelf {shelf}: cannot reach the Azure Blob service at {account} to {where} "
            f"({short_reason(exc)}): check the account URL or endpoint, the network, and that the "
            "service is running"
        )
    if isinstance(exc, HttpResponseError):
        status = status_code(exc)
        code = error_code(exc)
        detail = f"HTTP {status} {code}".strip()
        if code == "ContainerNotFound":
            container = shelf.split("://", 1)[-1].split("/", 1)[0]
            return StorageError(
                f"shelf {shelf}: container {container!r} does not exist at {account}: create the "
                "container or check its name"
            )
        if status == 404 and code in ("BlobNotFound", "ResourceNotFound", ""):
            return KeyNotFound(f"{key} not found in shelf {shelf}")
        if status in (401, 403):
            if write and code in _PERMISSION_CODES:
                return ReadOnlyShelf(
                    f"shelf {shelf} is read-only for these credentials ({detail} on {where}): "
                    "use a SAS token with create, write and delete permissions, or a role such "
                    "as Storage Blob Data Contributor"
                )
            return AccessDenied(
                f"shelf {shelf}: access denied by {account} ({detail} on {where}): check the "
                "account key, SAS token (permissions, expiry) or role assignment"
            )
        if write and code in _IMMUTABLE_CODES:
            return ReadOnlyShelf(
                f"shelf {shelf} is read-only: Azure refused to {where} ({detail}): the container "
                "has an immutability policy or legal hold"
            )
        if status is not None and (status >= 500 or status in (408, 429)):
            return BackendUnavailable(
                f"shelf {shelf}: the Azure Blob service at {account} failed to {where} ({detail}) "
                "after retries: try again later"
            )
        return StorageError(f"shelf {shelf}: Azure refused to {where} ({detail})")
    return StorageError(
        f"shelf {shelf}: Azure SDK error while trying to {where} ({type(exc).__name__})"
    )
