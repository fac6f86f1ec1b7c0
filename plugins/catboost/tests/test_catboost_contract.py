"""modelshelf's serializer contract for catboost-cbm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from modelshelf.testing import SerializerContract
from modelshelf.testing.single_file import SingleFileCases


class TestCatBoostClassifierContract(SingleFileCases, SerializerContract):
    model_file = "model.cbm"

    @pytest.fixture
    def serializer_name(self) -> str:
        return "catboost-cbm"

    @pytest.fixture
    def model(self) -> Any:
        import catboost as cb

        rng = np.random.default_rng(1)
        X = rng.normal(size=(150, 5))
        y = (X[:, 0] - X[:, 2] > 0).astype(int)
        return cb.CatBoostClassifier(
            iterations=10, verbose=0, allow_writing_files=False, thread_count=1, random_seed=0
        ).fit(X, y)

    @pytest.fixture
    def sample_input(self) -> np.ndarray:
        return np.random.default_rng(2).normal(size=(20, 5))

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return lambda model, X: model.predict_proba(X)

    @pytest.fixture
    def framework_modules(self) -> list[str]:
        return ["catboost", "numpy", "pandas"]
