"""modelshelf-sklearn against real scikit-learn, skops and joblib, through a real filesystem shelf."""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import joblib
import modelshelf
import numpy as np
import pandas as pd
import pytest
import sklearn
from modelshelf.errors import FlaggedByScan, IntegrityError, ModelshelfError, UntrustedFormat
from modelshelf.plugins import get_registry
from modelshelf.serializers import choose
from modelshelf_sklearn import JoblibSerializer, SkopsSerializer
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


class Doubler(BaseEstimator, TransformerMixin):
    """A custom transformer: a type skops does not know, so it must be refused by name."""

    def fit(self, X: Any, y: Any = None) -> Doubler:
        return self

    def transform(self, X: Any) -> Any:
        return np.asarray(X) * 2.0


DOUBLER = f"{Doubler.__module__}.Doubler"


class WritesMarker:
    """Unpickling this object creates the file ``path`` (a stand-in for arbitrary code)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (open, (self.path, "x"))


def _blob_path(local_shelf_path: Path, sha256: str) -> Path:
    return local_shelf_path / "blobs" / "sha256" / sha256[:2] / sha256


# --- skops: the default ------------------------------------------------------------------------


def test_skops_claims_estimators_and_pipelines_joblib_claims_nothing(tabular_data: Any) -> None:
    X, y = tabular_data
    serializers = [SkopsSerializer(), JoblibSerializer()]
    assert choose(LogisticRegression(), serializers).name == "sklearn-skops"
    assert choose(make_pipeline(StandardScaler(), LogisticRegression()), serializers).name == (
        "sklearn-skops"
    )
    assert JoblibSerializer().claim_depth(LogisticRegression().fit(X, y)) is None


def test_pipeline_round_trip_with_signature(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data
    frame = pd.DataFrame(X, columns=["age", "income", "tenure", "score"])
    labels = np.where(y == 1, "churn", "stay")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, labels)

    v = local_shelf.upload("churn", model, metrics={"acc": float(model.score(frame, labels))})

    assert v.serializer.name == "sklearn-skops"
    assert v.framework.name == "sklearn"
    assert v.framework.version == sklearn.__version__
    assert [f.path for f in v.files] == ["model.skops"]
    assert v.signature == {
        "inputs": [
            {"name": "X", "shape": [None, 4], "feature_names": ["age", "income", "tenure", "score"]}
        ],
        "outputs": [{"name": "y", "kind": "classifier", "classes": ["churn", "stay"]}],
    }
    assert v.serializer.details["untrusted_types"] == []
    assert v.serializer.details["class"] == "sklearn.pipeline.Pipeline"

    loaded = local_shelf.load("churn:1")
    assert isinstance(loaded, Pipeline)
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_regressor_signature(local_shelf: Any, tabular_data: Any) -> None:
    X, _ = tabular_data
    v = local_shelf.upload("reg", LinearRegression().fit(X, X[:, 0] * 3.0))
    assert v.signature == {
        "inputs": [{"name": "X", "shape": [None, 4]}],
        "outputs": [{"name": "y", "kind": "regressor"}],
    }


def test_fresh_process_lists_downloads_and_loads(
    local_shelf: Any, tabular_data: Any, modelshelf_fresh_load: Any
) -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(*tabular_data)
    local_shelf.upload("clf", model)
    fresh = modelshelf_fresh_load(local_shelf.url, "clf:1", tabular_data[0], "predict_proba")
    assert (fresh.versions, fresh.files) == ([1], ["model.skops"])
    np.testing.assert_array_equal(
        fresh.outputs["predict_proba"], model.predict_proba(tabular_data[0])
    )


def test_unknown_type_is_refused_by_name(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data
    model = make_pipeline(Doubler(), LogisticRegression()).fit(X, y)
    v = local_shelf.upload("custom", model)
    assert DOUBLER in v.serializer.details["untrusted_types"]

    with pytest.raises(UntrustedFormat) as refused:
        local_shelf.load("custom:1")
    message = str(refused.value)
    assert DOUBLER in message and "trust=True" in message
    assert "\n" not in message


def test_unknown_type_loads_with_trust_or_when_listed(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data
    model = make_pipeline(Doubler(), LogisticRegression()).fit(X, y)
    local_shelf.upload("custom", model)

    trusted = local_shelf.load("custom:1", trust=True)
    assert isinstance(trusted.steps[0][1], Doubler)
    np.testing.assert_array_equal(trusted.predict_proba(X), model.predict_proba(X))

    listed = local_shelf.load("custom:1", trusted_types=[DOUBLER])
    np.testing.assert_array_equal(listed.predict_proba(X), model.predict_proba(X))

    with pytest.raises(UntrustedFormat, match="Doubler"):
        local_shelf.load("custom:1", trusted_types=["some.other.Type"])


def test_dangerous_function_reference_is_refused_by_name(local_shelf: Any) -> None:
    """A skops file can name functions; one naming os.system is refused before anything runs."""
    from sklearn.preprocessing import FunctionTransformer

    v = local_shelf.upload("fn", FunctionTransformer(func=os.system))
    (name,) = v.serializer.details["untrusted_types"]
    assert name.endswith(".system")
    with pytest.raises(UntrustedFormat, match=name.replace(".", r"\.")):
        local_shelf.load("fn:1")


def test_untrusted_check_reads_the_file_not_the_manifest(
    local_shelf: Any, tabular_data: Any, tmp_path: Path
) -> None:
    """A manifest claiming "nothing untrusted" must not unlock a file that holds untrusted types."""
    X, y = tabular_data
    local_shelf.upload("custom", make_pipeline(Doubler(), LogisticRegression()).fit(X, y))
    downloaded = local_shelf.download("custom:1", tmp_path / "dl")
    with pytest.raises(UntrustedFormat, match="Doubler"):
        SkopsSerializer().load(downloaded, details={"untrusted_types": []})


def test_forest_needs_trust_for_skops_tree_type(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data
    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    v = local_shelf.upload("forest", model)
    assert v.signature["outputs"][0]["n_outputs"] == 1
    untrusted = v.serializer.details["untrusted_types"]
    assert untrusted, "skops trusts every type of a forest now: update README and this test"
    with pytest.raises(UntrustedFormat, match=untrusted[0].replace(".", r"\.")):
        local_shelf.load("forest:1")
    loaded = local_shelf.load("forest:1", trust=True)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_unfitted_estimator_round_trips(local_shelf: Any) -> None:
    v = local_shelf.upload("blank", LogisticRegression(C=0.25, max_iter=50))
    assert v.serializer.details["fitted"] is False
    assert v.signature == {"inputs": [], "outputs": [{"name": "y", "kind": "classifier"}]}
    loaded = local_shelf.load("blank:1")
    assert loaded.get_params() == LogisticRegression(C=0.25, max_iter=50).get_params()


def test_unknown_options_are_one_line_errors(local_shelf: Any, tabular_data: Any) -> None:
    X, y = tabular_data
    with pytest.raises(ModelshelfError, match="compresion") as caught:
        local_shelf.upload("m", LogisticRegression().fit(X, y), options={"compresion": 8})
    assert "\n" not in str(caught.value)
    local_shelf.upload("m", LogisticRegression().fit(X, y))
    with pytest.raises(ModelshelfError, match="mmap_mode"):
        local_shelf.load("m:1", mmap_mode="r")


def test_skops_compression_option(local_shelf: Any, tabular_data: Any) -> None:
    import zipfile

    X, y = tabular_data
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    plain = local_shelf.upload("f", model)
    packed = local_shelf.upload("f", model, options={"compression": zipfile.ZIP_DEFLATED})
    assert packed.total_size < plain.total_size
    loaded = local_shelf.load("f:2", trust=True)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


# --- joblib: opt-in, needs trust ---------------------------------------------------------------


def test_joblib_is_opt_in_and_needs_trust(
    local_shelf: Any, local_shelf_path: Path, tabular_data: Any, tmp_path: Path
) -> None:
    X, y = tabular_data
    model = LogisticRegression().fit(X, y)
    v = local_shelf.upload("jl", model, serializer="sklearn-joblib")
    assert v.serializer.name == "sklearn-joblib"
    assert v.serializer.safe is False
    assert v.signature == {
        "inputs": [{"name": "X", "shape": [None, 4]}],
        "outputs": [{"name": "y", "kind": "classifier", "classes": [0, 1]}],
    }

    # Refused before downloading: a reader with an empty cache gets no blob in it (records, the
    # cached manifests, are fine).
    reader_cache = tmp_path / "reader-cache"
    reader = modelshelf.open(str(local_shelf_path), cache=reader_cache)
    with pytest.raises(UntrustedFormat, match="trust=True"):
        reader.load("jl:1")
    assert not [p for p in (reader_cache / "blobs").rglob("*") if p.is_file()]
    assert not (reader_cache / "snapshots").exists() or not any(
        (reader_cache / "snapshots").iterdir()
    )

    loaded = local_shelf.load("jl:1", trust=True)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_joblib_serializer_refuses_without_trust_when_called_directly(tmp_path: Path) -> None:
    joblib.dump(WritesMarker(str(tmp_path / "marker")), tmp_path / "model.joblib")
    with pytest.raises(UntrustedFormat):
        JoblibSerializer().load(tmp_path, details={})
    assert not (tmp_path / "marker").exists()


def test_malicious_pickle_runs_only_with_trust(local_shelf: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    local_shelf.upload("evil", WritesMarker(str(marker)), serializer="sklearn-joblib")

    with pytest.raises(UntrustedFormat):
        local_shelf.load("evil:1")
    assert not marker.exists()

    # The upload scan saw the payload's builtins.open: ordinary trust is not enough either.
    with pytest.raises(FlaggedByScan):
        local_shelf.load("evil:1", trust=True)
    assert not marker.exists()

    # The payload is live: overriding the scan runs it. This is what makes the assertions above
    # meaningful.
    local_shelf.load("evil:1", trust="ignore-scan")
    assert marker.exists()


def test_tampered_blob_never_executes(
    local_shelf: Any, local_shelf_path: Path, tabular_data: Any, tmp_path: Path
) -> None:
    X, y = tabular_data
    v = local_shelf.upload("victim", LogisticRegression().fit(X, y), serializer="sklearn-joblib")
    marker = tmp_path / "pwned"
    payload = pickle.dumps(WritesMarker(str(marker)))

    # Prove the payload writes the marker when unpickled, then remove the marker.
    pickle.loads(payload)
    assert marker.exists()
    marker.unlink()

    blob = _blob_path(local_shelf_path, v.files[0].sha256)
    assert blob.is_file()
    os.chmod(blob, 0o644)
    blob.write_bytes(payload)

    with pytest.raises(UntrustedFormat):
        local_shelf.load("victim:1")
    assert not marker.exists()

    # Even with trust, the blob no longer matches its sha256: refused before unpickling.
    with pytest.raises(IntegrityError):
        local_shelf.load("victim:1", trust=True)
    assert not marker.exists()


def test_joblib_stores_non_sklearn_objects_without_signature(local_shelf: Any) -> None:
    v = local_shelf.upload("table", {"weights": [1.0, 2.0]}, serializer="sklearn-joblib")
    assert v.signature is None
    assert local_shelf.load("table:1", trust=True) == {"weights": [1.0, 2.0]}


def test_registered_through_entry_point() -> None:
    entries = get_registry().serializers()
    assert entries["sklearn-skops"].distribution == "modelshelf-sklearn"
    assert entries["sklearn-joblib"].serializer.safe is False
    assert json.dumps(list(entries["sklearn-skops"].serializer.claims))
    assert "modelshelf_sklearn" in sys.modules
