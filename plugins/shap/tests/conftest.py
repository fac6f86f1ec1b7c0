"""Fixtures for the modelshelf-shap tests: an isolated cache, small tree models and explainers on
fixed data (core's pytest plugin gives the shelf and the fresh-process runner)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(autouse=True)
def isolated_cache(modelshelf_cache: Path) -> Path:
    return modelshelf_cache


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
