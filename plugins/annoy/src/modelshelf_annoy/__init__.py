"""modelshelf plugin for Annoy: ``annoy-native`` (the index's own ``.ann`` file, safe, default).

Importing this module does not import annoy; it is imported when an index is saved or loaded.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializer import METRICS, AnnoySerializer, infer_metric

__all__ = ["METRICS", "AnnoySerializer", "infer_metric"]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(AnnoySerializer())
