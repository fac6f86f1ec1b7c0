"""Parsing ``gs://bucket/prefix`` shelf URLs (no SDK import: bad URLs fail before any I/O)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import attrs
from modelshelf.errors import StorageError

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
