"""Azure Blob Storage backend for modelshelf: shelves at ``az://container/prefix``.

This module holds the hook implementations only. It must stay cheap to import: the Azure SDK is
imported by the storage factory on first use, never here, so ``import modelshelf`` and
``modelshelf plugins`` stay fast when this plugin is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelshelf.plugins import hookimpl

if TYPE_CHECKING:
    from .storage import AzureBlobStorage

__version__ = "0.1.0"

#: URL schemes this plugin serves. ``azure://`` is an alias some users type.
SCHEMES = ("az", "azure")


def open_storage(url: str, **options: Any) -> AzureBlobStorage:
    """Storage factory: ``open_storage("az://container/prefix", connection_string=...)``.

    See :class:`modelshelf_azure.storage.AzureBlobStorage` for the options. The URL and options
    are checked before the SDK is imported, on first use, here.
    """
    from .options import parse

    parse(url, options)  # fails on bad input before the Azure SDK is even imported
    from .storage import AzureBlobStorage

    return AzureBlobStorage(url, **options)


#: The factory's earlier name.
open_azure = open_storage


@hookimpl
def modelshelf_register_storage(register: Callable[[str, Callable[..., Any]], None]) -> None:
    for scheme in SCHEMES:
        register(scheme, open_storage)
