"""modelshelf plugin for CausalML: ``causalml-joblib`` (joblib, i.e. pickle; needs trust to load;
the default for meta-learners and uplift trees and forests, which have no safe format).

Importing this module imports neither causalml nor joblib; they are imported when a learner is
saved or loaded.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializer import CausalMLSerializer

__all__ = ["CausalMLSerializer"]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(CausalMLSerializer())
