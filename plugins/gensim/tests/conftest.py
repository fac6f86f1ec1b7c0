"""Fixtures for the modelshelf-gensim tests: an isolated cache and tiny models trained on a
generated corpus (single worker, fixed seed); core's pytest plugin gives the shelf and the
fresh-process runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def isolated_cache(modelshelf_cache: Path) -> Path:
    return modelshelf_cache


WORDS = [f"w{i}" for i in range(40)] + ["naïve", "straße", "東京"]


def corpus(n: int = 150) -> list[list[str]]:
    rng = np.random.default_rng(0)
    return [list(rng.choice(WORDS, 8)) for _ in range(n)]


def train(kind: str) -> Any:
    from gensim.models import Doc2Vec, FastText, Word2Vec
    from gensim.models.doc2vec import TaggedDocument

    common = {"vector_size": 12, "min_count": 1, "workers": 1, "seed": 1, "epochs": 2}
    if kind == "word2vec":
        return Word2Vec(corpus(), **common)
    if kind == "fasttext":
        return FastText(corpus(), bucket=1000, **common)
    if kind == "doc2vec":
        return Doc2Vec([TaggedDocument(words, [i]) for i, words in enumerate(corpus())], **common)
    raise ValueError(kind)


@pytest.fixture
def make_model() -> Callable[[str], Any]:
    """``make_model("word2vec" | "fasttext" | "doc2vec")``: a model trained in milliseconds."""
    return train


@pytest.fixture
def probe_words() -> list[str]:
    return ["w0", "w7", "naïve", "東京"]
