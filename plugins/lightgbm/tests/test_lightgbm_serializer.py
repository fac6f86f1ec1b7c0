"""modelshelf-lightgbm against real LightGBM models, through a real filesystem shelf."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from modelshelf.errors import IntegrityError, InvalidModel, ModelshelfError
from modelshelf.plugins import get_registry
from modelshelf.serializers import choose
from modelshelf_lightgbm import LightGBMSerializer


def test_import_and_listing_import_no_framework(run_python: Any) -> None:
    code = (
        "import sys, modelshelf_lightgbm\n"
        "from modelshelf.plugins import get_registry\n"
        "assert 'lightgbm-text' in get_registry().serializers()\n"
        "bad = [m for m in ('lightgbm', 'sklearn', 'numpy', 'scipy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    run_python(code, env={"MODELSHELF_LOAD_PLUGINS": "lightgbm"})


@pytest.mark.parametrize("cls", [lgb.LGBMClassifier, lgb.LGBMRegressor, lgb.LGBMRanker])
def test_lightgbm_beats_sklearn_skops_on_wrappers(cls: type) -> None:
    serializers = [entry.serializer for entry in get_registry().serializers().values()]
    assert choose(cls(), serializers).name == "lightgbm-text"


def test_classifier_comes_back_as_booster_with_same_probabilities(shelf: Any, data: Any) -> None:
    X, y = data
    model = lgb.LGBMClassifier(n_estimators=10, num_leaves=7, random_state=0, verbose=-1, n_jobs=1).fit(X, y)
    v = shelf.upload("clf", model)
    assert v.serializer.name == "lightgbm-text"
    assert v.framework.name == "lightgbm" and v.framework.version == lgb.__version__
    assert [f.path for f in v.files] == ["model.txt"]
    assert v.signature == {
        "inputs": [
            {"name": "X", "shape": [None, 4], "feature_names": [f"Column_{i}" for i in range(4)]}
        ],
        "outputs": [{"name": "y", "kind": "classifier", "objective": "binary", "classes": [0, 1]}],
    }
    details = v.serializer.details
    assert details["class"] == "lightgbm.sklearn.LGBMClassifier"
    assert details["params"]["num_leaves"] == 7 and details["params"]["n_estimators"] == 10
    assert details["num_trees"] == 10

    loaded = shelf.load("clf:1")
    assert type(loaded) is lgb.Booster
    # Binary: the Booster gives P(class 1), the wrapper's second column.
    proba = loaded.predict(X)
    np.testing.assert_array_equal(proba, model.predict_proba(X)[:, 1])
    # What the README tells users to do to get labels back.
    labels = np.asarray(v.signature["outputs"][0]["classes"])
    np.testing.assert_array_equal(labels[(proba > 0.5).astype(int)], model.predict(X))


def test_multiclass_string_labels_recoverable_from_signature(shelf: Any, data: Any) -> None:
    X, _ = data
    labels = np.array(["low", "mid", "high"])[np.digitize(X[:, 0], [-0.5, 0.5])]
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(X, labels)
    v = shelf.upload("multi", model)
    (output,) = v.signature["outputs"]
    assert output["n_classes"] == 3
    assert output["objective"] == "multiclass"
    classes = output["classes"]
    assert classes == ["high", "low", "mid"]

    booster = shelf.load("multi:1")
    proba = booster.predict(X)
    np.testing.assert_array_equal(proba, model.predict_proba(X))
    # What the README tells users to do to get labels back.
    np.testing.assert_array_equal(np.asarray(classes)[proba.argmax(axis=1)], model.predict(X))


def test_regressor_with_pandas_categories(shelf: Any) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=300),
            "city": pd.Categorical(rng.choice(["paris", "lyon", "nice"], size=300)),
        }
    )
    target = frame["size"] * 2 + (frame["city"] == "paris") * 3.0
    model = lgb.LGBMRegressor(n_estimators=10, min_child_samples=5, verbose=-1, n_jobs=1).fit(frame, target)
    v = shelf.upload("house", model)
    assert v.signature["inputs"] == [
        {"name": "X", "shape": [None, 2], "feature_names": ["size", "city"]}
    ]
    assert v.signature["outputs"][0]["kind"] == "regressor"
    booster = shelf.load("house:1")
    assert booster.pandas_categorical == [["lyon", "nice", "paris"]]
    # Category codes must map the same way, or these predictions would differ.
    np.testing.assert_array_equal(booster.predict(frame), model.predict(frame))


def test_raw_booster_round_trip(shelf: Any, data: Any) -> None:
    X, _ = data
    train = lgb.Dataset(X, label=X[:, 0] * 2.0, feature_name=["a", "b", "c", "d"])
    booster = lgb.train({"objective": "regression", "verbose": -1, "seed": 0, "num_threads": 1}, train, 8)
    v = shelf.upload("raw", booster)
    assert v.serializer.details["class"] == "lightgbm.basic.Booster"
    assert "params" not in v.serializer.details
    assert v.signature["inputs"][0]["feature_names"] == ["a", "b", "c", "d"]
    loaded = shelf.load("raw:1")
    assert loaded.feature_name() == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(loaded.predict(X), booster.predict(X))


def test_early_stopping_keeps_best_iteration_predictions(shelf: Any, data: Any) -> None:
    X, y = data
    model = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.5, verbose=-1, n_jobs=1)
    # LightGBM 4.7 renamed eval_set to eval_X/eval_y; older 4.x only knows eval_set.
    if "eval_X" in inspect.signature(model.fit).parameters:
        validation = {"eval_X": (X[150:],), "eval_y": (y[150:],)}
    else:
        validation = {"eval_set": [(X[150:], y[150:])]}
    model.fit(X[:150], y[:150], callbacks=[lgb.early_stopping(3, verbose=False)], **validation)
    assert 0 < model.best_iteration_ < 300  # early stopping did stop, or this proves nothing
    v = shelf.upload("es", model)
    assert v.serializer.details["best_iteration"] == model.best_iteration_
    assert v.serializer.details["skipped_params"] == []
    loaded = shelf.load("es:1")
    assert loaded.num_trees() == model.best_iteration_
    np.testing.assert_array_equal(loaded.predict(X), model.predict_proba(X)[:, 1])


def test_unfitted_model_is_a_clear_error(shelf: Any) -> None:
    with pytest.raises(ModelshelfError, match="unfitted LGBMClassifier: fit it") as caught:
        shelf.upload("m", lgb.LGBMClassifier())
    assert "\n" not in str(caught.value)


def test_unknown_options_are_refused(shelf: Any, data: Any) -> None:
    X, _ = data
    model = lgb.LGBMRegressor(n_estimators=2, verbose=-1, n_jobs=1).fit(X, X[:, 0])
    with pytest.raises(ModelshelfError, match="takes no save options"):
        shelf.upload("m", model, options={"num_iteration": 1})
    shelf.upload("m", model)
    with pytest.raises(ModelshelfError, match="takes no load options"):
        shelf.load("m:1", as_sklearn=True)


def test_fresh_process_lists_downloads_and_loads(
    shelf: Any, shelf_path: Path, data: Any, run_python: Any, tmp_path: Path
) -> None:
    X, y = data
    model = lgb.LGBMClassifier(n_estimators=6, verbose=-1, n_jobs=1).fit(X, y)
    shelf.upload("clf", model)
    np.save(tmp_path / "X.npy", X)
    code = (
        "import sys, numpy as np, modelshelf\n"
        "shelf = modelshelf.open(sys.argv[1])\n"
        "assert [v.version for v in shelf.versions('clf')] == [1]\n"
        "dest = shelf.download('clf:1', sys.argv[2])\n"
        "assert sorted(p.name for p in dest.iterdir()) == ['model.txt']\n"
        "booster = shelf.load('clf:1')\n"
        "assert type(booster).__name__ == 'Booster', type(booster)\n"
        "np.save(sys.argv[3], booster.predict(np.load(sys.argv[4])))\n"
    )
    out = tmp_path / "proba.npy"
    run_python(code, str(shelf_path), str(tmp_path / "dl"), str(out), str(tmp_path / "X.npy"))
    np.testing.assert_array_equal(np.load(out), model.predict_proba(X)[:, 1])


def test_callable_objective_gives_raw_scores_and_is_reported(shelf: Any, data: Any) -> None:
    X, y = data

    def logistic(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = 1.0 / (1.0 + np.exp(-y_pred))
        return p - y_true, p * (1.0 - p)

    model = lgb.LGBMClassifier(n_estimators=5, objective=logistic, verbose=-1, n_jobs=1).fit(X, y)
    v = shelf.upload("custom", model)
    assert v.serializer.details["skipped_params"] == ["objective"]
    assert v.signature["outputs"] == [{"name": "y", "kind": "classifier", "classes": [0, 1]}]
    booster = shelf.load("custom:1")
    np.testing.assert_array_equal(booster.predict(X), model.predict(X, raw_score=True))


# --- hostile and damaged versions ----------------------------------------------------------------


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, f"not one line: {message!r}"
    return message


def test_load_opens_only_the_version_file_whatever_details_say(
    data: Any, tmp_path: Path
) -> None:
    serializer = LightGBMSerializer()
    version = tmp_path / "snapshot" / "version"
    version.mkdir(parents=True)
    saved = serializer.save(lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(*data), version)
    # The file name is fixed: details naming another file are ignored, never followed.
    outside = tmp_path / "snapshot" / "outside.bin"
    outside.write_bytes(b"never to be opened" * 64)
    for value in ("/etc/passwd", str(outside), "../outside.bin", 4, None, "other.bin"):
        serializer.load(version, details={**saved.details, "file": value})
    # A link planted in place of the version's file leads outside it: refused, not followed.
    (version / "model.txt").rename(outside)
    (version / "model.txt").symlink_to(outside)
    with pytest.raises(IntegrityError, match="symbolic link") as caught:
        serializer.load(version, details=saved.details)
    _one_line(caught.value)
    (version / "model.txt").unlink()
    with pytest.raises(IntegrityError, match="no file 'model.txt'") as caught:
        serializer.load(version, details=saved.details)
    _one_line(caught.value)


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_damaged_model_file_is_one_invalid_model_line(
    data: Any, tmp_path: Path, how: str
) -> None:
    serializer = LightGBMSerializer()
    saved = serializer.save(lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(*data), tmp_path)
    path = tmp_path / "model.txt"
    stored = path.read_bytes()
    damaged = {
        "truncated": stored[: len(stored) // 2],
        "garbage": bytes((b * 7 + 3) % 256 for b in stored),
        "empty": b"",
    }
    path.write_bytes(damaged[how])
    with pytest.raises(InvalidModel) as caught:
        serializer.load(tmp_path, details=saved.details)
    assert "'model.txt'" in _one_line(caught.value) and "lightgbm" in str(caught.value)


def test_every_cut_of_a_model_file_is_refused_or_loads_never_crashes(
    data: Any, tmp_path: Path, run_python: Any
) -> None:
    """LightGBM parses trees in parallel at the offsets its header gives, and its parameter
    section without bounds checks: a cut in either used to abort or segfault the process."""
    model = lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(*data)
    LightGBMSerializer().save(model, tmp_path)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from modelshelf.errors import ModelshelfError\n"
        "from modelshelf_lightgbm import LightGBMSerializer\n"
        "version = Path(sys.argv[1])\n"
        "stored = (version / 'model.txt').read_bytes()\n"
        "refused = 0\n"
        "for cut in range(0, len(stored), 3):\n"
        "    (version / 'model.txt').write_bytes(stored[:cut])\n"
        "    try:\n"
        "        LightGBMSerializer().load(version, details={})\n"
        "    except ModelshelfError as exc:\n"
        "        assert '\\n' not in str(exc), exc\n"
        "        refused += 1\n"
        "print(refused, len(range(0, len(stored), 3)))\n"
    )
    refused, cuts = map(int, run_python(code, str(tmp_path)).stdout.split())
    assert refused > cuts // 2
