"""Fixtures for the modelshelf-causalml tests: an isolated cache, a fresh shelf, small learners on
generated data, and a runner for fresh processes.

causalml cannot be a plain test requirement (it requires the `xgboost` CUDA build, which would
overwrite `xgboost-cpu`); it is installed with ``pip install --no-deps``. Where it is missing,
the tests that need it skip, saying so."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import modelshelf
import numpy as np
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


@pytest.fixture
def run_python(
    modelshelf_run_python: Callable[..., subprocess.CompletedProcess[str]],
) -> Callable[..., subprocess.CompletedProcess[str]]:
    return modelshelf_run_python


# --- core's pickle scan at upload -----------------------------------------------------------------
#: What core's pickle scan flags in this framework's own pickles: its allow-list has no entry for
#: causalml's learner and tree classes, so a version it flagged loads only with trust="ignore-scan".
FRAMEWORK_IMPORTS: tuple[str, ...] = ("causalml.",)


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
