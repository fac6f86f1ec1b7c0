"""Parse an ``s3://bucket/prefix`` shelf URL and its options, without importing boto3.

Options come from keyword arguments to ``modelshelf.open`` or from the URL query string
(``s3://bucket/prefix?region=eu-west-1&endpoint_url=http://127.0.0.1:9000``); a keyword wins over
the same name in the query. Every value is checked here, so a typo fails before any network I/O
with a one-line :class:`~modelshelf.errors.StorageError` naming the option.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs
from modelshelf.errors import InvalidName, StorageError
from modelshelf.objectstore import check_options, option_value
from modelshelf.objectstore import without_userinfo as _safe

MiB = 1 << 20

# Bucket names per the S3 rules (3-63 chars, lowercase, digits, dots, hyphens). Legacy us-east-1
# buckets may contain uppercase and underscores; accept those too rather than lock users out.
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
_RETRY_MODES = ("standard", "adaptive", "legacy")
_ADDRESSING = ("auto", "path", "virtual")


@attrs.frozen
class S3Options:
    """Everything an :class:`~modelshelf_s3.storage.S3Storage` needs to build its client."""

    bucket: str
    #: Key prefix of the shelf root inside the bucket: ``""`` or ``"some/path/"`` (ends with ``/``).
    root: str
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    addressing_style: str | None = None
    #: Threads used by one multipart upload.
    max_concurrency: int = 8
    #: Files at least this big are uploaded in parts (and in parallel).
    multipart_threshold: int = 16 * MiB
    #: Part size. 8 MiB keeps peak memory near ``max_concurrency * multipart_chunksize``; boto3
    #: grows it automatically for files that would need more than 10,000 parts.
    multipart_chunksize: int = 8 * MiB
    retry_mode: str = "standard"
    #: Total attempts per request, the first one included.
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_pool_connections: int = 16

    @property
    def url(self) -> str:
        """The shelf URL for messages: no query string, so nothing but bucket and prefix."""
        return f"s3://{self.bucket}/{self.root}".rstrip("/") if self.root else f"s3://{self.bucket}"


_INT_OPTIONS = (
    "max_concurrency",
    "multipart_threshold",
    "multipart_chunksize",
    "max_attempts",
    "max_pool_connections",
)
_FLOAT_OPTIONS = ("connect_timeout", "read_timeout")
_STR_OPTIONS = ("region", "profile", "endpoint_url", "addressing_style", "retry_mode")
#: Friendlier spellings people type, mapped to the canonical name.
_ALIASES = {
    "region_name": "region",
    "aws_profile": "profile",
    "endpoint": "endpoint_url",
    "chunk_size": "multipart_chunksize",
    "chunksize": "multipart_chunksize",
    "multipart_chunk_size": "multipart_chunksize",
    "retries": "max_attempts",
}
KNOWN_OPTIONS = (*_STR_OPTIONS, *_INT_OPTIONS, *_FLOAT_OPTIONS)
_KIND = {
    **dict.fromkeys(_STR_OPTIONS, "text"),
    **dict.fromkeys(_INT_OPTIONS, "count"),
    **dict.fromkeys(_FLOAT_OPTIONS, "seconds"),
}


def parse(url: str, options: Mapping[str, Any]) -> S3Options:
    """Validate ``url`` and ``options`` and return the resolved :class:`S3Options`.

    ``endpoint_url`` defaults to ``AWS_ENDPOINT_URL_S3`` then ``AWS_ENDPOINT_URL`` (boto3 reads
    those too; resolving here lets messages name the endpoint). ``None`` values mean "default".
    """
    if "@" in url:
        # Never echo such a URL: the part before '@' may be a secret key (which may even contain
        # '/', so URL parsing cannot be trusted to find it).
        raise StorageError(
            "an s3:// shelf URL must not contain credentials; use AWS_PROFILE, "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile= option instead"
        )
    parts = urlsplit(url)
    if parts.scheme.lower() != "s3":
        raise InvalidName(f"not an S3 shelf URL: {url!r}; write s3://bucket/prefix")
    bucket = parts.netloc
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise InvalidName(
            f"invalid S3 bucket name {bucket!r} in {_safe(url)!r}; write s3://bucket/prefix"
        )
    segments = [s for s in parts.path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise InvalidName(f"invalid S3 prefix in {_safe(url)!r}: '.' and '..' are not allowed")
    root = "/".join(segments) + "/" if segments else ""

    merged: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        merged[_ALIASES.get(key, key)] = value
    for key, value in options.items():
        if value is not None:
            merged[_ALIASES.get(key, key)] = value

    where = f"s3 shelf {_plain(bucket, root)}"
    check_options(merged, KNOWN_OPTIONS, where)
    values = {key: option_value(key, value, _KIND[key], where) for key, value in merged.items()}

    if "endpoint_url" not in values:
        env = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if env:
            values["endpoint_url"] = env
    if values.get("retry_mode", "standard") not in _RETRY_MODES:
        raise StorageError(
            f"option retry_mode={values['retry_mode']!r} for {_plain(bucket, root)} "
            f"must be one of {', '.join(_RETRY_MODES)}"
        )
    if values.get("addressing_style") not in (None, *_ADDRESSING):
        raise StorageError(
            f"option addressing_style={values['addressing_style']!r} for {_plain(bucket, root)} "
            f"must be one of {', '.join(_ADDRESSING)}"
        )
    endpoint = values.get("endpoint_url")
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise StorageError(
            f"option endpoint_url for {_plain(bucket, root)} must start with http:// or "
            f"https://, got {_safe(endpoint)!r}"
        )
    if values.get("multipart_chunksize", 5 * MiB) < 5 * MiB:
        # S3 refuses parts below 5 MiB (except the last), so fail early with the reason.
        raise StorageError(
            f"option multipart_chunksize for {_plain(bucket, root)} must be at least "
            f"{5 * MiB} bytes (5 MiB, the S3 minimum part size)"
        )
    return S3Options(bucket=bucket, root=root, **values)


def _plain(bucket: str, root: str) -> str:
    return f"s3://{bucket}/{root}".rstrip("/") if root else f"s3://{bucket}"
