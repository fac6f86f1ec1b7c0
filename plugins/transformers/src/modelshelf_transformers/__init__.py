"""modelshelf-transformers: Hugging Face models, tokenizers, processors and pipelines.

This module holds the plugin's hook implementations and re-exports :class:`Bundle`; it never
imports ``transformers`` or torch. The ``transformers-safetensors`` serializer claims transformers
objects by qualified class name and imports ``transformers`` inside ``save``/``load`` only.

>>> from modelshelf_transformers import Bundle
>>> shelf.upload("sentiment", Bundle(model=model, tokenizer=tokenizer))
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .bundle import Bundle
from .serializer import TransformersSerializer

__all__ = ["Bundle", "TransformersSerializer", "modelshelf_register_serializers"]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(TransformersSerializer())
