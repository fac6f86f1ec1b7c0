"""modelshelf's serializer contract for both fastai serializers, on a tabular learner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

# fastai is not a dependency of the plugin: install it with `pip install --no-deps fastai` plus its
# dependencies but torchvision, whose wheel for torch 2.13.0 fails to import beside the CPU build.
pytest.importorskip("fastai.tabular.all", reason="fastai is not installed")
import modelshelf_fastai_testlearners as testlearners  # on sys.path: see conftest.py
from modelshelf.testing import SerializerContract


class FastaiContract(SerializerContract):
    heavy_modules = ("fastai", "fastcore", "torch", "safetensors", "pandas", "numpy")

    @pytest.fixture
    def model(self, trained: Any) -> Any:
        return trained

    @pytest.fixture
    def sample_input(self, rows: Any) -> Any:
        return rows

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return testlearners.predict


class TestFastaiSafetensorsContract(FastaiContract):
    serializer = "fastai-safetensors"

    @pytest.fixture
    def load_options(self) -> dict[str, Any]:
        return {"learner": testlearners.learner(train=False, seed=99)}


class TestFastaiExportContract(FastaiContract):
    serializer = "fastai-export"
