"""keras-v3 through a real filesystem shelf: the serializer contract, and upload -> list ->
download -> load in a fresh Python process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelshelf.errors import UntrustedFormat
from modelshelf.testing import SerializerContract


class TestKerasV3Contract(SerializerContract):
    serializer = "keras-v3"
    heavy_modules = ("keras", "torch", "tensorflow", "jax")

    @pytest.fixture
    def model(self, functional_two_in_two_out: Any) -> Any:
        return functional_two_in_two_out

    @pytest.fixture
    def sample_input(self) -> list[np.ndarray]:
        rng = np.random.default_rng(3)
        return [
            rng.normal(size=(4, 4)).astype("float32"),
            rng.integers(0, 5, (4, 3)).astype("int32"),
        ]

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        def predict(model: Any, x: Any) -> np.ndarray:
            import keras

            score, logits = model(x, training=False)
            return np.concatenate(
                [keras.ops.convert_to_numpy(score), keras.ops.convert_to_numpy(logits)], axis=1
            )

        return predict


FRESH_PROCESS = """
import json, sys
import numpy as np
import modelshelf

shelf_path, ref, dest, out = sys.argv[1:5]
shelf = modelshelf.open(shelf_path)
listed = [v.version for v in shelf.versions("demo/classifier")]
files = sorted(p.name for p in shelf.download(ref, dest).iterdir())
model = shelf.load(ref)
import keras  # imported by load; the backend comes from KERAS_BACKEND
x = np.load(out + ".input.npy")
np.save(out, keras.ops.convert_to_numpy(model(x, training=False)))
print(json.dumps({"listed": listed, "files": files, "type": type(model).__name__,
                  "backend": keras.backend.backend()}))
"""


def test_upload_list_download_and_load_in_a_fresh_process(
    local_shelf: Any,
    trained_sequential: Any,
    features: np.ndarray,
    predict: Callable[[Any, Any], Any],
    keras: Any,
    backend: str,
    tmp_path: Path,
) -> None:
    version = local_shelf.upload("demo/classifier", trained_sequential, metrics={"loss": 0.5})
    assert version.serializer.name == "keras-v3"
    assert version.serializer.distribution == "modelshelf-keras"
    assert (version.framework.name, version.framework.version) == ("keras", keras.__version__)
    assert [f.path for f in version.files] == ["model.keras"]
    assert version.signature == {
        "inputs": [{"name": "features", "dtype": "float32", "shape": [None, 4]}],
        "outputs": [{"name": "proba", "dtype": "float32", "shape": [None, 2]}],
    }

    out = tmp_path / "predictions.npy"
    np.save(str(out) + ".input.npy", features)
    env = {**os.environ, "MODELSHELF_CACHE": str(tmp_path / "fresh-process-cache")}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(FRESH_PROCESS),
            str(tmp_path / "shelf"),
            version.ref,
            str(tmp_path / "downloaded"),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "listed": [1],
        "files": ["model.keras"],
        "type": "Sequential",
        "backend": backend,
    }
    assert version.serializer.details["backend"] == backend
    np.testing.assert_array_equal(np.load(out), predict(trained_sequential, features))


def test_lambda_model_on_a_shelf_needs_trust(
    local_shelf: Any, lambda_model: Any, features: np.ndarray, predict: Callable[[Any, Any], Any]
) -> None:
    version = local_shelf.upload("demo/lambda", lambda_model)
    # The format is safe, so core lets load run; Keras safe mode is what refuses the bytecode.
    assert version.serializer.safe is True
    assert version.serializer.details["python_lambdas"] == ["double_plus_one"]
    with pytest.raises(UntrustedFormat, match="trust=True"):
        local_shelf.load(version.ref)
    loaded = local_shelf.load(version.ref, trust=True)
    np.testing.assert_array_equal(predict(loaded, features), predict(lambda_model, features))


def test_load_options_reach_load_model(
    local_shelf: Any,
    trained_sequential: Any,
    features: np.ndarray,
    predict: Callable[[Any, Any], Any],
) -> None:
    version = local_shelf.upload("demo/uncompiled", trained_sequential)
    loaded = local_shelf.load(version.ref, compile=False)
    # compile=False reached keras.saving.load_model: the optimizer was not restored.
    assert getattr(loaded, "optimizer", None) is None
    np.testing.assert_array_equal(predict(loaded, features), predict(trained_sequential, features))
