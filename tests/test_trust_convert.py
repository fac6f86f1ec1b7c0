"""A joblib pickle of a scikit-learn model (scanned at upload: nothing dangerous) converted to the
safe skops format with `modelshelf convert`: a new version, same metadata, lineage to the old."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import modelshelf
import pytest


def test_convert_joblib_to_skops_keeps_predictions_and_lineage(tmp_path: Path) -> None:
    pytest.importorskip("modelshelf_sklearn")
    np = pytest.importorskip("numpy")
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(60, 4))
    y = (x[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    shelf = modelshelf.open(str(tmp_path / "shelf"), cache=tmp_path / "cache")
    old = shelf.upload(
        "churn", model, serializer="sklearn-joblib", metrics={"auc": 0.9}, tags={"team": "a"}
    )
    assert (
        old.scan is not None and old.scan.scanned and not old.scan.dangerous
    )  # sklearn and numpy only

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelshelf",
            "--shelf",
            shelf.url,
            "convert",
            "churn:1",
            "--to",
            "sklearn-skops",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"MODELSHELF_CACHE": str(tmp_path / "cache"), "PATH": ""},
    )
    assert (
        result.returncode == 1 and "trust=True" in result.stderr
    )  # a pickle needs trust to be read
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelshelf",
            "--shelf",
            shelf.url,
            "convert",
            "churn:1",
            "--to",
            "sklearn-skops",
            "--trust",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"MODELSHELF_CACHE": str(tmp_path / "cache"), "PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Converted churn:1 to churn:2 (sklearn-skops)"
    new = shelf.get("churn:2")
    assert new.serializer.name == "sklearn-skops" and new.serializer.safe and new.scan is None
    assert (new.metrics, new.tags) == (old.metrics, old.tags)
    source = new.lineage.source or {}
    assert (source["kind"], source["version"], source["serializer"]) == (
        "convert",
        1,
        "sklearn-joblib",
    )
    assert source["converted_from"]["name"] == "churn"
    assert (shelf.load("churn:2").predict(x) == model.predict(x)).all()  # no trust needed now
