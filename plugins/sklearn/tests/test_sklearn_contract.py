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
    heavy_modules = ("sklearn", "skops", "joblib", "numpy", "scipy")

    @pytest.fixture
    def model(self) -> Any:
        return _pipeline()


class TestSkopsContract(_SklearnFixtures, SingleFileCases, SerializerContract):
    serializer = "sklearn-skops"
    model_file = "model.skops"


class TestJoblibContract(_SklearnFixtures, SerializerContract):
    serializer = "sklearn-joblib"
