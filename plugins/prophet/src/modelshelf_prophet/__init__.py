"""modelshelf plugin for Prophet: ``prophet-json`` (Prophet's own JSON model format, safe, default).

Importing this module does not import prophet; it is imported when a model is saved or loaded.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializer import ProphetSerializer

__all__ = ["ProphetSerializer"]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(ProphetSerializer())
