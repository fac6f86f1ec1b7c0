"""modelshelf plugin for scikit-learn: ``sklearn-skops`` (default, safe) and ``sklearn-joblib``.

Importing this module imports neither scikit-learn, skops nor joblib; they are imported when a
model is saved or loaded.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializers import JoblibSerializer, SkopsSerializer

__all__ = ["JoblibSerializer", "SkopsSerializer"]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(SkopsSerializer())
    register(JoblibSerializer())
