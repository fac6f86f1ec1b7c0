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


# --- core's pickle scan at upload -----------------------------------------------------------------
#: What core's pickle scan flags in this framework's own pickles: its allow-list has no entry for
#: gensim's classes nor for builtins.hash (Word2Vec's hash function), so a version it flagged loads only with trust="ignore-scan".
FRAMEWORK_IMPORTS: tuple[str, ...] = ("gensim.", "builtins.hash")


def load_trusted(shelf: Any, ref: str, **options: Any) -> Any:
    """``shelf.load(ref, trust=True)``; where core's pickle scan flagged the version, first a check
    that it flagged only the framework's own classes and that trust=True is refused, then
    ``trust="ignore-scan"``."""
    from modelshelf.errors import UntrustedFormat

    scan = getattr(shelf.get(ref), "scan", None)
    if scan is None or not scan.dangerous:
        return shelf.load(ref, trust=True, **options)
    flagged = sorted({name for finding in scan.findings for name in finding.imports})
    unexpected = [name for name in flagged if not name.startswith(FRAMEWORK_IMPORTS)]
    assert not unexpected, f"the pickle scan flagged {unexpected}, not only the framework's classes"
    with pytest.raises(UntrustedFormat):
        shelf.load(ref, trust=True, **options)
    return shelf.load(ref, trust="ignore-scan", **options)


@pytest.fixture
def trusted_load() -> Callable[..., Any]:
    """``trusted_load(shelf, ref, **options)``: see :func:`load_trusted`."""
    return load_trusted
