"""Fixtures for the modelshelf-torch tests: tiny modules, fixed seeds, real filesystem shelves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from modelshelf.testing.frameworks import import_test_helpers

# The test modules live in a real module (importable by name for pickle and subprocesses).
nets = import_test_helpers(__file__, "modelshelf_torch_testnets")


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
