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

__all__ = ["modelshelf_register_storage", "open_gcs"]

#: URL schemes this plugin serves.
SCHEMES = ("gs", "gcs")


def open_gcs(url: str, **options: Any) -> GCSStorage:
    """Storage factory for ``gs://bucket/prefix``; see :func:`modelshelf_gcs.storage.open_gcs`."""
    from .storage import open_gcs as _open  # the SDK is imported here, on first use

    return _open(url, **options)


@hookimpl
def modelshelf_register_storage(register: StorageRegistrar) -> None:
    for scheme in SCHEMES:
        register(scheme, open_gcs)
