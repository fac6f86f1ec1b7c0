"""modelshelf's serializer contract, run for onnx-protobuf (loaded as ModelProto and as session)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from modelshelf.testing import SerializerContract

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def predict(obj: Any, x: np.ndarray) -> np.ndarray:
    """Run a ModelProto or an InferenceSession on ``x`` with onnxruntime's CPU provider."""
    session = obj
    if isinstance(obj, onnx.ModelProto):
        session = ort.InferenceSession(obj.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


class TestOnnxProtobufContract(SerializerContract):
    serializer = "onnx-protobuf"
    heavy_modules = ("onnx", "onnxruntime", "numpy", "google.protobuf")

    @pytest.fixture
    def model(self, make_model: Any) -> Any:
        return make_model()

    @pytest.fixture
    def sample_input(self) -> np.ndarray:
        return np.random.default_rng(42).standard_normal((5, 4)).astype(np.float32)

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return predict


class TestOnnxProtobufSessionContract(TestOnnxProtobufContract):
    """The same, loading an onnxruntime session (``session=True``) of a wider model."""

    @pytest.fixture
    def model(self, make_model: Any) -> Any:
        return make_model(128, 128, seed=1)

    @pytest.fixture
    def sample_input(self) -> np.ndarray:
        return np.random.default_rng(7).standard_normal((3, 128)).astype(np.float32)

    @pytest.fixture
    def load_options(self) -> dict[str, Any]:
        return {"session": True}
