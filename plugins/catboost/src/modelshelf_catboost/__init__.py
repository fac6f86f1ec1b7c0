"""modelshelf plugin for CatBoost: ``catboost-cbm`` (native cbm format, safe, default).

Importing this module does not import catboost; it is imported when a model is saved or loaded.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializer import CatBoostSerializer

__all__ = ["CatBoostSerializer"]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(CatBoostSerializer())
