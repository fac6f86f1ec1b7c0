"""The keras-v3 serializer against real Keras 3 models (torch backend), without a shelf."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelshelf.errors import IntegrityError, InvalidModel, ModelshelfError, UntrustedFormat
from modelshelf.serializers import choose
from modelshelf.testing.single_file import one_line, version_with_decoy
from modelshelf.testing.stand_ins import claim_only
from modelshelf_keras import KerasV3Serializer

# Stands in for a torch plugin: under the torch backend every Keras model is an nn.Module.
TORCH_MODULE = claim_only("test-torch-module", "torch.nn.modules.module.Module", framework="torch")


def round_trip(model: Any, directory: Path, *, trust: bool = False, **load_options: Any) -> Any:
    serializer = KerasV3Serializer()
    saved = serializer.save(model, directory)
    return serializer.load(directory, details=saved.details, trust=trust, **load_options)


def test_sequential_functional_and_subclassed_models_resolve_to_keras_v3(
    keras: Any, trained_sequential: Any, functional_two_in_two_out: Any
) -> None:
    class Subclassed(keras.Model):
        def call(self, x: Any) -> Any:
            return x

    candidates = [TORCH_MODULE, KerasV3Serializer()]
    for model in (trained_sequential, functional_two_in_two_out, Subclassed()):
        assert choose(model, candidates).name == "keras-v3"
    assert KerasV3Serializer().claim_depth(trained_sequential) == 0
    assert KerasV3Serializer().claim_depth(functional_two_in_two_out) == 0
    # A bare layer is not a model: nothing claims it, so it is never saved by accident.
    assert KerasV3Serializer().claim_depth(keras.layers.Dense(2)) is None


def test_save_writes_one_keras_file_and_records_version_and_signature(
    keras: Any, functional_two_in_two_out: Any, backend: str, tmp_path: Path
) -> None:
    saved = KerasV3Serializer().save(functional_two_in_two_out, tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    assert (saved.framework, saved.framework_version) == ("keras", keras.__version__)
    assert saved.signature == {
        "inputs": [
            {"name": "numbers", "dtype": "float32", "shape": [None, 4]},
            {"name": "counts", "dtype": "int32", "shape": [None, 3]},
        ],
        "outputs": [
            {"name": "score", "dtype": "float32", "shape": [None, 1]},
            {"name": "logits", "dtype": "float32", "shape": [None, 3]},
        ],
    }
    assert saved.details["backend"] == backend
    assert saved.details["backend_version"] == __import__(backend).__version__
    assert saved.details["class"] == "Functional"
    assert saved.details["python_lambdas"] == []
    assert saved.details["custom_objects"] == []


def test_multi_input_multi_output_round_trip_is_identical(
    functional_two_in_two_out: Any, predict: Callable[[Any, Any], Any], tmp_path: Path
) -> None:
    x = [
        np.random.default_rng(1).normal(size=(3, 4)).astype("float32"),
        np.arange(9, dtype="int32").reshape(3, 3),
    ]
    loaded = round_trip(functional_two_in_two_out, tmp_path)
    for before, after in zip(
        predict(functional_two_in_two_out, x), predict(loaded, x), strict=True
    ):
        np.testing.assert_array_equal(before, after)
    assert [t.name for t in loaded.inputs] == ["numbers", "counts"]


def test_compiled_model_comes_back_with_its_optimizer_state(
    trained_sequential: Any,
    features: np.ndarray,
    predict: Callable[[Any, Any], Any],
    tmp_path: Path,
) -> None:
    saved = KerasV3Serializer().save(trained_sequential, tmp_path)
    assert saved.details["compiled"] is True
    loaded = KerasV3Serializer().load(tmp_path, details=saved.details)

    np.testing.assert_array_equal(predict(trained_sequential, features), predict(loaded, features))
    assert type(loaded.optimizer).__name__ == "Adam"
    assert int(loaded.optimizer.iterations) == int(trained_sequential.optimizer.iterations) == 4


def test_python_lambda_is_refused_without_trust_and_loads_with_it(
    lambda_model: Any, features: np.ndarray, predict: Callable[[Any, Any], Any], tmp_path: Path
) -> None:
    serializer = KerasV3Serializer()
    saved = serializer.save(lambda_model, tmp_path)
    assert saved.details["python_lambdas"] == ["double_plus_one"]

    with pytest.raises(UntrustedFormat, match=r"double_plus_one.*trust=True") as refused:
        serializer.load(tmp_path, details=saved.details)
    assert "\n" not in str(refused.value)

    loaded = serializer.load(tmp_path, details=saved.details, trust=True)
    np.testing.assert_array_equal(predict(lambda_model, features), predict(loaded, features))


def test_safe_mode_cannot_be_passed_around_trust(lambda_model: Any, tmp_path: Path) -> None:
    saved = KerasV3Serializer().save(lambda_model, tmp_path)
    with pytest.raises(ModelshelfError, match=r"safe_mode.*trust"):
        KerasV3Serializer().load(tmp_path, details=saved.details, safe_mode=False)


def test_unregistered_custom_class_is_named_and_loads_with_custom_objects(
    keras: Any, features: np.ndarray, predict: Callable[[Any, Any], Any], tmp_path: Path
) -> None:
    class Scaled(keras.layers.Layer):
        """A custom layer Keras cannot find by itself: not registered as serializable."""

        def __init__(self, factor: float = 3.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x: Any) -> Any:
            return x * self.factor

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "factor": self.factor}

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(Scaled(name="scaled")(inputs)))
    serializer = KerasV3Serializer()
    saved = serializer.save(model, tmp_path)
    assert saved.details["custom_objects"] == ["Scaled"]

    with pytest.raises(ModelshelfError, match=r"cannot find \(Scaled\).*custom_objects"):
        serializer.load(tmp_path, details=saved.details)

    loaded = serializer.load(tmp_path, details=saved.details, custom_objects={"Scaled": Scaled})
    np.testing.assert_array_equal(predict(model, features), predict(loaded, features))


def test_registered_subclassed_model_round_trips_without_signature(
    keras: Any, features: np.ndarray, predict: Callable[[Any, Any], Any], tmp_path: Path
) -> None:
    @keras.saving.register_keras_serializable(package="modelshelf_keras_tests")
    class TwoLayer(keras.Model):
        def __init__(self, units: int = 3, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.units = units
            self.first = keras.layers.Dense(units, activation="relu")
            self.second = keras.layers.Dense(1)

        def call(self, x: Any) -> Any:
            return self.second(self.first(x))

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "units": self.units}

    model = TwoLayer(units=5)
    model(features)  # builds the weights
    saved = KerasV3Serializer().save(model, tmp_path)
    # A subclassed model has no symbolic inputs: no signature rather than a guessed one.
    assert saved.signature is None
    assert saved.details["class"] == "modelshelf_keras_tests>TwoLayer"
    loaded = KerasV3Serializer().load(tmp_path, details=saved.details)
    assert type(loaded) is TwoLayer and loaded.units == 5
    np.testing.assert_array_equal(predict(model, features), predict(loaded, features))


def test_unbuilt_model_is_refused_with_what_to_do(keras: Any, tmp_path: Path) -> None:
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(InvalidModel, match=r"not been built.*model\.build") as refused:
        KerasV3Serializer().save(unbuilt, tmp_path)
    assert "\n" not in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def test_a_bare_layer_forced_through_keras_v3_is_refused(keras: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidModel, match=r"keras\.Model.*Sequential"):
        KerasV3Serializer().save(keras.layers.Dense(2), tmp_path)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_importing_the_plugin_and_listing_serializers_imports_no_framework() -> None:
    result = run_python(
        """
        import sys
        import modelshelf_keras
        from modelshelf.plugins import get_registry
        names = set(get_registry().serializers())
        assert "keras-v3" in names, names
        loaded = sorted(m for m in ("keras", "torch", "tensorflow", "jax") if m in sys.modules)
        assert not loaded, loaded
        """
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("jax") is not None,
    reason="needs a machine where the JAX backend is not installed",
)
def test_missing_backend_is_one_actionable_line(tmp_path: Path) -> None:
    result = run_python(
        f"""
        from modelshelf.errors import ModelshelfError
        from modelshelf_keras import KerasV3Serializer
        try:
            KerasV3Serializer().load(__import__("pathlib").Path({str(tmp_path)!r}), details={{}})
        except ModelshelfError as exc:
            print(exc)
        """,
        KERAS_BACKEND="jax",
    )
    assert result.returncode == 0, result.stderr
    message = result.stdout.strip()
    assert "KERAS_BACKEND=torch" in message and "jax" in message
    assert "\n" not in message


def test_lambda_of_a_function_keras_cannot_find_names_it_on_load(
    keras: Any, tmp_path: Path
) -> None:
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(keras.ops.abs, name="absolute")(inputs)
    saved = KerasV3Serializer().save(keras.Model(inputs, outputs), tmp_path)
    assert saved.details["python_lambdas"] == []  # stored by name, not as bytecode
    assert saved.details["custom_objects"] == ["abs"]
    with pytest.raises(ModelshelfError, match=r"cannot find \(abs\)") as refused:
        KerasV3Serializer().load(tmp_path, details=saved.details)
    assert "\n" not in str(refused.value)


def test_unknown_options_are_refused_naming_the_accepted_ones(
    trained_sequential: Any, tmp_path: Path
) -> None:
    with pytest.raises(ModelshelfError, match=r"zipped \(accepted: none\)"):
        KerasV3Serializer().save(trained_sequential, tmp_path, zipped=False)
    assert list(tmp_path.iterdir()) == []
    saved = KerasV3Serializer().save(trained_sequential, tmp_path)
    with pytest.raises(ModelshelfError, match=r"custom_object \(accepted: compile, custom_objects"):
        KerasV3Serializer().load(tmp_path, details=saved.details, custom_object={})


# --- hostile and damaged versions ----------------------------------------------------------------


def test_file_named_by_details_must_be_a_file_of_the_version(
    trained_sequential: Any, tmp_path: Path
) -> None:
    serializer = KerasV3Serializer()
    version, saved, outside = version_with_decoy(
        serializer, trained_sequential, tmp_path, "model.keras", link="link.keras"
    )
    hostile: list[object] = [
        "/etc/passwd",
        str(outside),
        "../outside.keras",
        3,
        None,
        "link.keras",
        "other.keras",
    ]
    for value in hostile:
        with pytest.raises(IntegrityError) as caught:
            serializer.load(version, details={**saved.details, "file": value})
        assert repr(value)[:20] in one_line(caught.value)


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "cut weights", "cut config"])
def test_damaged_keras_file_is_one_invalid_model_line(
    trained_sequential: Any, tmp_path: Path, damage: str
) -> None:
    import io
    import zipfile

    serializer = KerasV3Serializer()
    saved = serializer.save(trained_sequential, tmp_path)
    path = tmp_path / "model.keras"
    data = path.read_bytes()
    if damage == "truncated":
        damaged = data[: len(data) // 2]
    elif damage == "not a zip":
        damaged = b"garbage" * 100
    else:
        # A well-formed zip whose weights (HDF5) or config (JSON) member is cut in half.
        member = ".weights.h5" if damage == "cut weights" else "config.json"
        buffer = io.BytesIO()
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(buffer, "w") as target:
            for name in source.namelist():
                content = source.read(name)
                target.writestr(
                    name, content[: len(content) // 2] if name.endswith(member) else content
                )
        damaged = buffer.getvalue()
    path.write_bytes(damaged)
    with pytest.raises(InvalidModel) as caught:
        serializer.load(tmp_path, details=saved.details)
    assert "'model.keras'" in one_line(caught.value) and "keras" in str(caught.value)
