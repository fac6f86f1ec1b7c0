"""Fixtures for the modelshelf-shap tests: an isolated cache, a fresh shelf, small tree models and
explainers on fixed data, and a runner for fresh processes."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import modelshelf
import numpy as np
import pandas as pd
import pytest


@pytest.fixture(autouse=True)
def isolated_cache(modelshelf_cache: Path) -> Path:
    return modelshelf_cache


@pytest.fixture
def shelf_path(tmp_path: Path) -> Path:
    return tmp_path / "shelf"


@pytest.fixture
def shelf(shelf_path: Path) -> Any:
    return modelshelf.open(str(shelf_path))


def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 4)), columns=["age", "income", "tenure", "score"])
    return X, (X["age"] + 0.5 * X["income"] > 0).astype(int).to_numpy()


@functools.cache
def _model(kind: str) -> Any:
    X, y = data()
    if kind == "xgboost":
        import xgboost

        return xgboost.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1, random_state=0).fit(
            X, y
        )
    if kind == "forest":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=4, max_depth=3, random_state=0).fit(
            X, X["age"] * 2
        )
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression().fit(X.to_numpy(), y)
    raise ValueError(kind)


@pytest.fixture
def make_model() -> Callable[[str], Any]:
    """``make_model("xgboost" | "forest" | "logistic")``: fitted once per session (read-only)."""
    return _model


@pytest.fixture
def X() -> pd.DataFrame:
    return data()[0]


@pytest.fixture
def rows(X: pd.DataFrame) -> pd.DataFrame:
    return X.iloc[:8]


@pytest.fixture
def run_python(
    modelshelf_run_python: Callable[..., subprocess.CompletedProcess[str]],
) -> Callable[..., subprocess.CompletedProcess[str]]:
    return modelshelf_run_python


# --- core's pickle scan at upload -----------------------------------------------------------------
#: What core's pickle scan flags in this framework's own pickles: its allow-list has no entry for
#: shap's explainer classes, so a version it flagged loads only with trust="ignore-scan".
FRAMEWORK_IMPORTS: tuple[str, ...] = ("shap.",)


def load_trusted(shelf: Any, ref: str, **options: Any) -> Any:
    """``shelf.load(ref, trust=True)``; where core's pickle scan flagged the version, first a check
    that it flagged only the framework's own classes and that trust=True is refused, then
    ``trust="ignore-scan"``."""
    from modelshelf.errors import UntrustedFormat

    scan = getattr(shelf.get(ref), "scan", None)
    if scan is None or not scan.dangerous:
        return shelf.load(ref, trust=True, **options)
    flagged = sorted({name for finding in scan.findings for name in finding.imports})
    unexpected = [name for name in flagged if not name.startswith(FRAMEWORK_IMPORTS)]
    assert not unexpected, f"the pickle scan flagged {unexpected}, not only the framework's classes"
    with pytest.raises(UntrustedFormat):
        shelf.load(ref, trust=True, **options)
    return shelf.load(ref, trust="ignore-scan", **options)


@pytest.fixture
def trusted_load() -> Callable[..., Any]:
    """``trusted_load(shelf, ref, **options)``: see :func:`load_trusted`."""
    return load_trusted
