"""modelshelf-catboost against real CatBoost models, through a real filesystem shelf.

Every model is trained with ``allow_writing_files=False`` so CatBoost leaves no catboost_info/ behind,
and with one thread because the test machine is shared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import catboost as cb
import numpy as np
import pandas as pd
import pytest
from modelshelf.errors import ModelshelfError
from modelshelf.plugins import get_registry
from modelshelf.serializers import choose

QUIET = {"verbose": 0, "allow_writing_files": False, "thread_count": 1, "random_seed": 0}


class MyRegressor(cb.CatBoostRegressor):
    """A user subclass: comes back as CatBoostRegressor."""


@pytest.fixture
def frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(
        {
            "size": rng.normal(size=300),
            "rooms": rng.integers(1, 6, size=300),
            "city": rng.choice(["paris", "lyon", "nice"], size=300),
        }
    )
    y = np.where(X["size"] + (X["city"] == "paris") > 0.5, "buy", "skip")
    return X, y


@pytest.mark.parametrize(
    "cls",
    [cb.CatBoostClassifier, cb.CatBoostRegressor, cb.CatBoostRanker, cb.CatBoost, MyRegressor],
)
def test_claims_every_catboost_model(cls: type) -> None:
    serializers = [entry.serializer for entry in get_registry().serializers().values()]
    assert choose(cls(), serializers).name == "catboost-cbm"


def test_classifier_with_categories_and_string_labels(local_shelf: Any, frame: Any) -> None:
    X, y = frame
    model = cb.CatBoostClassifier(iterations=20, depth=3, learning_rate=0.3, **QUIET)
    model.fit(X, y, cat_features=["city"])
    v = local_shelf.upload("buy", model)
    assert v.signature == {
        "inputs": [
            {
                "name": "X",
                "shape": [None, 3],
                "feature_names": ["size", "rooms", "city"],
                "cat_features": ["city"],
            }
        ],
        "outputs": [
            {
                "name": "y",
                "kind": "classifier",
                "loss_function": "Logloss",
                "classes": ["buy", "skip"],
            }
        ],
    }
    assert v.serializer.details["tree_count"] == 20

    loaded = local_shelf.load("buy:1")
    assert type(loaded) is cb.CatBoostClassifier
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert list(loaded.classes_) == ["buy", "skip"]
    params = loaded.get_params()
    assert (params["iterations"], params["depth"], params["learning_rate"]) == (20, 3, 0.3)


def test_multiclass(local_shelf: Any, frame: Any) -> None:
    X, _ = frame
    y = np.asarray(X["city"])  # predict the city from the rest: 3 classes
    model = cb.CatBoostClassifier(iterations=10, loss_function="MultiClass", **QUIET)
    model.fit(X[["size", "rooms"]], y)
    v = local_shelf.upload("city", model)
    (output,) = v.signature["outputs"]
    assert output["loss_function"] == "MultiClass"
    assert output["classes"] == ["lyon", "nice", "paris"]
    np.testing.assert_array_equal(
        local_shelf.load("city:1").predict_proba(X[["size", "rooms"]]),
        model.predict_proba(X[["size", "rooms"]]),
    )


def test_regressor_and_generic_catboost_keep_their_class(
    local_shelf: Any, tabular_data: Any
) -> None:
    X, _ = tabular_data
    target = X[:, 0] * 2.0
    regressor = cb.CatBoostRegressor(iterations=10, **QUIET).fit(X, target)
    generic = cb.CatBoost({"iterations": 10, "loss_function": "RMSE", **QUIET}).fit(X, target)
    v_reg = local_shelf.upload("reg", regressor)
    v_gen = local_shelf.upload("gen", generic)
    expected = [{"name": "y", "kind": "regressor", "loss_function": "RMSE"}]
    assert v_reg.signature["outputs"] == expected
    assert v_gen.signature["outputs"] == expected
    assert v_gen.serializer.details["restore_as"] == "catboost.core.CatBoost"

    loaded_reg = local_shelf.load("reg:1")
    loaded_gen = local_shelf.load("gen:1")
    assert type(loaded_reg) is cb.CatBoostRegressor
    assert type(loaded_gen) is cb.CatBoost
    np.testing.assert_array_equal(loaded_reg.predict(X), regressor.predict(X))
    np.testing.assert_array_equal(loaded_gen.predict(X), generic.predict(X))


def test_subclass_comes_back_as_nearest_catboost_class(local_shelf: Any, tabular_data: Any) -> None:
    X, _ = tabular_data
    model = MyRegressor(iterations=5, **QUIET).fit(X, X[:, 1])
    v = local_shelf.upload("sub", model)
    assert v.serializer.details["class"].endswith("MyRegressor")
    assert v.serializer.details["restore_as"] == "catboost.core.CatBoostRegressor"
    loaded = local_shelf.load("sub:1")
    assert type(loaded) is cb.CatBoostRegressor
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_early_stopping_best_model(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data
    model = cb.CatBoostClassifier(
        iterations=300, learning_rate=0.5, early_stopping_rounds=3, **QUIET
    )
    model.fit(X[:150], y[:150], eval_set=(X[150:], y[150:]))
    assert model.tree_count_ < 300  # early stopping did stop, or this proves nothing
    v = local_shelf.upload("es", model)
    assert v.serializer.details["best_iteration"] == model.get_best_iteration()
    assert v.serializer.details["tree_count"] == model.tree_count_
    np.testing.assert_array_equal(local_shelf.load("es:1").predict_proba(X), model.predict_proba(X))


def test_unknown_options_are_refused(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data
    model = cb.CatBoostClassifier(iterations=2, **QUIET).fit(X, y)
    with pytest.raises(ModelshelfError, match="takes no save options"):
        local_shelf.upload("m", model, options={"format": "json"})
    local_shelf.upload("m", model)
    with pytest.raises(ModelshelfError, match="takes no load options"):
        local_shelf.load("m:1", format="json")


def test_no_catboost_info_written(
    local_shelf: Any, tabular_data: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    X, y = tabular_data
    local_shelf.upload("m", cb.CatBoostClassifier(iterations=2, **QUIET).fit(X, y))
    local_shelf.load("m:1")
    assert not (tmp_path / "catboost_info").exists()


def test_fresh_process_lists_downloads_and_loads(
    local_shelf: Any, frame: Any, modelshelf_fresh_load: Any
) -> None:
    X, y = frame
    model = cb.CatBoostClassifier(iterations=10, **QUIET).fit(X, y, cat_features=["city"])
    local_shelf.upload("buy", model)
    fresh = modelshelf_fresh_load(local_shelf.url, "buy:1", X, "predict_proba", "predict")
    assert (fresh.versions, fresh.files, fresh.type) == ([1], ["model.cbm"], "CatBoostClassifier")
    np.testing.assert_array_equal(fresh.outputs["predict_proba"], model.predict_proba(X))
    assert list(fresh.outputs["predict"]) == list(model.predict(X))


def test_ranker_comes_back_as_ranker(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data
    groups = np.repeat(np.arange(20), 10)
    model = cb.CatBoostRanker(iterations=5, **QUIET).fit(X, y, group_id=groups)
    v = local_shelf.upload("rank", model)
    assert v.signature["outputs"][0]["kind"] == "ranker"
    loaded = local_shelf.load("rank:1")
    assert type(loaded) is cb.CatBoostRanker
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
