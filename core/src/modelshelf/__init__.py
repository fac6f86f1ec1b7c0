"""modelshelf: a serverless model registry on a directory or a cloud bucket.

>>> import modelshelf
>>> shelf = modelshelf.open("file:///srv/models")      # or s3://, az://, gs:// with plugins
>>> v = shelf.upload("churn", model, metrics={"auc": 0.91})
>>> shelf.set_alias("churn", "prod", v.version)
>>> model = shelf.load("churn@prod")

The public names are resolved lazily so that ``import modelshelf`` stays nearly free; nothing here
imports a cloud SDK or an ML framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import errors
    from .errors import (
        IntegrityError,
        ModelshelfError,
        NotFound,
        UntrustedFormat,
    )
    from .cards import Card
    from .hookspecs import hookimpl
    from .query import QueryError
    from .records import Alias, Event, FileEntry, ModelVersion
    from .serializers import SavedModel, Serializer
    from .shelf import Shelf, open
    from .storage import ObjectInfo, Storage, StoredBytes
    from .watching import Refreshing

_LAZY = {
    "open": ("shelf", "open"),
    "Shelf": ("shelf", "Shelf"),
    "hookimpl": ("hookspecs", "hookimpl"),
    "ModelVersion": ("records", "ModelVersion"),
    "FileEntry": ("records", "FileEntry"),
    "Alias": ("records", "Alias"),
    "Event": ("records", "Event"),
    "Serializer": ("serializers", "Serializer"),
    "SavedModel": ("serializers", "SavedModel"),
    "Storage": ("storage", "Storage"),
    "ObjectInfo": ("storage", "ObjectInfo"),
    "StoredBytes": ("storage", "StoredBytes"),
    "ModelshelfError": ("errors", "ModelshelfError"),
    "NotFound": ("errors", "NotFound"),
    "IntegrityError": ("errors", "IntegrityError"),
    "UntrustedFormat": ("errors", "UntrustedFormat"),
    "errors": ("errors", None),
    "Refreshing": ("watching", "Refreshing"),
    "Card": ("cards", "Card"),
    "QueryError": ("query", "QueryError"),
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'modelshelf' has no attribute {name!r}") from None
    import importlib

    module = importlib.import_module(f".{module_name}", __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value
