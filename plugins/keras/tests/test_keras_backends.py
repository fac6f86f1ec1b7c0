"""keras-v3 under the TensorFlow backend, and across backends.

Keras fixes its backend when first imported, so every TensorFlow run is a subprocess with
``KERAS_BACKEND=tensorflow``: the shelf suite of this plugin (contract and fresh-process round trip)
runs again under TensorFlow, and models saved under one backend are loaded under the other. These
need ``tensorflow-cpu``; they carry the ``tensorflow`` marker (CI runs them; about a minute here,
most of it importing TensorFlow).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = [
    pytest.mark.tensorflow,
    pytest.mark.skipif(
        importlib.util.find_spec("tensorflow") is None, reason="needs tensorflow-cpu installed"
    ),
]

TESTS_DIR = Path(__file__).parent
QUIET_TENSORFLOW = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}


def run(code: str, *args: str, backend: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **QUIET_TENSORFLOW,
        "KERAS_BACKEND": backend,
        "MODELSHELF_CACHE": str(cache),
    }
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, f"{backend} subprocess failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_shelf_suite_passes_under_tensorflow(tmp_path: Path) -> None:
    """Contract (round trip in a fresh cache, manifest, claims, damaged and hostile files) and
    upload -> list -> download -> load in a fresh process with identical predictions, all with a
    model built and trained under TensorFlow."""
    env = {
        **os.environ,
        **QUIET_TENSORFLOW,
        "MODELSHELF_KERAS_TEST_BACKEND": "tensorflow",
        "MODELSHELF_CACHE": str(tmp_path / "cache"),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(TESTS_DIR / "test_keras_shelf.py"),
            str(TESTS_DIR / "test_keras_v3_serializer.py")
            + "::test_save_writes_one_keras_file_and_records_version_and_signature",
            str(TESTS_DIR / "test_keras_v3_serializer.py")
            + "::test_compiled_model_comes_back_with_its_optimizer_state",
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path / "pytest"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=str(TESTS_DIR.parents[2]),
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, f"{summary}\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    assert " passed" in summary and "failed" not in summary, summary


SAVE = """
import json, sys
import numpy as np
import keras, modelshelf

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(256, 4)).astype("float32")
y = (x[:, 0] + x[:, 1] > 0).astype("int64")
inputs = keras.Input((4,), name="features")
hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
normal = keras.layers.BatchNormalization(name="norm")(hidden)
outputs = keras.layers.Dense(2, activation="softmax", name="proba")(normal)
model = keras.Model(inputs, outputs)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
model.fit(x, y, epochs=2, batch_size=64, verbose=0)
version = modelshelf.open(sys.argv[1]).upload("model", model)
probe = np.random.default_rng(7).normal(size=(6, 4)).astype("float32")
np.save(sys.argv[2], probe)
np.save(sys.argv[3], keras.ops.convert_to_numpy(model(probe, training=False)))
print(json.dumps({"ref": version.ref, "details": version.serializer.details}))
"""

LOAD = """
import json, sys, warnings
import numpy as np
import modelshelf
from modelshelf_keras import BackendChangeWarning

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = modelshelf.open(sys.argv[1]).load(sys.argv[2])
import keras
np.save(sys.argv[4], keras.ops.convert_to_numpy(model(np.load(sys.argv[3]), training=False)))
said = [str(w.message) for w in caught if issubclass(w.category, BackendChangeWarning)]
print(json.dumps({"backend": keras.backend.backend(), "warnings": said,
                  "optimizer": type(model.optimizer).__name__}))
"""


@pytest.mark.parametrize(
    ("saved_under", "loaded_under"), [("tensorflow", "torch"), ("torch", "tensorflow")]
)
def test_a_model_saved_under_one_backend_loads_under_the_other_and_says_so(
    saved_under: str, loaded_under: str, tmp_path: Path
) -> None:
    shelf = str(tmp_path / "shelf")
    probe, before, after = (str(tmp_path / n) for n in ("probe.npy", "before.npy", "after.npy"))
    saved = json.loads(
        run(SAVE, shelf, probe, before, backend=saved_under, cache=tmp_path / "c1")
        .stdout.strip()
        .splitlines()[-1]
    )
    assert saved["details"]["backend"] == saved_under
    assert saved["details"]["backend_version"].split("+")[0] == _installed_version(saved_under)

    loaded = json.loads(
        run(LOAD, shelf, saved["ref"], probe, after, backend=loaded_under, cache=tmp_path / "c2")
        .stdout.strip()
        .splitlines()[-1]
    )
    assert loaded["backend"] == loaded_under
    assert loaded["optimizer"] == "Adam"  # compile state crosses backends too
    (warning,) = loaded["warnings"]
    assert f"saved under the {saved_under} backend and is loaded under {loaded_under}" in warning
    assert f"KERAS_BACKEND={saved_under}" in warning
    # Same architecture and weights; the arithmetic is the other backend's, so equal up to
    # floating-point rounding, which is what the warning promises.
    np.testing.assert_allclose(np.load(after), np.load(before), rtol=1e-5, atol=1e-6)

    # Loaded under the backend it was saved with: identical, and nothing to warn about.
    same = json.loads(
        run(LOAD, shelf, saved["ref"], probe, after, backend=saved_under, cache=tmp_path / "c3")
        .stdout.strip()
        .splitlines()[-1]
    )
    assert same["warnings"] == []
    np.testing.assert_array_equal(np.load(after), np.load(before))


def _installed_version(package: str) -> str:
    from importlib.metadata import version

    return version({"tensorflow": "tensorflow-cpu"}.get(package, package)).split("+")[0]
