"""Fixtures for the modelshelf-gensim tests: an isolated cache, a fresh shelf, tiny models trained
on a generated corpus (single worker, fixed seed), and a runner for fresh processes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import modelshelf
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def isolated_cache(modelshelf_cache: Path) -> Path:
    return modelshelf_cache


@pytest.fixture
def shelf_path(tmp_path: Path) -> Path:
    return tmp_path / "shelf"


@pytest.fixture
def shelf(shelf_path: Path) -> Any:
    return modelshelf.open(str(shelf_path))


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


@pytest.fixture
def run_python(
    modelshelf_run_python: Callable[..., subprocess.CompletedProcess[str]],
) -> Callable[..., subprocess.CompletedProcess[str]]:
    return modelshelf_run_python
