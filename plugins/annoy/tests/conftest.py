"""Fixtures for the modelshelf-annoy tests: an isolated cache and small indexes built from fixed
random vectors (core's pytest plugin gives the shelf and the fresh-process runner)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def isolated_cache(modelshelf_cache: Path) -> Path:
    return modelshelf_cache


DIM = 16


def vectors(metric: str, n: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if metric == "hamming":
        return rng.integers(0, 2, size=(n, DIM)).astype(float)
    return rng.normal(size=(n, DIM))


def build(metric: str, n: int = 200, seed: int = 0) -> Any:
    from annoy import AnnoyIndex

    index = AnnoyIndex(DIM, metric)
    index.set_seed(seed)
    for i, v in enumerate(vectors(metric, n, seed)):
        index.add_item(i, v.tolist())
    index.build(5, n_jobs=1)
    return index


@pytest.fixture
def make_index() -> Callable[..., Any]:
    """``make_index(metric, n=200, seed=0)``: a built 16-dimensional index."""
    return build


@pytest.fixture
def queries() -> np.ndarray:
    return np.random.default_rng(42).normal(size=(10, DIM))


def _neighbours(index: Any, queries: np.ndarray, k: int = 10) -> list[Any]:
    return [index.get_nns_by_vector(q.tolist(), k, include_distances=True) for q in queries]


@pytest.fixture
def neighbours() -> Callable[..., list[Any]]:
    """``neighbours(index, queries, k=10)``: ids and distances of the k nearest items of each query."""
    return _neighbours
