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
    from . import errors as errors
    from .cards import Card as Card
    from .errors import IntegrityError as IntegrityError
    from .errors import ModelshelfError as ModelshelfError
    from .errors import NotFound as NotFound
    from .errors import UntrustedFormat as UntrustedFormat
    from .hookspecs import hookimpl as hookimpl
    from .query import QueryError as QueryError
    from .records import Alias as Alias
    from .records import Event as Event
    from .records import FileEntry as FileEntry
    from .records import ModelVersion as ModelVersion
    from .serializers import SavedModel as SavedModel
    from .serializers import Serializer as Serializer
    from .shelf import Shelf as Shelf
    from .shelf import open as open
    from .storage import ObjectInfo as ObjectInfo
    from .storage import Storage as Storage
    from .storage import StoredBytes as StoredBytes
    from .watching import Refreshing as Refreshing

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
