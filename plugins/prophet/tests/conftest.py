"""Fixtures for the modelshelf-prophet tests: an isolated cache and a tiny fitted model (fitted once
per session: Prophet's fit is the slow part); core's pytest plugin gives the shelf and the
fresh-process runner."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

# cmdstanpy logs two INFO lines per fit.
logging.getLogger("cmdstanpy").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def isolated_cache(modelshelf_cache: Path) -> Path:
    return modelshelf_cache


def history(days: int = 90, *, with_regressor: bool = False) -> pd.DataFrame:
    """A daily series with a trend and a weekly cycle (fixed seed)."""
    rng = np.random.default_rng(0)
    t = np.arange(days)
    frame = pd.DataFrame(
        {
            "ds": pd.date_range("2024-01-01", periods=days, freq="D"),
            "y": 10 + 0.05 * t + np.sin(2 * np.pi * t / 7) + rng.normal(scale=0.1, size=days),
        }
    )
    if with_regressor:
        frame["promo"] = (t % 10 == 0).astype(float)
        frame["y"] += 2 * frame["promo"]
    return frame


@cache
def _fitted(kind: str) -> Any:
    from prophet import Prophet

    common: dict[str, Any] = {
        "yearly_seasonality": False,
        "daily_seasonality": False,
        "uncertainty_samples": 0,
    }
    if kind == "plain":
        return Prophet(**common).fit(history())
    if kind == "regressor":
        model = Prophet(**common)
        model.add_regressor("promo")
        return model.fit(history(with_regressor=True))
    if kind == "logistic":
        frame = history()
        frame["cap"] = 20.0
        return Prophet(growth="logistic", **common).fit(frame)
    raise ValueError(kind)


@pytest.fixture
def fitted() -> Callable[[str], Any]:
    """``fitted("plain" | "regressor" | "logistic")``: a model fitted once for the session.
    Treat it as read-only (predict does not change a Prophet)."""
    return _fitted


@pytest.fixture
def make_history() -> Callable[..., pd.DataFrame]:
    return history


@pytest.fixture
def future() -> pd.DataFrame:
    """Fixed dates after the history, inside it, and a regressor column."""
    dates = pd.to_datetime(["2024-02-15", "2024-03-31", "2024-04-01", "2024-04-20", "2024-06-30"])
    return pd.DataFrame({"ds": dates, "promo": [0.0, 1.0, 0.0, 1.0, 0.0], "cap": 20.0})
