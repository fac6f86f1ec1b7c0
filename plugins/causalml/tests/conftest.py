"""Fixtures for the modelshelf-causalml tests: an isolated cache and small learners on generated
data (core's pytest plugin gives the shelf and the fresh-process runner).

causalml cannot be a plain test requirement (it requires the `xgboost` CUDA build, which would
overwrite `xgboost-cpu`); it is installed with ``pip install --no-deps``. Where it is missing,
the tests that need it skip, saying so."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def isolated_cache(modelshelf_cache: Path) -> Path:
    return modelshelf_cache


def uplift_data(n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features, treatment labels, a continuous and a binary outcome (fixed seed)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    treated = rng.integers(0, 2, n)
    treatment = np.where(treated == 1, "treatment", "control")
    y = X[:, 0] + treated * (1 + X[:, 1]) + rng.normal(scale=0.1, size=n)
    return X, treatment, y, (y > np.median(y)).astype(int)


@functools.cache
def _learner(kind: str) -> Any:
    from causalml.inference.meta import BaseSRegressor, BaseTRegressor, BaseXRegressor
    from causalml.inference.tree import UpliftRandomForestClassifier, UpliftTreeClassifier
    from sklearn.linear_model import LinearRegression
    from sklearn.tree import DecisionTreeRegressor

    X, treatment, y, y_binary = uplift_data()
    learner: Any
    if kind == "s-learner":
        learner = BaseSRegressor(LinearRegression(), control_name="control")
    elif kind == "t-learner":
        learner = BaseTRegressor(
            DecisionTreeRegressor(max_depth=3, random_state=0), control_name="control"
        )
    elif kind == "x-learner":
        learner = BaseXRegressor(LinearRegression(), control_name="control")
        learner.fit(X, y=y, treatment=treatment, p=np.full(len(y), 0.5))
        return learner
    elif kind == "uplift-tree":
        learner = UpliftTreeClassifier(
            max_depth=3, min_samples_leaf=20, control_name="control", random_state=0
        )
        learner.fit(X, y=y_binary, treatment=treatment)
        return learner
    elif kind == "uplift-forest":
        learner = UpliftRandomForestClassifier(
            n_estimators=3, max_depth=3, control_name="control", random_state=0, n_jobs=1
        )
        learner.fit(X, y=y_binary, treatment=treatment)
        return learner
    else:
        raise ValueError(kind)
    learner.fit(X, y=y, treatment=treatment)
    return learner


@pytest.fixture
def make_learner() -> Callable[[str], Any]:
    """``make_learner(kind)``: a learner fitted once per session (read-only). Skips the test
    where causalml is not installed."""
    pytest.importorskip(
        "causalml", reason="causalml is not installed (pip install --no-deps causalml)"
    )
    return _learner


def predict(learner: Any, X: np.ndarray) -> np.ndarray:
    """CATE (meta-learners, uplift forests) or per-group predictions (uplift trees)."""
    kwargs = {"p": np.full(len(X), 0.5)} if type(learner).__name__ == "BaseXRegressor" else {}
    return np.asarray(learner.predict(X, **kwargs))


@pytest.fixture
def learner_predict() -> Callable[[Any, np.ndarray], np.ndarray]:
    return predict


@pytest.fixture
def rows() -> np.ndarray:
    return np.random.default_rng(7).normal(size=(12, 4))
