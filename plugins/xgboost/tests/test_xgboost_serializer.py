"""modelshelf-xgboost against real XGBoost models, through a real filesystem shelf."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from modelshelf.errors import IntegrityError, InvalidModel, ModelshelfError
from modelshelf.plugins import get_registry
from modelshelf.serializers import choose
from modelshelf_xgboost import XGBoostSerializer


class MyClassifier(xgb.XGBClassifier):
    """A user subclass: xgboost cannot rebuild it, so it comes back as XGBClassifier."""


def _all_serializers() -> list[Any]:
    return [entry.serializer for entry in get_registry().serializers().values()]


def test_import_and_listing_import_no_framework(run_python: Any) -> None:
    code = (
        "import sys, modelshelf_xgboost\n"
        "from modelshelf.plugins import get_registry\n"
        "assert 'xgboost-ubj' in get_registry().serializers()\n"
        "bad = [m for m in ('xgboost', 'sklearn', 'numpy', 'scipy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    run_python(code, env={"MODELSHELF_LOAD_PLUGINS": "xgboost"})


# --- the ambiguity the issue asks about -------------------------------------------------------


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


def test_upload_picks_xgboost_over_skops(shelf: Any, data: Any) -> None:
    X, y = data
    v = shelf.upload("m", xgb.XGBClassifier(n_jobs=1, n_estimators=3).fit(X, y))
    assert v.serializer.name == "xgboost-ubj"
    assert v.serializer.distribution == "modelshelf-xgboost"


# --- round trips -------------------------------------------------------------------------------


def test_classifier_comes_back_as_classifier_with_hyperparameters(shelf: Any, data: Any) -> None:
    X, y = data
    model = xgb.XGBClassifier(n_jobs=1, n_estimators=8, max_depth=3, learning_rate=0.2, random_state=0)
    model.fit(X, y)
    v = shelf.upload("clf", model)
    assert v.framework.name == "xgboost" and v.framework.version == xgb.__version__
    assert [f.path for f in v.files] == ["model.ubj"]
    assert v.signature == {
        "inputs": [{"name": "X", "shape": [None, 4]}],
        "outputs": [
            {"name": "y", "kind": "classifier", "objective": "binary:logistic", "classes": [0, 1]}
        ],
    }
    assert v.serializer.details["restore_as"] == "xgboost.sklearn.XGBClassifier"

    loaded = shelf.load("clf:1")
    assert type(loaded) is xgb.XGBClassifier
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    params = loaded.get_params()
    assert (params["n_estimators"], params["max_depth"], params["learning_rate"]) == (8, 3, 0.2)


def test_multiclass(shelf: Any, data: Any) -> None:
    X, _ = data
    y = np.digitize(X[:, 0], [-0.5, 0.5])  # 3 classes
    model = xgb.XGBClassifier(n_jobs=1, n_estimators=5, max_depth=2).fit(X, y)
    v = shelf.upload("multi", model)
    (output,) = v.signature["outputs"]
    assert output["n_classes"] == 3
    assert output["classes"] == [0, 1, 2]
    assert output["objective"] == "multi:softprob"
    np.testing.assert_array_equal(shelf.load("multi:1").predict_proba(X), model.predict_proba(X))


def test_regressor_with_feature_names_and_categories(shelf: Any) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=300),
            "rooms": rng.integers(1, 6, size=300),
            "city": pd.Categorical(rng.choice(["paris", "lyon", "nice"], size=300)),
        }
    )
    target = frame["size"] * 2 + frame["rooms"] + (frame["city"] == "paris") * 3.0
    model = xgb.XGBRegressor(n_jobs=1, n_estimators=10, max_depth=3, enable_categorical=True, tree_method="hist")
    model.fit(frame, target)
    v = shelf.upload("house", model)
    assert v.signature["inputs"] == [
        {
            "name": "X",
            "shape": [None, 3],
            "feature_names": ["size", "rooms", "city"],
            "feature_types": ["float", "int", "c"],
        }
    ]
    assert v.signature["outputs"][0]["kind"] == "regressor"

    loaded = shelf.load("house:1")
    assert type(loaded) is xgb.XGBRegressor
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    assert list(loaded.feature_names_in_) == ["size", "rooms", "city"]


def test_booster_comes_back_as_booster(shelf: Any, data: Any) -> None:
    X, y = data
    train = xgb.DMatrix(X, label=y, feature_names=["a", "b", "c", "d"])
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "seed": 0, "nthread": 1}, train, 6)
    v = shelf.upload("raw", booster)
    assert v.serializer.details["restore_as"] == "xgboost.core.Booster"
    assert v.signature["inputs"] == [
        {"name": "X", "shape": [None, 4], "feature_names": ["a", "b", "c", "d"]}
    ]
    loaded = shelf.load("raw:1")
    assert type(loaded) is xgb.Booster
    assert loaded.feature_names == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(loaded.predict(train), booster.predict(train))


def test_early_stopping_best_iteration_survives(shelf: Any, data: Any) -> None:
    X, y = data
    model = xgb.XGBClassifier(n_jobs=1, n_estimators=200, learning_rate=0.5, early_stopping_rounds=3)
    model.fit(X[:150], y[:150], eval_set=[(X[150:], y[150:])], verbose=False)
    assert model.best_iteration < 199  # early stopping did stop, or this test proves nothing
    v = shelf.upload("es", model)
    assert v.serializer.details["best_iteration"] == model.best_iteration
    loaded = shelf.load("es:1")
    assert loaded.best_iteration == model.best_iteration
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_subclass_comes_back_as_nearest_xgboost_class(shelf: Any, data: Any) -> None:
    X, y = data
    model = MyClassifier(n_jobs=1, n_estimators=4).fit(X, y)
    v = shelf.upload("sub", model)
    assert v.serializer.details["class"].endswith("MyClassifier")
    assert v.serializer.details["restore_as"] == "xgboost.sklearn.XGBClassifier"
    loaded = shelf.load("sub:1")
    assert type(loaded) is xgb.XGBClassifier
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_as_booster_option(shelf: Any, data: Any) -> None:
    X, y = data
    model = xgb.XGBClassifier(n_jobs=1, n_estimators=4).fit(X, y)
    shelf.upload("m", model)
    booster = shelf.load("m:1", as_booster=True)
    assert type(booster) is xgb.Booster
    np.testing.assert_array_equal(booster.predict(xgb.DMatrix(X)), model.predict_proba(X)[:, 1])


def test_callable_params_are_listed_as_skipped(shelf: Any, data: Any) -> None:
    X, y = data

    def half_error(predt: np.ndarray, dtrain: Any) -> float:
        return float(np.mean(predt > 0.5))

    model = xgb.XGBClassifier(n_jobs=1, n_estimators=3, eval_metric=half_error).fit(X, y)
    v = shelf.upload("cb", model)
    assert v.serializer.details["skipped_params"] == ["eval_metric"]
    assert "eval_metric" not in v.serializer.details["params"]
    np.testing.assert_array_equal(shelf.load("cb:1").predict_proba(X), model.predict_proba(X))


def test_unfitted_model_is_a_clear_error(shelf: Any) -> None:
    with pytest.raises(ModelshelfError, match="unfitted XGBClassifier: fit it") as caught:
        shelf.upload("m", xgb.XGBClassifier())
    assert "\n" not in str(caught.value)


def test_manifest_cannot_name_an_arbitrary_class(shelf: Any, data: Any, tmp_path: Path) -> None:
    X, y = data
    shelf.upload("m", xgb.XGBClassifier(n_jobs=1, n_estimators=2).fit(X, y))
    directory = shelf.download("m:1", tmp_path / "dl")
    with pytest.raises(ModelshelfError, match=r"os\.system"):
        XGBoostSerializer().load(directory, details={"restore_as": "os.system"})


def test_unknown_options_are_refused(shelf: Any, data: Any) -> None:
    X, y = data
    with pytest.raises(ModelshelfError, match="takes no save options"):
        shelf.upload("m", xgb.XGBClassifier(n_jobs=1, n_estimators=2).fit(X, y), options={"format": "json"})
    shelf.upload("m", xgb.XGBClassifier(n_jobs=1, n_estimators=2).fit(X, y))
    with pytest.raises(ModelshelfError, match="as_booster"):
        shelf.load("m:1", as_boster=True)


def test_fresh_process_lists_downloads_and_loads(
    shelf: Any, shelf_path: Path, data: Any, run_python: Any, tmp_path: Path
) -> None:
    X, y = data
    model = xgb.XGBClassifier(n_jobs=1, n_estimators=6, max_depth=2).fit(X, y)
    shelf.upload("clf", model)
    np.save(tmp_path / "X.npy", X)
    code = (
        "import sys, numpy as np, modelshelf\n"
        "shelf = modelshelf.open(sys.argv[1])\n"
        "assert [v.version for v in shelf.versions('clf')] == [1]\n"
        "dest = shelf.download('clf:1', sys.argv[2])\n"
        "assert sorted(p.name for p in dest.iterdir()) == ['model.ubj']\n"
        "model = shelf.load('clf:1')\n"
        "assert type(model).__name__ == 'XGBClassifier', type(model)\n"
        "np.save(sys.argv[3], model.predict_proba(np.load(sys.argv[4])))\n"
    )
    out = tmp_path / "proba.npy"
    run_python(code, str(shelf_path), str(tmp_path / "dl"), str(out), str(tmp_path / "X.npy"))
    np.testing.assert_array_equal(np.load(out), model.predict_proba(X))


@pytest.mark.parametrize("cls", [xgb.XGBRFClassifier, xgb.XGBRFRegressor, xgb.XGBRanker])
def test_other_wrappers_come_back_as_themselves(shelf: Any, data: Any, cls: type) -> None:
    X, y = data
    fit_args = {"qid": np.repeat(np.arange(20), 10)} if cls is xgb.XGBRanker else {}
    model = cls(n_estimators=3, max_depth=2, n_jobs=1).fit(X, y, **fit_args)
    v = shelf.upload("w", model)
    loaded = shelf.load(v.ref)
    assert type(loaded) is cls
    assert loaded.get_params()["max_depth"] == 2
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


# --- hostile and damaged versions ----------------------------------------------------------------


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, f"not one line: {message!r}"
    return message


def test_load_opens_only_the_version_file_whatever_details_say(
    data: Any, tmp_path: Path
) -> None:
    serializer = XGBoostSerializer()
    version = tmp_path / "snapshot" / "version"
    version.mkdir(parents=True)
    saved = serializer.save(xgb.XGBClassifier(n_estimators=3).fit(*data), version)
    # The file name is fixed: details naming another file are ignored, never followed.
    outside = tmp_path / "snapshot" / "outside.bin"
    outside.write_bytes(b"never to be opened" * 64)
    for value in ("/etc/passwd", str(outside), "../outside.bin", 4, None, "other.bin"):
        serializer.load(version, details={**saved.details, "file": value})
    # A link planted in place of the version's file leads outside it: refused, not followed.
    (version / "model.ubj").rename(outside)
    (version / "model.ubj").symlink_to(outside)
    with pytest.raises(IntegrityError, match="symbolic link") as caught:
        serializer.load(version, details=saved.details)
    _one_line(caught.value)
    (version / "model.ubj").unlink()
    with pytest.raises(IntegrityError, match="no file 'model.ubj'") as caught:
        serializer.load(version, details=saved.details)
    _one_line(caught.value)


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_damaged_model_file_is_one_invalid_model_line(
    data: Any, tmp_path: Path, how: str
) -> None:
    serializer = XGBoostSerializer()
    saved = serializer.save(xgb.XGBClassifier(n_estimators=3).fit(*data), tmp_path)
    path = tmp_path / "model.ubj"
    stored = path.read_bytes()
    damaged = {
        "truncated": stored[: len(stored) // 2],
        "garbage": bytes((b * 7 + 3) % 256 for b in stored),
        "empty": b"",
    }
    path.write_bytes(damaged[how])
    with pytest.raises(InvalidModel) as caught:
        serializer.load(tmp_path, details=saved.details)
    assert "'model.ubj'" in _one_line(caught.value) and "xgboost" in str(caught.value)
