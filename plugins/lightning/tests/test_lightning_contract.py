"""modelshelf's serializer contract for both Lightning serializers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import modelshelf_lightning_testmodules as testmodules  # on sys.path: see conftest.py
import pytest
from modelshelf.testing import SerializerContract


class LightningContract(SerializerContract):
    heavy_modules = ("lightning", "pytorch_lightning", "lightning_fabric", "torch", "safetensors")

    @pytest.fixture
    def model(self, trained: Any) -> Any:
        return trained

    @pytest.fixture
    def sample_input(self, x: Any) -> Any:
        return x

    @pytest.fixture
    def predict(self, run: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        return run

    @pytest.fixture
    def load_options(self) -> dict[str, Any]:
        return {"cls": testmodules.TinyRegressor}


class TestLightningSafetensorsContract(LightningContract):
    serializer = "lightning-safetensors"


class TestLightningCheckpointContract(LightningContract):
    serializer = "lightning-checkpoint"
