"""modelshelf's serializer contract for causalml-joblib: a meta-learner and an uplift tree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from modelshelf.testing import SerializerContract


class _Common:
    serializer = "causalml-joblib"
    heavy_modules = ("causalml", "joblib", "sklearn", "numpy")

    @pytest.fixture
    def sample_input(self, rows: np.ndarray) -> np.ndarray:
        return rows

    @pytest.fixture
    def predict(
        self, learner_predict: Callable[[Any, np.ndarray], np.ndarray]
    ) -> Callable[[Any, Any], Any]:
        return learner_predict


class TestXLearnerContract(_Common, SerializerContract):
    @pytest.fixture
    def model(self, make_learner: Callable[[str], Any]) -> Any:
        return make_learner("x-learner")


class TestUpliftTreeContract(_Common, SerializerContract):
    @pytest.fixture
    def model(self, make_learner: Callable[[str], Any]) -> Any:
        return make_learner("uplift-tree")
