"""modelshelf's serializer contract, run for both scikit-learn serializers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from modelshelf.testing import SerializerContract
from modelshelf.testing.single_file import SingleFileCases


def _pipeline() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 5))
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)


class _SklearnFixtures:
    @pytest.fixture
    def model(self) -> Any:
        return _pipeline()

    @pytest.fixture
    def sample_input(self) -> np.ndarray:
        return np.random.default_rng(2).normal(size=(20, 5))

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return lambda model, X: model.predict_proba(X)

    @pytest.fixture
    def framework_modules(self) -> list[str]:
        return ["sklearn", "skops", "joblib", "numpy", "scipy"]


class TestSkopsContract(_SklearnFixtures, SingleFileCases, SerializerContract):
    model_file = "model.skops"

    @pytest.fixture
    def serializer_name(self) -> str:
        return "sklearn-skops"


class TestJoblibContract(_SklearnFixtures, SerializerContract):
    @pytest.fixture
    def serializer_name(self) -> str:
        return "sklearn-joblib"
