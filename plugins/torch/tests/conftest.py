"""Fixtures for the modelshelf-torch tests: tiny modules, fixed seeds, real filesystem shelves."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import modelshelf
import pytest
import torch

TESTS_DIR = Path(__file__).parent
# The test modules live in a real module (importable by name for pickle and subprocesses).
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import modelshelf_torch_testnets as nets  # noqa: E402


@pytest.fixture
def testnets() -> Any:
    return nets


@pytest.fixture
def tests_dir() -> Path:
    return TESTS_DIR


@pytest.fixture
def tiny() -> Any:
    torch.manual_seed(0)
    return nets.TinyNet().eval()


@pytest.fixture
def x() -> Any:
    return torch.randn(5, 4, generator=torch.Generator().manual_seed(42))


@pytest.fixture
def run() -> Callable[[Any, Any], Any]:
    """``run(model, x)``: forward pass without autograd, as a numpy array."""

    def forward(model: Any, inputs: Any) -> Any:
        if isinstance(model, torch.export.ExportedProgram):
            model = model.module()
        with torch.no_grad():
            return model(inputs).numpy()

    return forward


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh download cache, also exported so that subprocesses never touch ~/.cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("MODELSHELF_CACHE", str(cache))
    return cache


@pytest.fixture
def shelf_path(tmp_path: Path) -> Path:
    return tmp_path / "shelf"


@pytest.fixture
def shelf(shelf_path: Path, cache_dir: Path) -> Iterator[Any]:
    opened = modelshelf.open(str(shelf_path), cache=cache_dir)
    try:
        yield opened
    finally:
        opened.close()
