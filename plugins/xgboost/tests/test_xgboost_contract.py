"""modelshelf's serializer contract for xgboost-ubj: a scikit-learn wrapper and a raw Booster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from modelshelf.testing import SerializerContract
from modelshelf.testing.single_file import SingleFileCases


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 5))
    return X, (X[:, 0] - X[:, 2] > 0).astype(int)


class _Common:
    @pytest.fixture
    def serializer_name(self) -> str:
        return "xgboost-ubj"

    @pytest.fixture
    def sample_input(self) -> np.ndarray:
        return np.random.default_rng(2).normal(size=(20, 5))

    @pytest.fixture
    def framework_modules(self) -> list[str]:
        return ["xgboost", "sklearn", "numpy", "scipy"]


class TestXGBClassifierContract(_Common, SingleFileCases, SerializerContract):
    model_file = "model.ubj"

    @pytest.fixture
    def model(self) -> Any:
        import xgboost as xgb

        X, y = _data()
        return xgb.XGBClassifier(n_jobs=1, n_estimators=5, max_depth=2, random_state=0).fit(X, y)

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return lambda model, X: model.predict_proba(X)


class TestXGBBoosterContract(_Common, SerializerContract):
    @pytest.fixture
    def model(self) -> Any:
        import xgboost as xgb

        X, y = _data()
        return xgb.train({"objective": "binary:logistic", "seed": 0, "nthread": 1}, xgb.DMatrix(X, label=y), 5)

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        import xgboost as xgb

        return lambda booster, X: booster.predict(xgb.DMatrix(X))
