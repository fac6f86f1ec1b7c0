"""Fixtures for the modelshelf-pyspark tests: one local Spark session for the whole run (starting
the JVM costs tens of seconds), isolated caches, fresh shelves, a fresh-process runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import modelshelf
import pytest

TESTS_DIR = Path(__file__).parent
# Helpers the Spark Python workers import by name (UDF loaders, a Python pipeline stage).
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from modelshelf_pyspark_testhelpers import SPARK_CONF, spark_environment, transform_to_numpy  # noqa: E402


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
    os.environ.update(spark_environment(executor_cache))
    builder = SparkSession.builder.master("local[2]").appName("modelshelf-pyspark-tests")
    for key, value in SPARK_CONF.items():
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


@pytest.fixture
def shelf_path(tmp_path: Path) -> Path:
    return tmp_path / "shelf"


@pytest.fixture
def shelf(shelf_path: Path, modelshelf_cache: Path) -> Iterator[Any]:
    with modelshelf.open(str(shelf_path), cache=modelshelf_cache) as opened:
        yield opened


@pytest.fixture
def run_python(
    modelshelf_run_python: Callable[..., subprocess.CompletedProcess[str]],
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``python -c code *args`` in a fresh process with an empty cache (core's fixture)."""
    return modelshelf_run_python


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
    return transform_to_numpy
