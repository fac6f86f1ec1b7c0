"""modelshelf's serializer contract, run for both scikit-learn serializers."""

from __future__ import annotations

from typing import Any

import pytest
from modelshelf.testing import SerializerContract
from modelshelf.testing.single_file import SingleFileCases
from modelshelf.testing.tabular import TabularContractData, training_set


def _pipeline() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression()).fit(*training_set())


class _SklearnFixtures(TabularContractData):
    @pytest.fixture
    def model(self) -> Any:
        return _pipeline()

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
