"""modelshelf-keras: Keras 3 models stored in Keras' native ``.keras`` format.

This module holds the plugin's hook implementations only. It never imports Keras (nor its
backend): the ``keras-v3`` serializer claims ``keras.src.models.model.Model`` (and Sequential and
functional models) by qualified class name and imports Keras inside ``save``/``load``.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializer import BackendChangeWarning, KerasV3Serializer

__all__ = ["BackendChangeWarning", "KerasV3Serializer", "modelshelf_register_serializers"]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(KerasV3Serializer())
