"""modelshelf-xgboost against real XGBoost models, through a real filesystem shelf."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from modelshelf.errors import ModelshelfError
from modelshelf.plugins import get_registry
from modelshelf.serializers import choose


class MyClassifier(xgb.XGBClassifier):
    """A user subclass: xgboost cannot rebuild it, so it comes back as XGBClassifier."""


def _all_serializers() -> list[Any]:
    return [entry.serializer for entry in get_registry().serializers().values()]


# --- an XGBoost scikit-learn wrapper is claimed by one plugin, never ambiguously ------------------


@pytest.mark.parametrize(
    "cls", [xgb.XGBClassifier, xgb.XGBRegressor, xgb.XGBRanker, xgb.XGBRFClassifier, MyClassifier]
)
def test_xgboost_beats_sklearn_skops_on_wrappers(cls: type) -> None:
    """An XGBClassifier is also a scikit-learn BaseEstimator: the more specific claim must win."""
    serializers = get_registry().serializers()
    # Both plugins must really be installed, and sklearn-skops must really claim the object,
    # or this test would prove nothing.
    assert serializers["sklearn-skops"].distribution == "modelshelf-sklearn"
    model = cls()
    skops_depth = serializers["sklearn-skops"].serializer.claim_depth(model)
    xgb_depth = serializers["xgboost-ubj"].serializer.claim_depth(model)
    assert skops_depth is not None and xgb_depth is not None and xgb_depth < skops_depth
    assert choose(model, _all_serializers()).name == "xgboost-ubj"


def test_upload_picks_xgboost_over_skops(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data
    v = local_shelf.upload("m", xgb.XGBClassifier(n_jobs=1, n_estimators=3).fit(X, y))
    assert v.serializer.name == "xgboost-ubj"
    assert v.serializer.distribution == "modelshelf-xgboost"


# --- round trips -------------------------------------------------------------------------------


def test_classifier_comes_back_as_classifier_with_hyperparameters(
    local_shelf: Any, tabular_data: Any
) -> None:
    X, y = tabular_data
    model = xgb.XGBClassifier(
        n_jobs=1, n_estimators=8, max_depth=3, learning_rate=0.2, random_state=0
    )
    model.fit(X, y)
    v = local_shelf.upload("clf", model)
    assert v.signature == {
        "inputs": [{"name": "X", "shape": [None, 4]}],
        "outputs": [
            {"name": "y", "kind": "classifier", "objective": "binary:logistic", "classes": [0, 1]}
        ],
    }
    assert v.serializer.details["restore_as"] == "xgboost.sklearn.XGBClassifier"

    loaded = local_shelf.load("clf:1")
    assert type(loaded) is xgb.XGBClassifier
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    params = loaded.get_params()
    assert (params["n_estimators"], params["max_depth"], params["learning_rate"]) == (8, 3, 0.2)


def test_multiclass(local_shelf: Any, tabular_data: Any) -> None:
    X, _ = tabular_data
    y = np.digitize(X[:, 0], [-0.5, 0.5])  # 3 classes
    model = xgb.XGBClassifier(n_jobs=1, n_estimators=5, max_depth=2).fit(X, y)
    v = local_shelf.upload("multi", model)
    (output,) = v.signature["outputs"]
    assert output["n_classes"] == 3
    assert output["classes"] == [0, 1, 2]
    assert output["objective"] == "multi:softprob"
    np.testing.assert_array_equal(
        local_shelf.load("multi:1").predict_proba(X), model.predict_proba(X)
    )


def test_regressor_with_feature_names_and_categories(local_shelf: Any) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=300),
            "rooms": rng.integers(1, 6, size=300),
            "city": pd.Categorical(rng.choice(["paris", "lyon", "nice"], size=300)),
        }
    )
    target = frame["size"] * 2 + frame["rooms"] + (frame["city"] == "paris") * 3.0
    model = xgb.XGBRegressor(
        n_jobs=1, n_estimators=10, max_depth=3, enable_categorical=True, tree_method="hist"
    )
    model.fit(frame, target)
    v = local_shelf.upload("house", model)
    assert v.signature["inputs"] == [
        {
            "name": "X",
            "shape": [None, 3],
            "feature_names": ["size", "rooms", "city"],
            "feature_types": ["float", "int", "c"],
        }
    ]
    assert v.signature["outputs"][0]["kind"] == "regressor"

    loaded = local_shelf.load("house:1")
    assert type(loaded) is xgb.XGBRegressor
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    assert list(loaded.feature_names_in_) == ["size", "rooms", "city"]


def test_booster_comes_back_as_booster(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data
    train = xgb.DMatrix(X, label=y, feature_names=["a", "b", "c", "d"])
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "seed": 0, "nthread": 1}, train, 6
    )
    v = local_shelf.upload("raw", booster)
    assert v.serializer.details["restore_as"] == "xgboost.core.Booster"
    assert v.signature["inputs"] == [
        {"name": "X", "shape": [None, 4], "feature_names": ["a", "b", "c", "d"]}
    ]
    loaded = local_shelf.load("raw:1")
    assert type(loaded) is xgb.Booster
    assert loaded.feature_names == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(loaded.predict(train), booster.predict(train))


def test_early_stopping_best_iteration_survives(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data
    model = xgb.XGBClassifier(
        n_jobs=1, n_estimators=200, learning_rate=0.5, early_stopping_rounds=3
    )
    model.fit(X[:150], y[:150], eval_set=[(X[150:], y[150:])], verbose=False)
    assert model.best_iteration < 199  # early stopping did stop, or this test proves nothing
    v = local_shelf.upload("es", model)
    assert v.serializer.details["best_iteration"] == model.best_iteration
    loaded = local_shelf.load("es:1")
    assert loaded.best_iteration == model.best_iteration
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_subclass_comes_back_as_nearest_xgboost_class(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data
    model = MyClassifier(n_jobs=1, n_estimators=4).fit(X, y)
    v = local_shelf.upload("sub", model)
    assert v.serializer.details["class"].endswith("MyClassifier")
    assert v.serializer.details["restore_as"] == "xgboost.sklearn.XGBClassifier"
    loaded = local_shelf.load("sub:1")
    assert type(loaded) is xgb.XGBClassifier
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_as_booster_option(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data
    model = xgb.XGBClassifier(n_jobs=1, n_estimators=4).fit(X, y)
    local_shelf.upload("m", model)
    booster = local_shelf.load("m:1", as_booster=True)
    assert type(booster) is xgb.Booster
    np.testing.assert_array_equal(booster.predict(xgb.DMatrix(X)), model.predict_proba(X)[:, 1])


def test_callable_params_are_listed_as_skipped(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data

    def half_error(predt: np.ndarray, dtrain: Any) -> float:
        return float(np.mean(predt > 0.5))

    model = xgb.XGBClassifier(n_jobs=1, n_estimators=3, eval_metric=half_error).fit(X, y)
    v = local_shelf.upload("cb", model)
    assert v.serializer.details["skipped_params"] == ["eval_metric"]
    assert "eval_metric" not in v.serializer.details["params"]
    np.testing.assert_array_equal(local_shelf.load("cb:1").predict_proba(X), model.predict_proba(X))


def test_unknown_options_are_refused(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data
    with pytest.raises(ModelshelfError, match="takes no save options"):
        local_shelf.upload(
            "m", xgb.XGBClassifier(n_jobs=1, n_estimators=2).fit(X, y), options={"format": "json"}
        )
    local_shelf.upload("m", xgb.XGBClassifier(n_jobs=1, n_estimators=2).fit(X, y))
    with pytest.raises(ModelshelfError, match="as_booster"):
        local_shelf.load("m:1", as_boster=True)


def test_fresh_process_lists_downloads_and_loads(
    local_shelf: Any, tabular_data: Any, modelshelf_fresh_load: Any
) -> None:
    model = xgb.XGBClassifier(n_jobs=1, n_estimators=6, max_depth=2).fit(*tabular_data)
    local_shelf.upload("clf", model)
    fresh = modelshelf_fresh_load(local_shelf.url, "clf:1", tabular_data[0], "predict_proba")
    assert (fresh.versions, fresh.files, fresh.type) == ([1], ["model.ubj"], "XGBClassifier")
    np.testing.assert_array_equal(
        fresh.outputs["predict_proba"], model.predict_proba(tabular_data[0])
    )


@pytest.mark.parametrize("cls", [xgb.XGBRFClassifier, xgb.XGBRFRegressor, xgb.XGBRanker])
def test_other_wrappers_come_back_as_themselves(
    local_shelf: Any, tabular_data: Any, cls: type
) -> None:
    X, y = tabular_data
    fit_args = {"qid": np.repeat(np.arange(20), 10)} if cls is xgb.XGBRanker else {}
    model = cls(n_estimators=3, max_depth=2, n_jobs=1).fit(X, y, **fit_args)
    v = local_shelf.upload("w", model)
    loaded = local_shelf.load(v.ref)
    assert type(loaded) is cls
    assert loaded.get_params()["max_depth"] == 2
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
