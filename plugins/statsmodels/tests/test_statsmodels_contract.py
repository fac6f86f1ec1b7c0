"""modelshelf's serializer contract for both statsmodels serializers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from modelshelf.testing import SerializerContract


class _Common:
    heavy_modules = ("statsmodels", "numpy", "pandas", "scipy")


class TestOLSParamsContract(_Common, SerializerContract):
    serializer = "statsmodels-params"

    @pytest.fixture
    def model(self, make_results: Callable[[str], Any]) -> Any:
        return make_results("ols")

    @pytest.fixture
    def sample_input(self, new_exog: pd.DataFrame) -> pd.DataFrame:
        return new_exog

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return lambda results, X: np.concatenate([results.predict(X), results.bse, results.pvalues])


class TestGLMParamsContract(TestOLSParamsContract):
    @pytest.fixture
    def model(self, make_results: Callable[[str], Any]) -> Any:
        return make_results("logit-glm")


class TestARIMAPickleContract(_Common, SerializerContract):
    serializer = "statsmodels-pickle"

    @pytest.fixture
    def model(self, make_results: Callable[[str], Any]) -> Any:
        return make_results("arima")

    @pytest.fixture
    def sample_input(self) -> int:
        return 10

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return lambda results, steps: results.forecast(steps).to_numpy()
