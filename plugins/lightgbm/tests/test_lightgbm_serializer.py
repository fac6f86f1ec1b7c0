"""modelshelf-lightgbm against real LightGBM models, through a real filesystem shelf."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from modelshelf.errors import ModelshelfError
from modelshelf.plugins import get_registry
from modelshelf.serializers import choose
from modelshelf_lightgbm import LightGBMSerializer


@pytest.mark.parametrize("cls", [lgb.LGBMClassifier, lgb.LGBMRegressor, lgb.LGBMRanker])
def test_lightgbm_beats_sklearn_skops_on_wrappers(cls: type) -> None:
    serializers = [entry.serializer for entry in get_registry().serializers().values()]
    assert choose(cls(), serializers).name == "lightgbm-text"


def test_classifier_comes_back_as_booster_with_same_probabilities(
    local_shelf: Any, tabular_data: Any
) -> None:
    X, y = tabular_data
    model = lgb.LGBMClassifier(
        n_estimators=10, num_leaves=7, random_state=0, verbose=-1, n_jobs=1
    ).fit(X, y)
    v = local_shelf.upload("clf", model)
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

    loaded = local_shelf.load("clf:1")
    assert type(loaded) is lgb.Booster
    # Binary: the Booster gives P(class 1), the wrapper's second column.
    proba = loaded.predict(X)
    np.testing.assert_array_equal(proba, model.predict_proba(X)[:, 1])
    # What the README tells users to do to get labels back.
    labels = np.asarray(v.signature["outputs"][0]["classes"])
    np.testing.assert_array_equal(labels[(proba > 0.5).astype(int)], model.predict(X))


def test_multiclass_string_labels_recoverable_from_signature(
    local_shelf: Any, tabular_data: Any
) -> None:
    X, _ = tabular_data
    labels = np.array(["low", "mid", "high"])[np.digitize(X[:, 0], [-0.5, 0.5])]
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(X, labels)
    v = local_shelf.upload("multi", model)
    (output,) = v.signature["outputs"]
    assert output["n_classes"] == 3
    assert output["objective"] == "multiclass"
    classes = output["classes"]
    assert classes == ["high", "low", "mid"]

    booster = local_shelf.load("multi:1")
    proba = booster.predict(X)
    np.testing.assert_array_equal(proba, model.predict_proba(X))
    # What the README tells users to do to get labels back.
    np.testing.assert_array_equal(np.asarray(classes)[proba.argmax(axis=1)], model.predict(X))


def test_regressor_with_pandas_categories(local_shelf: Any) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=300),
            "city": pd.Categorical(rng.choice(["paris", "lyon", "nice"], size=300)),
        }
    )
    target = frame["size"] * 2 + (frame["city"] == "paris") * 3.0
    model = lgb.LGBMRegressor(n_estimators=10, min_child_samples=5, verbose=-1, n_jobs=1).fit(
        frame, target
    )
    v = local_shelf.upload("house", model)
    assert v.signature["inputs"] == [
        {"name": "X", "shape": [None, 2], "feature_names": ["size", "city"]}
    ]
    assert v.signature["outputs"][0]["kind"] == "regressor"
    booster = local_shelf.load("house:1")
    assert booster.pandas_categorical == [["lyon", "nice", "paris"]]
    # Category codes must map the same way, or these predictions would differ.
    np.testing.assert_array_equal(booster.predict(frame), model.predict(frame))


def test_raw_booster_round_trip(local_shelf: Any, tabular_data: Any) -> None:
    X, _ = tabular_data
    train = lgb.Dataset(X, label=X[:, 0] * 2.0, feature_name=["a", "b", "c", "d"])
    booster = lgb.train(
        {"objective": "regression", "verbose": -1, "seed": 0, "num_threads": 1}, train, 8
    )
    v = local_shelf.upload("raw", booster)
    assert v.serializer.details["class"] == "lightgbm.basic.Booster"
    assert "params" not in v.serializer.details
    assert v.signature["inputs"][0]["feature_names"] == ["a", "b", "c", "d"]
    loaded = local_shelf.load("raw:1")
    assert loaded.feature_name() == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(loaded.predict(X), booster.predict(X))


def test_early_stopping_keeps_best_iteration_predictions(
    local_shelf: Any, tabular_data: Any
) -> None:
    X, y = tabular_data
    model = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.5, verbose=-1, n_jobs=1)
    # LightGBM 4.7 renamed eval_set to eval_X/eval_y; older 4.x only knows eval_set.
    if "eval_X" in inspect.signature(model.fit).parameters:
        validation = {"eval_X": (X[150:],), "eval_y": (y[150:],)}
    else:
        validation = {"eval_set": [(X[150:], y[150:])]}
    model.fit(X[:150], y[:150], callbacks=[lgb.early_stopping(3, verbose=False)], **validation)
    assert 0 < model.best_iteration_ < 300  # early stopping did stop, or this proves nothing
    v = local_shelf.upload("es", model)
    assert v.serializer.details["best_iteration"] == model.best_iteration_
    assert v.serializer.details["skipped_params"] == []
    loaded = local_shelf.load("es:1")
    assert loaded.num_trees() == model.best_iteration_
    np.testing.assert_array_equal(loaded.predict(X), model.predict_proba(X)[:, 1])


def test_unknown_options_are_refused(local_shelf: Any, tabular_data: Any) -> None:
    X, _ = tabular_data
    model = lgb.LGBMRegressor(n_estimators=2, verbose=-1, n_jobs=1).fit(X, X[:, 0])
    with pytest.raises(ModelshelfError, match="takes no save options"):
        local_shelf.upload("m", model, options={"num_iteration": 1})
    local_shelf.upload("m", model)
    with pytest.raises(ModelshelfError, match="takes no load options"):
        local_shelf.load("m:1", as_sklearn=True)


def test_fresh_process_lists_downloads_and_loads(
    local_shelf: Any, tabular_data: Any, modelshelf_fresh_load: Any
) -> None:
    model = lgb.LGBMClassifier(n_estimators=6, verbose=-1, n_jobs=1).fit(*tabular_data)
    local_shelf.upload("clf", model)
    booster = modelshelf_fresh_load(
        local_shelf.url, "clf:1", tabular_data[0]
    )  # comes back a Booster
    assert (booster.versions, booster.files, booster.type) == ([1], ["model.txt"], "Booster")
    np.testing.assert_array_equal(
        booster.outputs["predict"], model.predict_proba(tabular_data[0])[:, 1]
    )


def test_callable_objective_gives_raw_scores_and_is_reported(
    local_shelf: Any, tabular_data: Any
) -> None:
    X, y = tabular_data

    def logistic(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = 1.0 / (1.0 + np.exp(-y_pred))
        return p - y_true, p * (1.0 - p)

    model = lgb.LGBMClassifier(n_estimators=5, objective=logistic, verbose=-1, n_jobs=1).fit(X, y)
    v = local_shelf.upload("custom", model)
    assert v.serializer.details["skipped_params"] == ["objective"]
    assert v.signature["outputs"] == [{"name": "y", "kind": "classifier", "classes": [0, 1]}]
    booster = local_shelf.load("custom:1")
    np.testing.assert_array_equal(booster.predict(X), model.predict(X, raw_score=True))


# --- damaged versions ---------------------------------------------------------------------------


def test_every_cut_of_a_model_file_is_refused_or_loads_never_crashes(
    tabular_data: Any, tmp_path: Path, modelshelf_run_python: Any
) -> None:
    """LightGBM parses trees in parallel at the offsets its header gives, and its parameter
    section without bounds checks: a cut in either used to abort or segfault the process."""
    model = lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(*tabular_data)
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
    refused, cuts = map(int, modelshelf_run_python(code, str(tmp_path)).stdout.split())
    assert refused > cuts // 2
