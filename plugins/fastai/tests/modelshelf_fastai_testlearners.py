"""Tabular learners for the modelshelf-fastai tests, importable by name (fresh processes and
``load_learner`` need that): the conftest puts this directory on ``sys.path``.

Only fastai's tabular part is used: fastai's vision part needs torchvision, and the torchvision
wheel matching this project's torch (2.13.0, CPU build) fails to import beside it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pandas as pd


def frame(rows: int = 160, seed: int = 0) -> pd.DataFrame:
    """Two numeric features (one with gaps), a category, a yes/no label (fixed seed)."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    label = np.where(x1 + 0.5 * x2 + (colour == "red") * 0.8 > 0.2, "yes", "no")
    x2[::17] = np.nan
    return pd.DataFrame({"colour": colour, "x1": x1, "x2": x2, "label": label})


def rows_to_score() -> pd.DataFrame:
    return frame(rows=9, seed=7).drop(columns=["label"])


def learner(
    *, train: bool = True, seed: int = 0, hidden: int = 8, data: pd.DataFrame | None = None
) -> Any:
    """A tabular classifier on :func:`frame` (Categorify, FillMissing, Normalize), trained 2 epochs."""
    from fastai.tabular.all import (
        Categorify,
        CategoryBlock,
        FillMissing,
        Normalize,
        TabularDataLoaders,
        accuracy,
        set_seed,
        tabular_learner,
    )

    df = frame() if data is None else data
    dls = TabularDataLoaders.from_df(
        df,
        y_names="label",
        cat_names=["colour"],
        cont_names=["x1", "x2"],
        procs=[Categorify, FillMissing, Normalize],
        y_block=CategoryBlock(),
        valid_idx=list(range(len(df) - 32, len(df))),
        bs=32,
        num_workers=0,
    )
    set_seed(seed, reproducible=True)
    learn = tabular_learner(dls, layers=[hidden], metrics=accuracy)
    if train:
        with learn.no_bar(), learn.no_logging():
            learn.fit(2, 1e-2)
    return learn


def predict(learn: Any, rows: pd.DataFrame) -> np.ndarray:
    """Class probabilities for ``rows``, through the learner's own preprocessing."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(learn.no_bar())
        probabilities, _ = learn.get_preds(dl=learn.dls.test_dl(rows))
    return probabilities.numpy()
