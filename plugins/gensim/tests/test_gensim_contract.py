"""modelshelf's serializer contract for both gensim serializers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from modelshelf.testing import SerializerContract


def _vectors_and_neighbours(obj: Any, words: list[str]) -> np.ndarray:
    kv = getattr(obj, "wv", obj)
    rows = []
    for word in words:
        similar = kv.most_similar(word, topn=5)
        rows.append(
            np.concatenate(
                [kv[word], [kv.key_to_index[w] for w, _ in similar], [s for _, s in similar]]
            )
        )
    return np.array(rows)


class _Common:
    heavy_modules = ("gensim", "numpy", "scipy")

    @pytest.fixture
    def sample_input(self, probe_words: list[str]) -> list[str]:
        return probe_words

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return _vectors_and_neighbours


class TestKeyedVectorsContract(_Common, SerializerContract):
    serializer = "gensim-word2vec"

    @pytest.fixture
    def model(self, make_model: Callable[[str], Any]) -> Any:
        return make_model("word2vec").wv


class TestWord2VecNativeContract(_Common, SerializerContract):
    serializer = "gensim-native"

    @pytest.fixture
    def model(self, make_model: Callable[[str], Any]) -> Any:
        return make_model("word2vec")
