"""modelshelf's serializer contract for xgboost-ubj: a scikit-learn wrapper and a raw Booster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from modelshelf.testing import SerializerContract
from modelshelf.testing.single_file import SingleFileCases
from modelshelf.testing.tabular import TabularContractData, WrapperCases, training_set


class _Common(TabularContractData):
    serializer = "xgboost-ubj"
    heavy_modules = ("xgboost", "sklearn", "numpy", "scipy")


class TestXGBClassifierContract(_Common, SingleFileCases, WrapperCases, SerializerContract):
    model_file = "model.ubj"

    @pytest.fixture
    def unfitted_model(self) -> Any:
        import xgboost as xgb

        return xgb.XGBClassifier()

    @pytest.fixture
    def model(self) -> Any:
        import xgboost as xgb

        X, y = training_set()
        return xgb.XGBClassifier(n_jobs=1, n_estimators=5, max_depth=2, random_state=0).fit(X, y)


class TestXGBBoosterContract(_Common, SerializerContract):
    @pytest.fixture
    def model(self) -> Any:
        import xgboost as xgb

        X, y = training_set()
        return xgb.train(
            {"objective": "binary:logistic", "seed": 0, "nthread": 1}, xgb.DMatrix(X, label=y), 5
        )

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        import xgboost as xgb

        return lambda booster, X: booster.predict(xgb.DMatrix(X))
