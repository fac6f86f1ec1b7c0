"""Shared data for the serializer contracts of tabular frameworks (scikit-learn, XGBoost, LightGBM,
CatBoost, ...): one training set and one sample input, fixed seeds, numpy only.

Mix :class:`TabularContractData` into a :class:`~modelshelf.testing.SerializerContract` subclass
and fit the ``model`` fixture on :func:`training_set`::

    class TestMyClassifierContract(TabularContractData, SerializerContract):
        @pytest.fixture
        def model(self):
            return MyClassifier().fit(*training_set())

``predict`` compares class probabilities (``predict_proba``); override it for models without them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

__all__ = ["TabularContractData", "training_set"]


def training_set() -> tuple[Any, Any]:
    """150 rows of 5 float features and a binary target that depends on two of them (seed 1)."""
    import numpy as np

    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 5))
    return X, (X[:, 0] - X[:, 2] > 0).astype(int)


class TabularContractData:
    """``sample_input`` (20 rows of the training set's shape, seed 2) and ``predict_proba``."""

    @pytest.fixture
    def sample_input(self) -> Any:
        import numpy as np

        return np.random.default_rng(2).normal(size=(20, 5))

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return lambda model, X: model.predict_proba(X)
