"""Fixtures for modelshelf-keras tests: tiny deterministic Keras models on the torch backend (or the
one MODELSHELF_KERAS_TEST_BACKEND names)."""

from __future__ import annotations

import os

# Keras picks its backend once, when first imported; this runs at conftest import, before any test
# module imports Keras. torch (2.13.0, CPU) is the default; test_keras_backends.py runs this suite
# again under TensorFlow by setting MODELSHELF_KERAS_TEST_BACKEND=tensorflow in a subprocess.
os.environ["KERAS_BACKEND"] = os.environ.get("MODELSHELF_KERAS_TEST_BACKEND", "torch")

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: The Keras backend this run of the suite uses.
BACKEND = os.environ["KERAS_BACKEND"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "tensorflow: needs tensorflow-cpu and runs Keras under the TensorFlow backend in "
        "subprocesses (about a minute); CI runs it, deselect locally with -m 'not tensorflow'",
    )


@pytest.fixture
def backend() -> str:
    """The Keras backend this run of the suite uses."""
    return BACKEND


@pytest.fixture
def keras() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    return keras


@pytest.fixture(autouse=True)
def _own_cache(modelshelf_cache: Path) -> Path:
    """A fresh modelshelf download cache, so no test reads or writes ~/.cache (the shared
    fixtures, ``local_shelf`` among them, come from modelshelf's pytest plugin)."""
    return modelshelf_cache


@pytest.fixture
def features() -> np.ndarray:
    """A fixed input batch: 5 rows of 4 float32 features."""
    return np.random.default_rng(7).normal(size=(5, 4)).astype("float32")


@pytest.fixture
def trained_sequential(keras: Any) -> Any:
    """A compiled Sequential classifier fitted for one epoch on 256 synthetic rows."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    model = keras.Sequential(
        [
            keras.Input((4,), name="features"),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dense(2, activation="softmax", name="proba"),
        ],
        name="tiny_sequential",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    return model


@pytest.fixture
def functional_two_in_two_out(keras: Any) -> Any:
    """A functional model with two named inputs (float and int) and two named outputs."""
    numbers = keras.Input((4,), name="numbers")
    counts = keras.Input((3,), name="counts", dtype="int32")
    joined = keras.layers.Concatenate()([numbers, keras.ops.cast(counts, "float32")])
    hidden = keras.layers.Dense(6, activation="tanh", name="hidden")(joined)
    score = keras.layers.Dense(1, name="score")(hidden)
    logits = keras.layers.Dense(3, name="logits")(hidden)
    return keras.Model([numbers, counts], [score, logits], name="two_heads")


@pytest.fixture
def lambda_model(keras: Any) -> Any:
    """A functional model with a Lambda layer wrapping a Python lambda (stored as bytecode)."""
    inputs = keras.Input((4,), name="x")
    doubled = keras.layers.Lambda(lambda t: t * 2.0 + 1.0, name="double_plus_one")(inputs)
    outputs = keras.layers.Dense(2, name="y")(doubled)
    return keras.Model(inputs, outputs)


def run_model(model: Any, x: Any) -> Any:
    """Run a Keras model on a fixed input and return numpy arrays (a list for several outputs)."""
    import keras

    result = model(x, training=False)
    if isinstance(result, (list, tuple)):
        return [keras.ops.convert_to_numpy(r) for r in result]
    return keras.ops.convert_to_numpy(result)


@pytest.fixture
def predict() -> Callable[[Any, Any], Any]:
    return run_model
