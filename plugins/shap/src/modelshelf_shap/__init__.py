"""modelshelf plugin for SHAP: ``shap-tree`` (a TreeExplainer's settings and background data, over
its model stored by that model's own modelshelf serializer; safe, default for TreeExplainer) and
``shap-pickle`` (shap's own ``Explainer.save``, pickle, default for every other explainer, needs
trust).

Importing this module does not import shap; it is imported when an explainer is saved or loaded.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializers import ShapPickleSerializer, TreeExplainerSerializer

__all__ = ["ShapPickleSerializer", "TreeExplainerSerializer"]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(TreeExplainerSerializer())
    register(ShapPickleSerializer())
