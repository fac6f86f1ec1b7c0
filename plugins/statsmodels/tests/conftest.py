"""Fixtures for the modelshelf-statsmodels tests: an isolated cache, a fresh shelf, fixed data and
small fits, and a runner for fresh processes."""

from __future__ import annotations

import functools
import subprocess
import warnings
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


def frame(n: int = 120, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    import statsmodels.api as sm

    rng = np.random.default_rng(seed)
    X = sm.add_constant(pd.DataFrame(rng.normal(size=(n, 3)), columns=["age", "income", "tenure"]))
    y = pd.Series(X.to_numpy() @ [1.0, 2.0, -1.0, 0.5] + rng.normal(size=n), name="spend")
    return X, y


@functools.cache
def fit(kind: str) -> Any:
    import statsmodels.api as sm

    X, y = frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "ols":
            return sm.OLS(y, X).fit()
        if kind == "ols-array":
            return sm.OLS(y.to_numpy(), X.to_numpy()).fit()
        if kind == "wls":
            return sm.WLS(y, X, weights=np.linspace(0.5, 2, len(y))).fit()
        if kind == "logit-glm":
            return sm.GLM(
                (y > y.median()).astype(float).rename("churn"), X, family=sm.families.Binomial()
            ).fit()
        if kind == "poisson-glm":
            counts = np.random.default_rng(1).poisson(np.exp(0.3 * X["age"] + 1)).astype(float)
            return sm.GLM(pd.Series(counts, name="visits"), X, family=sm.families.Poisson()).fit()
        if kind == "tweedie-glm":
            family = sm.families.Tweedie(var_power=1.5, link=sm.families.links.Log())
            return sm.GLM(np.exp(y / 4), X, family=family).fit()
        if kind == "arima":
            series = pd.Series(
                np.cumsum(np.random.default_rng(2).normal(size=80)),
                index=pd.date_range("2024-01-01", periods=80, freq="D"),
                name="level",
            )
            return sm.tsa.ARIMA(series, order=(1, 1, 1)).fit()
        if kind == "formula":
            import statsmodels.formula.api as smf

            data = X.assign(spend=y, region=np.where(X["age"] > 0, "north", "south"))
            return smf.ols("spend ~ income + C(region)", data=data).fit()
    raise ValueError(kind)


@pytest.fixture
def make_results() -> Callable[[str], Any]:
    """``make_results(kind)``: fitted results of a small fit on fixed data, fitted once per session
    (treat them as read-only)."""
    return fit


@pytest.fixture
def new_exog() -> pd.DataFrame:
    return frame(n=15, seed=9)[0]


@pytest.fixture
def run_python(
    modelshelf_run_python: Callable[..., subprocess.CompletedProcess[str]],
) -> Callable[..., subprocess.CompletedProcess[str]]:
    return modelshelf_run_python


# --- core's pickle scan at upload -----------------------------------------------------------------
#: What core's pickle scan flags in this framework's own pickles: its allow-list has no entry for
#: pandas' top-level classes (DataFrame, Index...), the pyarrow buffers of pandas' string columns nor types.SimpleNamespace, so a version it flagged loads only with trust="ignore-scan".
FRAMEWORK_IMPORTS: tuple[str, ...] = ("pandas.", "pyarrow.lib.", "types.SimpleNamespace")


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
