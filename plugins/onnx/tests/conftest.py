"""Fixtures for the modelshelf-onnx tests: tiny ONNX graphs built with onnx.helper (no downloads)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def linear_model(n_in: int = 4, n_out: int = 3, seed: int = 0, doc: str = "") -> Any:
    """``y = x @ W + B`` with a symbolic batch dimension, weights from a fixed seed."""
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((n_in, n_out)).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
        doc_string=doc,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests"
    )
    model.ir_version = 8  # what onnxruntime of any recent version accepts
    return model


@pytest.fixture
def model() -> Any:
    return linear_model()


@pytest.fixture
def big_model() -> Any:
    """Large enough (64 KiB of weights) to go to external data with a small threshold."""
    return linear_model(n_in=128, n_out=128, seed=1)


@pytest.fixture
def sample_input() -> np.ndarray:
    return np.random.default_rng(42).standard_normal((5, 4)).astype(np.float32)


def reference_output(model: Any, x: np.ndarray) -> np.ndarray:
    """The model's output computed by numpy from its own initializers (independent of onnxruntime)."""
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return x @ weights["W"] + weights["B"]


# Test modules cannot import conftest under --import-mode=importlib: hand helpers out as fixtures.
@pytest.fixture
def make_model() -> Any:
    return linear_model


@pytest.fixture
def reference() -> Any:
    return reference_output
