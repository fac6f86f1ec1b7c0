"""modelshelf's serializer contract for both skorch serializers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import modelshelf_skorch_testnets as testnets  # on sys.path: see conftest.py
import pytest
from modelshelf.testing import SerializerContract


class SkorchContract(SerializerContract):
    @pytest.fixture
    def model(self, trained: Any) -> Any:
        return trained

    @pytest.fixture
    def sample_input(self, x: Any) -> Any:
        return x

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return lambda net, x: net.predict_proba(x)

    @pytest.fixture
    def framework_modules(self) -> list[str]:
        return ["skorch", "torch", "safetensors", "sklearn", "numpy"]


class TestSkorchSafetensorsContract(SkorchContract):
    @pytest.fixture
    def serializer_name(self) -> str:
        return "skorch-safetensors"

    @pytest.fixture
    def load_options(self) -> dict[str, Any]:
        return {"net": testnets.unfitted()}


class TestSkorchPickleContract(SkorchContract):
    @pytest.fixture
    def serializer_name(self) -> str:
        return "skorch-pickle"
