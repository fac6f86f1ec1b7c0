"""Fixtures for the modelshelf-skorch tests: tiny trained nets, fixed inputs, real shelves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelshelf.testing.frameworks import import_test_helpers

nets = import_test_helpers(__file__, "modelshelf_skorch_testnets")


@pytest.fixture(autouse=True)
def isolated_cache(modelshelf_cache: Path) -> Path:
    return modelshelf_cache


@pytest.fixture
def trained() -> Any:
    return nets.fitted()


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(42).normal(size=(7, 4)).astype("float32")
