"""modelshelf's serializer contract for both shap serializers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from modelshelf.testing import SerializerContract


class _Common:
    heavy_modules = ("shap", "numba", "xgboost", "sklearn", "numpy")

    @pytest.fixture
    def sample_input(self, rows: pd.DataFrame) -> pd.DataFrame:
        return rows


class TestTreeExplainerContract(_Common, SerializerContract):
    serializer = "shap-tree"

    @pytest.fixture
    def model(self, make_model: Callable[[str], Any], X: pd.DataFrame) -> Any:
        import shap

        return shap.TreeExplainer(
            make_model("xgboost"), data=X.iloc[:30], feature_perturbation="interventional"
        )

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return lambda explainer, X: np.append(
            explainer.shap_values(X).ravel(), explainer.expected_value
        )


class TestExactExplainerPickleContract(_Common, SerializerContract):
    serializer = "shap-pickle"

    @pytest.fixture
    def model(self, make_model: Callable[[str], Any], X: pd.DataFrame) -> Any:
        import shap

        # A Partition masker: with the default Independent masker, Exact's first call compiles
        # numba code for ~15 s. (A LinearExplainer rebuilt by shap.Explainer.load differs from the
        # original in the last bit, so it cannot show identical values.)
        return shap.explainers.Exact(
            make_model("logistic").decision_function, shap.maskers.Partition(X.to_numpy()[:20])
        )

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        return lambda explainer, X: explainer(X.to_numpy()).values
