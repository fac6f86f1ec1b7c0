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
from modelshelf.errors import IntegrityError, InvalidModel, ModelshelfError, UntrustedFormat
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


def _blob_path(shelf_path: Path, sha256: str) -> Path:
    return shelf_path / "blobs" / "sha256" / sha256[:2] / sha256


# --- import cost -------------------------------------------------------------------------------


def test_import_and_listing_import_no_framework(run_python: Any) -> None:
    code = (
        "import sys, modelshelf_sklearn\n"
        "from modelshelf.plugins import get_registry\n"
        "names = set(get_registry().serializers())\n"
        "assert {'sklearn-skops', 'sklearn-joblib'} <= names, names\n"
        "bad = [m for m in ('sklearn', 'skops', 'joblib', 'numpy', 'scipy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    run_python(code, env={"MODELSHELF_LOAD_PLUGINS": "sklearn"})


# --- skops: the default ------------------------------------------------------------------------


def test_skops_claims_estimators_and_pipelines_joblib_claims_nothing(data: Any) -> None:
    X, y = data
    serializers = [SkopsSerializer(), JoblibSerializer()]
    assert choose(LogisticRegression(), serializers).name == "sklearn-skops"
    assert choose(make_pipeline(StandardScaler(), LogisticRegression()), serializers).name == (
        "sklearn-skops"
    )
    assert JoblibSerializer().claim_depth(LogisticRegression().fit(X, y)) is None


def test_pipeline_round_trip_with_signature(shelf: Any, data: Any) -> None:
    X, y = data
    frame = pd.DataFrame(X, columns=["age", "income", "tenure", "score"])
    labels = np.where(y == 1, "churn", "stay")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, labels)

    v = shelf.upload("churn", model, metrics={"acc": float(model.score(frame, labels))})

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

    loaded = shelf.load("churn:1")
    assert isinstance(loaded, Pipeline)
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_regressor_signature(shelf: Any, data: Any) -> None:
    X, _ = data
    v = shelf.upload("reg", LinearRegression().fit(X, X[:, 0] * 3.0))
    assert v.signature == {
        "inputs": [{"name": "X", "shape": [None, 4]}],
        "outputs": [{"name": "y", "kind": "regressor"}],
    }


def test_fresh_process_lists_downloads_and_loads(
    shelf: Any, shelf_path: Path, data: Any, run_python: Any, tmp_path: Path
) -> None:
    X, y = data
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(X, y)
    shelf.upload("clf", model)
    np.save(tmp_path / "X.npy", X)
    code = (
        "import sys, numpy as np, modelshelf\n"
        "shelf = modelshelf.open(sys.argv[1])\n"
        "assert [v.version for v in shelf.versions('clf')] == [1]\n"
        "dest = shelf.download('clf:1', sys.argv[2])\n"
        "assert sorted(p.name for p in dest.iterdir()) == ['model.skops']\n"
        "model = shelf.load('clf:1')\n"
        "np.save(sys.argv[3], model.predict_proba(np.load(sys.argv[4])))\n"
    )
    out = tmp_path / "proba.npy"
    run_python(code, str(shelf_path), str(tmp_path / "dl"), str(out), str(tmp_path / "X.npy"))
    np.testing.assert_array_equal(np.load(out), model.predict_proba(X))


def test_unknown_type_is_refused_by_name(shelf: Any, data: Any) -> None:
    X, y = data
    model = make_pipeline(Doubler(), LogisticRegression()).fit(X, y)
    v = shelf.upload("custom", model)
    assert DOUBLER in v.serializer.details["untrusted_types"]

    with pytest.raises(UntrustedFormat) as refused:
        shelf.load("custom:1")
    message = str(refused.value)
    assert DOUBLER in message and "trust=True" in message
    assert "\n" not in message


def test_unknown_type_loads_with_trust_or_when_listed(shelf: Any, data: Any) -> None:
    X, y = data
    model = make_pipeline(Doubler(), LogisticRegression()).fit(X, y)
    shelf.upload("custom", model)

    trusted = shelf.load("custom:1", trust=True)
    assert isinstance(trusted.steps[0][1], Doubler)
    np.testing.assert_array_equal(trusted.predict_proba(X), model.predict_proba(X))

    listed = shelf.load("custom:1", trusted_types=[DOUBLER])
    np.testing.assert_array_equal(listed.predict_proba(X), model.predict_proba(X))

    with pytest.raises(UntrustedFormat, match="Doubler"):
        shelf.load("custom:1", trusted_types=["some.other.Type"])


def test_dangerous_function_reference_is_refused_by_name(shelf: Any) -> None:
    """A skops file can name functions; one naming os.system is refused before anything runs."""
    from sklearn.preprocessing import FunctionTransformer

    v = shelf.upload("fn", FunctionTransformer(func=os.system))
    (name,) = v.serializer.details["untrusted_types"]
    assert name.endswith(".system")
    with pytest.raises(UntrustedFormat, match=name.replace(".", r"\.")):
        shelf.load("fn:1")


def test_untrusted_check_reads_the_file_not_the_manifest(
    shelf: Any, data: Any, tmp_path: Path
) -> None:
    """A manifest claiming "nothing untrusted" must not unlock a file that holds untrusted types."""
    X, y = data
    shelf.upload("custom", make_pipeline(Doubler(), LogisticRegression()).fit(X, y))
    downloaded = shelf.download("custom:1", tmp_path / "dl")
    with pytest.raises(UntrustedFormat, match="Doubler"):
        SkopsSerializer().load(downloaded, details={"untrusted_types": []})


def test_forest_needs_trust_for_skops_tree_type(shelf: Any, data: Any) -> None:
    X, y = data
    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    v = shelf.upload("forest", model)
    assert v.signature["outputs"][0]["n_outputs"] == 1
    untrusted = v.serializer.details["untrusted_types"]
    assert untrusted, "skops trusts every type of a forest now: update README and this test"
    with pytest.raises(UntrustedFormat, match=untrusted[0].replace(".", r"\.")):
        shelf.load("forest:1")
    loaded = shelf.load("forest:1", trust=True)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_unfitted_estimator_round_trips(shelf: Any) -> None:
    v = shelf.upload("blank", LogisticRegression(C=0.25, max_iter=50))
    assert v.serializer.details["fitted"] is False
    assert v.signature == {"inputs": [], "outputs": [{"name": "y", "kind": "classifier"}]}
    loaded = shelf.load("blank:1")
    assert loaded.get_params() == LogisticRegression(C=0.25, max_iter=50).get_params()


def test_unknown_options_are_one_line_errors(shelf: Any, data: Any) -> None:
    X, y = data
    with pytest.raises(ModelshelfError, match="compresion") as caught:
        shelf.upload("m", LogisticRegression().fit(X, y), options={"compresion": 8})
    assert "\n" not in str(caught.value)
    shelf.upload("m", LogisticRegression().fit(X, y))
    with pytest.raises(ModelshelfError, match="mmap_mode"):
        shelf.load("m:1", mmap_mode="r")


def test_skops_compression_option(shelf: Any, data: Any) -> None:
    import zipfile

    X, y = data
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    plain = shelf.upload("f", model)
    packed = shelf.upload("f", model, options={"compression": zipfile.ZIP_DEFLATED})
    assert packed.total_size < plain.total_size
    loaded = shelf.load("f:2", trust=True)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


# --- joblib: opt-in, needs trust ---------------------------------------------------------------


def test_joblib_is_opt_in_and_needs_trust(
    shelf: Any, shelf_path: Path, data: Any, tmp_path: Path
) -> None:
    X, y = data
    model = LogisticRegression().fit(X, y)
    v = shelf.upload("jl", model, serializer="sklearn-joblib")
    assert v.serializer.name == "sklearn-joblib"
    assert v.serializer.safe is False
    assert v.signature == {
        "inputs": [{"name": "X", "shape": [None, 4]}],
        "outputs": [{"name": "y", "kind": "classifier", "classes": [0, 1]}],
    }

    # Refused before downloading: a reader with an empty cache gets no blob in it (records, the
    # cached manifests, are fine).
    reader_cache = tmp_path / "reader-cache"
    reader = modelshelf.open(str(shelf_path), cache=reader_cache)
    with pytest.raises(UntrustedFormat, match="trust=True"):
        reader.load("jl:1")
    assert not [p for p in (reader_cache / "blobs").rglob("*") if p.is_file()]
    assert not (reader_cache / "snapshots").exists() or not any((reader_cache / "snapshots").iterdir())

    loaded = shelf.load("jl:1", trust=True)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_joblib_serializer_refuses_without_trust_when_called_directly(tmp_path: Path) -> None:
    joblib.dump(WritesMarker(str(tmp_path / "marker")), tmp_path / "model.joblib")
    with pytest.raises(UntrustedFormat):
        JoblibSerializer().load(tmp_path, details={})
    assert not (tmp_path / "marker").exists()


def test_malicious_pickle_runs_only_with_trust(shelf: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    shelf.upload("evil", WritesMarker(str(marker)), serializer="sklearn-joblib")

    with pytest.raises(UntrustedFormat):
        shelf.load("evil:1")
    assert not marker.exists()

    # The payload is live: trusting it runs it. This is what makes the assertion above meaningful.
    shelf.load("evil:1", trust=True)
    assert marker.exists()


def test_tampered_blob_never_executes(shelf: Any, shelf_path: Path, data: Any, tmp_path: Path) -> None:
    X, y = data
    v = shelf.upload("victim", LogisticRegression().fit(X, y), serializer="sklearn-joblib")
    marker = tmp_path / "pwned"
    payload = pickle.dumps(WritesMarker(str(marker)))

    # Prove the payload writes the marker when unpickled, then remove the marker.
    pickle.loads(payload)
    assert marker.exists()
    marker.unlink()

    blob = _blob_path(shelf_path, v.files[0].sha256)
    assert blob.is_file()
    os.chmod(blob, 0o644)
    blob.write_bytes(payload)

    with pytest.raises(UntrustedFormat):
        shelf.load("victim:1")
    assert not marker.exists()

    # Even with trust, the blob no longer matches its sha256: refused before unpickling.
    with pytest.raises(IntegrityError):
        shelf.load("victim:1", trust=True)
    assert not marker.exists()


def test_joblib_stores_non_sklearn_objects_without_signature(shelf: Any) -> None:
    v = shelf.upload("table", {"weights": [1.0, 2.0]}, serializer="sklearn-joblib")
    assert v.signature is None
    assert shelf.load("table:1", trust=True) == {"weights": [1.0, 2.0]}


def test_registered_through_entry_point() -> None:
    entries = get_registry().serializers()
    assert entries["sklearn-skops"].distribution == "modelshelf-sklearn"
    assert entries["sklearn-joblib"].serializer.safe is False
    assert json.dumps(list(entries["sklearn-skops"].serializer.claims))
    assert "modelshelf_sklearn" in sys.modules


# --- hostile and damaged versions ----------------------------------------------------------------


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, f"not one line: {message!r}"
    return message


def test_load_opens_only_the_version_file_whatever_details_say(
    data: Any, tmp_path: Path
) -> None:
    serializer = SkopsSerializer()
    version = tmp_path / "snapshot" / "version"
    version.mkdir(parents=True)
    saved = serializer.save(LogisticRegression().fit(*data), version)
    # The file name is fixed: details naming another file are ignored, never followed.
    outside = tmp_path / "snapshot" / "outside.bin"
    outside.write_bytes(b"never to be opened" * 64)
    for value in ("/etc/passwd", str(outside), "../outside.bin", 4, None, "other.bin"):
        serializer.load(version, details={**saved.details, "file": value})
    # A link planted in place of the version's file leads outside it: refused, not followed.
    (version / "model.skops").rename(outside)
    (version / "model.skops").symlink_to(outside)
    with pytest.raises(IntegrityError, match="symbolic link") as caught:
        serializer.load(version, details=saved.details)
    _one_line(caught.value)
    (version / "model.skops").unlink()
    with pytest.raises(IntegrityError, match="no file 'model.skops'") as caught:
        serializer.load(version, details=saved.details)
    _one_line(caught.value)


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_damaged_model_file_is_one_invalid_model_line(
    data: Any, tmp_path: Path, how: str
) -> None:
    serializer = SkopsSerializer()
    saved = serializer.save(LogisticRegression().fit(*data), tmp_path)
    path = tmp_path / "model.skops"
    stored = path.read_bytes()
    damaged = {
        "truncated": stored[: len(stored) // 2],
        "garbage": bytes((b * 7 + 3) % 256 for b in stored),
        "empty": b"",
    }
    path.write_bytes(damaged[how])
    with pytest.raises(InvalidModel) as caught:
        serializer.load(tmp_path, details=saved.details)
    assert "'model.skops'" in _one_line(caught.value) and "skops" in str(caught.value)
