"""``gs://bucket/prefix`` shelf URLs and their options, checked without the SDK (before any I/O)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
from modelshelf.errors import StorageError
from modelshelf.objectstore import check_options, option_value

#: Resumable upload piece size. GCS needs a multiple of 256 KiB; memory use is about one piece.
UPLOAD_CHUNK_SIZE = 16 << 20
#: Seconds one HTTP request may take (connect, and each read) before it counts as failed.
DEFAULT_TIMEOUT = 60.0
#: Seconds to keep retrying a transient failure before giving up.
DEFAULT_RETRY_DEADLINE = 120.0

KNOWN_OPTIONS = (
    "project",
    "credentials",
    "credentials_file",
    "anonymous",
    "client",
    "timeout",
    "retry_deadline",
    "chunk_size",
)

#: GCS bucket names: lowercase letters, digits, ``-``, ``_`` and ``.``, starting and ending with a
#: letter or digit, 3 to 63 characters (up to 222 when dotted). The service enforces the details.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


@attrs.frozen
class GCSLocation:
    """Where a shelf lives: a bucket and a key prefix (``""`` or ending with ``/``)."""

    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        """The canonical ``gs://`` URL of the shelf root (no trailing slash)."""
        return f"gs://{self.bucket}/{self.prefix}".rstrip("/")


def parse_url(url: str) -> GCSLocation:
    """Split ``gs://bucket/some/prefix`` (or ``gcs://``) into bucket and prefix.

    Raises :class:`~modelshelf.errors.StorageError` with a one-line reason for anything else.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("gs", "gcs"):
        raise StorageError(f"not a Google Cloud Storage URL: {url!r}; use gs://bucket/prefix")
    if "@" in parts.netloc:
        # Never echo the URL: the part before "@" may be a secret.
        raise StorageError(
            "gs:// URLs cannot carry credentials; pass credentials= or credentials_file= to "
            "modelshelf.open, or set GOOGLE_APPLICATION_CREDENTIALS"
        )
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise StorageError(
            f"unexpected '?' or '#' in {url!r}: shelf options are keyword arguments of "
            "modelshelf.open, not URL parameters"
        )
    bucket = parts.netloc
    if not bucket:
        raise StorageError(f"no bucket in {url!r}; use gs://bucket/prefix")
    if not _BUCKET.fullmatch(bucket):
        raise StorageError(
            f"invalid bucket name {bucket!r} in {url!r}: GCS bucket names are 3-63 lowercase "
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    path = parts.path.strip("/")
    if path:
        segments = path.split("/")
        if any(s in ("", ".", "..") for s in segments) or "\\" in path or "\x00" in path:
            raise StorageError(
                f"invalid prefix {path!r} in {url!r}: use '/'-separated names without empty, "
                "'.' or '..' parts"
            )
        return GCSLocation(bucket, path + "/")
    return GCSLocation(bucket, "")


@attrs.frozen
class GCSOptions:
    """Everything a :class:`~modelshelf_gcs.storage.GCSStorage` needs to build its client."""

    location: GCSLocation
    #: The shelf URL as given (without a trailing slash), for messages.
    url: str
    project: str | None = None
    #: A ``google.auth`` credentials object, never shown.
    credentials: Any = attrs.field(default=None, repr=False)
    credentials_file: str | os.PathLike[str] | None = None
    #: No credentials, read-only (public buckets).
    anonymous: bool = False
    #: A ready ``google.cloud.storage.Client``, owned by the caller.
    client: Any = None
    timeout: float = DEFAULT_TIMEOUT
    retry_deadline: float = DEFAULT_RETRY_DEADLINE
    chunk_size: int = UPLOAD_CHUNK_SIZE


def parse(url: str, options: Mapping[str, Any]) -> GCSOptions:
    """Validate ``url`` and ``options`` (see :func:`modelshelf_gcs.open_storage`)."""
    check_options(options, KNOWN_OPTIONS, "gs:// shelves")
    location = parse_url(url)
    where = f"gs:// shelf {location.url}"
    timeout = option_value("timeout", options.get("timeout", DEFAULT_TIMEOUT), "seconds", where)
    deadline = options.get("retry_deadline", DEFAULT_RETRY_DEADLINE)
    deadline = option_value("retry_deadline", deadline, "seconds_or_zero", where)
    chunk_size = option_value(
        "chunk_size", options.get("chunk_size", UPLOAD_CHUNK_SIZE), "count", where
    )
    if chunk_size % (256 << 10):
        raise StorageError(
            f"chunk_size {chunk_size} is not a positive multiple of 256 KiB (262144 bytes), "
            "which GCS resumable uploads require"
        )
    anonymous = options.get("anonymous")
    if anonymous is None:
        # The command line passes no options: let it read public buckets through the environment.
        anonymous = os.environ.get("MODELSHELF_GCS_ANONYMOUS", "").lower() in ("1", "true", "yes")
    anonymous = option_value("anonymous", anonymous, "flag", where)
    client = options.get("client")
    if client is not None and any(
        options.get(k) is not None for k in ("credentials", "credentials_file", "project")
    ):
        raise StorageError(
            "client= already carries project and credentials; do not pass them as well"
        )
    return GCSOptions(
        location=location,
        url=url.rstrip("/"),
        project=options.get("project"),
        credentials=options.get("credentials"),
        credentials_file=options.get("credentials_file"),
        anonymous=anonymous,
        client=client,
        timeout=timeout,
        retry_deadline=deadline,
        chunk_size=chunk_size,
    )
