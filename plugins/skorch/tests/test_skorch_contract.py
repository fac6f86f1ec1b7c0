"""modelshelf's serializer contract for both skorch serializers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import modelshelf_skorch_testnets as testnets  # on sys.path: see conftest.py
import pytest
from modelshelf.testing import SerializerContract


class SkorchContract(SerializerContract):
    heavy_modules = ("skorch", "torch", "safetensors", "sklearn", "numpy")

    @pytest.fixture
    def model(self) -> Any:
        return testnets.fitted()

    @pytest.fixture
    def sample_input(self, x: Any) -> Any:
        return x

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return lambda net, x: net.predict_proba(x)


class TestSkorchSafetensorsContract(SkorchContract):
    serializer = "skorch-safetensors"

    @pytest.fixture
    def load_options(self) -> dict[str, Any]:
        return {"net": testnets.unfitted()}


class TestSkorchPickleContract(SkorchContract):
    serializer = "skorch-pickle"
