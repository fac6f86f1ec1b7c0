"""Shelf URL, options and credential resolution, before any network I/O.

Nothing here imports the Azure SDK (``azure-identity`` is imported only when it is the chosen
credential), and no message built here contains a key, a SAS token or a connection string.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
from modelshelf.errors import AccessDenied, StorageError
from modelshelf.objectstore import check_options, option_value

MiB = 1 << 20

#: Tuning defaults, each overridable by the option of the same name given to ``modelshelf.open``.
DEFAULTS: dict[str, Any] = {
    # Parallel block uploads per file. Memory is about max_concurrency * max_block_size.
    "max_concurrency": 4,
    # 8 MiB blocks: 50,000 blocks allow blobs up to 390 GiB, and a block is small enough that a
    # slow link never hits the read timeout on one request (the modelstore #231 failure).
    "max_block_size": 8 * MiB,
    # Files up to this size go up in one Put Blob; larger ones in parallel blocks.
    "max_single_put_size": 8 * MiB,
    # Size of each ranged GET when downloading (and of the first one).
    "max_chunk_get_size": 4 * MiB,
    # Seconds to open a connection, and to wait for each socket read.
    "connection_timeout": 20,
    "read_timeout": 120,
    # Retries of one request (exponential back-off: 1 s, 4 s, 10 s, 28 s, 82 s, +-1 s jitter).
    # Connection failures get fewer so that a wrong endpoint fails in about 5 s. (The SDK's
    # counter allows one retry more than the number given: 1 means two retries, 1 s + 4 s.)
    "retry_total": 5,
    "retry_connect": 1,
    # Listing page size; None is the service maximum (5,000).
    "results_per_page": None,
}
#: How each tuning option is checked (see :func:`modelshelf.objectstore.option_value`).
_KINDS = {
    "max_concurrency": "count",
    "max_block_size": "count",
    "max_single_put_size": "count",
    "max_chunk_get_size": "count",
    "connection_timeout": "seconds",
    "read_timeout": "seconds",
    "results_per_page": "count",
}
CREDENTIAL_OPTIONS = ("connection_string", "account_url", "account_name", "sas_token", "credential")

#: Container names: 3-63 characters of lowercase letters, digits and single hyphens, starting and
#: ending with a letter or digit; plus the special containers Azure defines.
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
_SPECIAL_CONTAINERS = frozenset({"$root", "$web", "$logs"})
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")

ENV_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
ENV_ACCOUNT_URL = "AZURE_STORAGE_ACCOUNT_URL"
ENV_ACCOUNT = "AZURE_STORAGE_ACCOUNT"
ENV_SAS_TOKEN = "AZURE_STORAGE_SAS_TOKEN"

_WHAT_TO_SET = (
    f"set {ENV_CONNECTION_STRING}, or {ENV_ACCOUNT_URL} (or {ENV_ACCOUNT}) with {ENV_SAS_TOKEN}, "
    "or pass connection_string=... or account_url=... with sas_token=... / credential=... to "
    "modelshelf.open, or install azure-identity (pip install 'modelshelf-azure[identity]') to use "
    "DefaultAzureCredential"
)


@attrs.frozen
class ShelfLocation:
    """Where a shelf lives: ``az://<container>/<prefix>``."""

    #: The shelf URL, normalised (no trailing slash), safe to show.
    url: str
    container: str
    #: Blob-name prefix of every key, ``""`` or ending with ``/``.
    prefix: str


@attrs.frozen
class Connection:
    """How to build the ``BlobServiceClient``: exactly one of the two ways is set."""

    #: A connection string (from the option or the environment). Never shown.
    connection_string: str | None = attrs.field(default=None, repr=False)
    account_url: str | None = None
    #: A SAS token string, a key, an ``azure.core.credentials`` object, or ``None`` when the
    #: account URL itself carries a SAS query string. Never shown.
    credential: Any = attrs.field(default=None, repr=False)
    #: Where the credential came from, for messages ("connection string", "SAS token", ...).
    source: str = ""


def parse_url(url: str) -> ShelfLocation:
    """Split ``az://container/prefix`` (or ``azure://...``). Refuses anything else clearly."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("az", "azure"):
        raise StorageError(f"not an Azure shelf URL: {url!r}; expected az://container/prefix")
    if parts.query or parts.fragment or "@" in parts.netloc:
        # Most likely a SAS token pasted into the URL: do not echo it back.
        raise StorageError(
            f"Azure shelf URLs take no query, fragment or user part ({scheme}://{parts.hostname or ''}"
            "/...): pass a SAS token as sas_token=... or in AZURE_STORAGE_SAS_TOKEN instead"
        )
    container = parts.netloc
    if not container:
        raise StorageError(
            f"Azure shelf URL {url!r} names no container; expected az://container/prefix"
        )
    if not (_CONTAINER.match(container) or container in _SPECIAL_CONTAINERS):
        raise StorageError(
            f"invalid Azure container name {container!r} in {url!r}: use 3-63 lowercase letters, "
            "digits and single hyphens, starting and ending with a letter or digit"
        )
    path = parts.path.strip("/")
    segments = path.split("/") if path else []
    if any(segment in ("", ".", "..") for segment in segments) or "\\" in path:
        raise StorageError(
            f"invalid prefix in Azure shelf URL {url!r}: use '/'-separated names without empty, "
            "'.' or '..' segments"
        )
    prefix = "/".join(segments)
    normalised = f"{scheme}://{container}/{prefix}" if prefix else f"{scheme}://{container}"
    return ShelfLocation(url=normalised, container=container, prefix=f"{prefix}/" if prefix else "")


def resolve_connection(
    shelf_url: str,
    *,
    connection_string: str | None = None,
    account_url: str | None = None,
    account_name: str | None = None,
    sas_token: str | None = None,
    credential: Any = None,
    environ: Mapping[str, str] | None = None,
) -> Connection:
    """Choose credentials. Explicit options beat the environment; the first complete way wins.

    1. ``connection_string`` option;
    2. ``account_url`` / ``account_name`` option, with ``credential`` or ``sas_token`` option, or
       ``AZURE_STORAGE_SAS_TOKEN``, or ``DefaultAzureCredential``;
    3. ``AZURE_STORAGE_CONNECTION_STRING``;
    4. ``AZURE_STORAGE_ACCOUNT_URL`` or ``AZURE_STORAGE_ACCOUNT`` (as
       ``https://<name>.blob.core.windows.net``) with the same credential choices as 2;
    5. otherwise :class:`~modelshelf.errors.AccessDenied` saying what to set.
    """
    env = os.environ if environ is None else environ
    if connection_string:
        return Connection(connection_string=connection_string, source="connection string")
    url = account_url or _url_from_name(account_name, "account_name")
    if url is None and (sas_token or credential is not None):
        # A credential without an account is a mistake: refuse it rather than fall through to an
        # environment connection string that would silently use other credentials.
        raise AccessDenied(
            f"shelf {shelf_url}: a SAS token or credential was given without an account: "
            f"also pass account_url=... (or account_name=...), or set {ENV_ACCOUNT_URL}"
        )
    if url is None:
        env_connection_string = env.get(ENV_CONNECTION_STRING)
        if env_connection_string:
            return Connection(
                connection_string=env_connection_string, source=f"{ENV_CONNECTION_STRING}"
            )
        url = env.get(ENV_ACCOUNT_URL) or _url_from_name(env.get(ENV_ACCOUNT), ENV_ACCOUNT)
    if url is None:
        raise AccessDenied(f"shelf {shelf_url}: no Azure credentials found: {_WHAT_TO_SET}")
    url = _check_account_url(url)
    if credential is not None:
        return Connection(account_url=url, credential=credential, source="credential")
    token = sas_token or env.get(ENV_SAS_TOKEN)
    if token:
        return Connection(account_url=url, credential=token.lstrip("?"), source="SAS token")
    if urlsplit(url).query:
        # The account URL carries its own SAS query string; the SDK uses it as is.
        return Connection(account_url=url, source="SAS token in the account URL")
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise AccessDenied(
            f"shelf {shelf_url}: no credential for {safe_url(url)}: {_WHAT_TO_SET}"
        ) from None
    return Connection(
        account_url=url, credential=DefaultAzureCredential(), source="DefaultAzureCredential"
    )


def _url_from_name(name: str | None, where: str) -> str | None:
    if not name:
        return None
    if not _ACCOUNT_NAME.match(name):
        raise StorageError(
            f"invalid Azure storage account name {name!r} (from {where}): use 3-24 lowercase "
            "letters and digits"
        )
    return f"https://{name}.blob.core.windows.net"


def _check_account_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StorageError(
            f"invalid Azure account URL {safe_url(url)!r}: expected "
            "https://<account>.blob.core.windows.net (or http://host:port/<account> for Azurite)"
        )
    return url


def safe_url(url: str) -> str:
    """An account URL fit for messages: scheme, host, port and path, never a query or user part."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # a malformed port: show the host alone
        port = None
    if port is not None:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}{parts.path}".rstrip("/")


def parse(
    url: str, options: Mapping[str, Any]
) -> tuple[ShelfLocation, dict[str, Any], dict[str, Any]]:
    """Check ``url`` and ``options``: the shelf location, the tuning settings (defaults filled
    in) and the credential options (resolved by :func:`resolve_connection` when connecting)."""
    location = parse_url(url)
    check_options(options, [*CREDENTIAL_OPTIONS, *DEFAULTS], f"Azure shelf {location.url}")
    settings = dict(DEFAULTS)
    for name, value in options.items():
        if name in DEFAULTS:
            kind = _KINDS.get(name)
            settings[name] = (
                value
                if kind is None or value is None
                else option_value(name, value, kind, f"Azure shelf {location.url}")
            )
    credentials = {k: v for k, v in options.items() if k in CREDENTIAL_OPTIONS}
    return location, settings, credentials
