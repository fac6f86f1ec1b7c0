"""Fixtures for the modelshelf-pyspark tests: one local Spark session for the whole run (starting
the JVM costs tens of seconds), isolated caches, fresh shelves, a fresh-process runner."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from modelshelf.testing.frameworks import import_test_helpers

# Helpers the Spark Python workers import by name (UDF loaders, a Python pipeline stage).
helpers = import_test_helpers(__file__, "modelshelf_pyspark_testhelpers")


@pytest.fixture(scope="session")
def executor_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("executor-cache")


@pytest.fixture(scope="session")
def spark(executor_cache: Path) -> Iterator[Any]:
    """One ``local[2]`` SparkSession shared by every test of this plugin."""
    from pyspark.sql import SparkSession

    saved = {
        k: os.environ.get(k)
        for k in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "PYTHONPATH", "MODELSHELF_CACHE")
    }
    # The JVM and its Python workers inherit the environment at start-up.
    os.environ.update(helpers.spark_environment(executor_cache))
    builder = SparkSession.builder.master("local[2]").appName("modelshelf-pyspark-tests")
    for key, value in helpers.SPARK_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(autouse=True)
def isolated_cache(modelshelf_cache: Path) -> Path:
    """Every test's own download cache (core's fixture, also set as ``MODELSHELF_CACHE``)."""
    return modelshelf_cache


@pytest.fixture(scope="session")
def training_frame(spark: Any) -> Any:
    """120 rows: two numeric features, a category and a binary label (fixed seed)."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for i in range(120):
        x1, x2 = float(rng.normal()), float(rng.normal())
        colour = ["red", "green", "blue"][i % 3]
        label = 1.0 if x1 + 0.5 * x2 + (0.7 if colour == "red" else 0.0) > 0 else 0.0
        rows.append((i, x1, x2, colour, label))
    return spark.createDataFrame(rows, ["id", "x1", "x2", "colour", "label"])


@pytest.fixture(scope="session")
def pipeline_model(training_frame: Any) -> Any:
    """A fitted PipelineModel: StringIndexer -> VectorAssembler -> LogisticRegression."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    pipeline = Pipeline(
        stages=[
            StringIndexer(
                inputCol="colour", outputCol="colour_index", stringOrderType="alphabetAsc"
            ),
            VectorAssembler(inputCols=["x1", "x2", "colour_index"], outputCol="features"),
            LogisticRegression(maxIter=20, regParam=0.01),
        ]
    )
    return pipeline.fit(training_frame)


@pytest.fixture(scope="session")
def scoring_frame(spark: Any) -> Any:
    """Fixed rows to score, other than the training rows."""
    rows = [(i, 0.1 * i - 1.0, 1.0 - 0.05 * i, ["red", "green", "blue"][i % 3]) for i in range(12)]
    return spark.createDataFrame(rows, ["id", "x1", "x2", "colour"])


@pytest.fixture
def spark_predict() -> Callable[[Any, Any], Any]:
    return helpers.transform_to_numpy
