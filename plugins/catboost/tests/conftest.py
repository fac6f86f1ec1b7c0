"""Fixtures for the modelshelf-catboost tests: an isolated cache, a fresh shelf, fixed data, and a
runner for fresh Python processes."""

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
    """Every test gets its own download cache (core's ``modelshelf_cache`` fixture, which also sets
    ``MODELSHELF_CACHE``), so no test reads ~/.cache or another test's blobs."""
    return modelshelf_cache


@pytest.fixture
def shelf_path(tmp_path: Path) -> Path:
    return tmp_path / "shelf"


@pytest.fixture
def shelf(shelf_path: Path) -> Any:
    return modelshelf.open(str(shelf_path))


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    """200 rows, 4 features, a binary target that depends on two of them (fixed seed)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


@pytest.fixture
def run_python(modelshelf_run_python: Callable[..., subprocess.CompletedProcess[str]]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``python -c code *args`` in a fresh process with an empty cache (core's fixture)."""
    return modelshelf_run_python
