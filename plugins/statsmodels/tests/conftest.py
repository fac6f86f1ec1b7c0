"""Fixtures for the modelshelf-statsmodels tests: an isolated cache, fixed data and small fits (core's
pytest plugin gives the shelf and the fresh-process runner)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(autouse=True)
def isolated_cache(modelshelf_cache: Path) -> Path:
    return modelshelf_cache


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
