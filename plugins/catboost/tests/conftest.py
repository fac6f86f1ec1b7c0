"""Fixtures for the modelshelf-catboost tests: an isolated cache, a fresh shelf, fixed data, and a
runner for fresh Python processes."""

from __future__ import annotations

import os
import subprocess
import sys
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
def run_python(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -c code *args`` in a fresh process with a fresh, empty cache."""
    counter = iter(range(1000))

    def run(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ)
        full_env["MODELSHELF_CACHE"] = str(tmp_path / f"fresh-cache-{next(counter)}")
        full_env.update(env or {})
        result = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=120,
        )
        assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
        return result

    return run
