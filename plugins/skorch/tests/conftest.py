"""Fixtures for the modelshelf-skorch tests: tiny trained nets, fixed inputs, real shelves."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import modelshelf
import numpy as np
import pytest

TESTS_DIR = Path(__file__).parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import modelshelf_skorch_testnets as nets  # noqa: E402


@pytest.fixture
def testnets() -> Any:
    return nets


@pytest.fixture
def tests_dir() -> Path:
    return TESTS_DIR


@pytest.fixture(autouse=True)
def isolated_cache(modelshelf_cache: Path) -> Path:
    return modelshelf_cache


@pytest.fixture
def shelf_path(tmp_path: Path) -> Path:
    return tmp_path / "shelf"


@pytest.fixture
def shelf(shelf_path: Path, modelshelf_cache: Path) -> Iterator[Any]:
    with modelshelf.open(str(shelf_path), cache=modelshelf_cache) as opened:
        yield opened


@pytest.fixture
def trained() -> Any:
    return nets.fitted()


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(42).normal(size=(7, 4)).astype("float32")


@pytest.fixture
def run_python(
    modelshelf_run_python: Callable[..., subprocess.CompletedProcess[str]],
) -> Callable[..., subprocess.CompletedProcess[str]]:
    return modelshelf_run_python
