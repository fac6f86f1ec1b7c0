"""modelshelf-s3: shelves on Amazon S3 and S3-compatible services (``s3://bucket/prefix``).

This module holds the plugin's hook implementations only. boto3 is imported by the storage
factory, on first use of an ``s3://`` URL, so ``import modelshelf_s3`` (and therefore
``modelshelf plugins``) stays cheap and works even where boto3 is broken.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelshelf.plugins import hookimpl

if TYPE_CHECKING:
    from modelshelf.hookspecs import StorageRegistrar

    from .storage import S3Storage

__all__ = ["open_storage"]


def open_storage(url: str, **options: Any) -> S3Storage:
    """Factory for ``s3://`` URLs: validate the URL and options, then build the boto3 client.

    Options (keywords or URL query parameters): ``region``, ``profile``, ``endpoint_url``
    (default ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``), ``addressing_style``,
    ``max_concurrency``, ``multipart_threshold``, ``multipart_chunksize``, ``retry_mode``,
    ``max_attempts``, ``connect_timeout``, ``read_timeout``, ``max_pool_connections``.
    """
    from .options import parse

    parse(url, options)  # fails on bad input before boto3 is even imported
    from .storage import S3Storage

    return S3Storage(url, **options)


@hookimpl
def modelshelf_register_storage(register: StorageRegistrar) -> None:
    register("s3", open_storage)
