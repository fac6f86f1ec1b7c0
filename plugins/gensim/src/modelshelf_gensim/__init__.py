"""modelshelf plugin for gensim: ``gensim-word2vec`` (word vectors in the word2vec binary format,
safe, default for ``KeyedVectors``) and ``gensim-native`` (gensim's own ``save``, pickle, default
for trainable models and every other gensim object, needs trust).

Importing this module does not import gensim; it is imported when a model is saved or loaded.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .serializers import GensimNativeSerializer, Word2VecFormatSerializer

__all__ = ["GensimNativeSerializer", "Word2VecFormatSerializer"]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(Word2VecFormatSerializer())
    register(GensimNativeSerializer())
