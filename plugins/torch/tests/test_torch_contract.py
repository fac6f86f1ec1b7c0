"""modelshelf's serializer contract, run for each of the four torch serializers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import modelshelf_torch_testnets as testnets  # on sys.path: see conftest.py
import pytest
import torch
from modelshelf.testing import SerializerContract


class TorchContract(SerializerContract):
    """Shared fixtures: TinyNet with a fixed seed, a fixed input, forward without autograd."""

    heavy_modules = ("torch", "safetensors", "numpy")

    @pytest.fixture
    def model(self, tiny: Any) -> Any:
        return tiny

    @pytest.fixture
    def sample_input(self, x: Any) -> Any:
        return x

    @pytest.fixture
    def predict(self, run: Any) -> Callable[[Any, Any], Any]:
        return run


class TestTorchSafetensorsContract(TorchContract):
    serializer = "torch-safetensors"

    @pytest.fixture
    def load_options(self) -> dict[str, Any]:
        torch.manual_seed(99)  # other weights than the saved ones: the load must replace them
        return {"module": testnets.TinyNet().eval()}


class TestTorchExportContract(TorchContract):
    serializer = "torch-export"

    @pytest.fixture
    def model(self, tiny: Any, x: Any) -> Any:
        return torch.export.export(tiny, (x,))


class TestTorchScriptContract(TorchContract):
    serializer = "torch-script"

    @pytest.fixture
    def model(self, tiny: Any) -> Any:
        return torch.jit.script(tiny)


class TestTorchPickleContract(TorchContract):
    serializer = "torch-pickle"
