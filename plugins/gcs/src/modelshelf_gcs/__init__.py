"""Google Cloud Storage for modelshelf: shelves at ``gs://bucket/prefix`` (also ``gcs://``).

This module holds the hook implementation only. ``google.cloud.storage`` is imported by the
factory, on the first ``modelshelf.open("gs://...")``, never when the plugin is discovered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelshelf.plugins import hookimpl

if TYPE_CHECKING:
    from modelshelf.hookspecs import StorageRegistrar

    from .storage import GCSStorage

__all__ = ["modelshelf_register_storage", "open_storage"]

#: URL schemes this plugin serves.
SCHEMES = ("gs", "gcs")


def open_storage(url: str, **options: Any) -> GCSStorage:
    """Open the shelf at ``gs://bucket/prefix``. Makes no request: problems show on first use.

    Options (keywords of ``modelshelf.open``):

    * ``project``: Google Cloud project of the client (default: the credentials' or the
      environment's); reading and writing objects does not depend on it.
    * ``credentials``: a ``google.auth.credentials.Credentials`` object.
    * ``credentials_file``: path of a service account JSON key.
    * ``anonymous=True``: no credentials, read-only (public buckets). Default: true when the
      environment variable ``MODELSHELF_GCS_ANONYMOUS`` is ``1``/``true``/``yes`` (for the CLI).
    * ``client``: a ready ``google.cloud.storage.Client`` (custom endpoint, session, ...); the
      caller keeps ownership and closes it.
    * ``timeout`` (seconds per request, default 60), ``retry_deadline`` (seconds to keep retrying
      transient failures, default 120), ``chunk_size`` (resumable upload piece in bytes, a
      multiple of 256 KiB, default 16 MiB).

    Without options, Application Default Credentials are used, and ``STORAGE_EMULATOR_HOST``
    (``http://host:port``) points the client at an emulator with anonymous credentials.
    """
    from .options import parse

    parse(url, options)  # fails on bad input before the SDK is even imported
    from .storage import GCSStorage

    return GCSStorage(url, **options)


#: The factory's earlier name.
open_gcs = open_storage


@hookimpl
def modelshelf_register_storage(register: StorageRegistrar) -> None:
    for scheme in SCHEMES:
        register(scheme, open_storage)
