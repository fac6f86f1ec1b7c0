"""modelshelf's serializer contract for spark-ml, on a real local Spark session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from modelshelf.testing import SerializerContract


class TestSparkMLContract(SerializerContract):
    """A single fitted LogisticRegressionModel: few files, so the damaged-file cases stay quick."""

    serializer = "spark-ml"
    heavy_modules = ("pyspark", "py4j", "pandas", "pyarrow", "numpy")

    @pytest.fixture
    def model(self, pipeline_model: Any) -> Any:
        return pipeline_model.stages[-1]

    @pytest.fixture
    def sample_input(self, pipeline_model: Any, scoring_frame: Any) -> Any:
        features = pipeline_model.stages[0].transform(scoring_frame)
        return pipeline_model.stages[1].transform(features)

    @pytest.fixture
    def predict(self, spark_predict: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        return spark_predict
