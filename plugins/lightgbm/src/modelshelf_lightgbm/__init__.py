"""modelshelf plugin for LightGBM: ``lightgbm-text`` (native text model format, safe, default).

Importing this module does not import lightgbm; it is imported when a model is saved or loaded.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializer import LightGBMSerializer

__all__ = ["LightGBMSerializer"]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(LightGBMSerializer())
