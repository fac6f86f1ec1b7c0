"""modelshelf's serializer contract for lightgbm-text: a scikit-learn wrapper and a raw Booster.

A wrapper comes back as a ``lightgbm.Booster``, so ``predict`` compares the original wrapper's
booster with the loaded one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from modelshelf.testing import SerializerContract
from modelshelf.testing.single_file import SingleFileCases
from modelshelf.testing.tabular import TabularContractData, WrapperCases, training_set


def _booster_predict(model: Any, X: Any) -> Any:
    booster = getattr(model, "booster_", model)  # the original wrapper, or the loaded Booster
    return booster.predict(X)


class _Common(TabularContractData):
    serializer = "lightgbm-text"
    heavy_modules = ("lightgbm", "sklearn", "numpy", "scipy")

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return _booster_predict


class TestLGBMClassifierContract(_Common, SingleFileCases, WrapperCases, SerializerContract):
    model_file = "model.txt"
    restore_key = None  # a wrapper comes back as its Booster

    @pytest.fixture
    def unfitted_model(self) -> Any:
        import lightgbm as lgb

        return lgb.LGBMClassifier()

    @pytest.fixture
    def model(self) -> Any:
        import lightgbm as lgb

        X, y = training_set()
        return lgb.LGBMClassifier(n_estimators=5, random_state=0, verbose=-1, n_jobs=1).fit(X, y)


class TestLGBMBoosterContract(_Common, SerializerContract):
    @pytest.fixture
    def model(self) -> Any:
        import lightgbm as lgb

        X, y = training_set()
        return lgb.train(
            {"objective": "binary", "verbose": -1, "seed": 0, "num_threads": 1},
            lgb.Dataset(X, label=y),
            5,
        )
