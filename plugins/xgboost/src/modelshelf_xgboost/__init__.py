"""modelshelf plugin for XGBoost: ``xgboost-ubj`` (native UBJSON format, safe, default).

Importing this module does not import xgboost; it is imported when a model is saved or loaded.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializer import XGBoostSerializer

__all__ = ["XGBoostSerializer"]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(XGBoostSerializer())
