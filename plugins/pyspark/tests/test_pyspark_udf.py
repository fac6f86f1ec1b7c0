"""modelshelf_pyspark.udf on a local[2] Spark session: models of two frameworks (scikit-learn
through modelshelf-sklearn, XGBoost through modelshelf-xgboost) score exactly as a local
``predict``; each executor Python process loads the model once; the alias is resolved once."""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from modelshelf.errors import ModelshelfError, UntrustedFormat
from modelshelf_pyspark import udf
from modelshelf_pyspark_testhelpers import alias_moving_loader, logging_loader, logging_method

FEATURES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """200 rows of four features and a binary target (fixed seed)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 4)), columns=FEATURES)
    frame["y"] = (frame["a"] + 0.5 * frame["b"] - 0.25 * frame["d"] > 0).astype(int)
    frame.insert(0, "id", np.arange(len(frame)))
    return frame


@pytest.fixture
def spark_table(spark: Any, table: pd.DataFrame) -> Any:
    """The same rows as a Spark DataFrame spread over 6 partitions (several tasks per worker)."""
    return spark.createDataFrame(table[["id", *FEATURES]]).repartition(6)


@pytest.fixture
def sklearn_model(table: pd.DataFrame) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(table[FEATURES], table["y"])  # knows its feature names


@pytest.fixture
def xgboost_model(table: pd.DataFrame) -> Any:
    import xgboost

    model = xgboost.XGBRegressor(n_estimators=20, max_depth=3, random_state=0, n_jobs=1)
    return model.fit(table[FEATURES].to_numpy(), table["y"].to_numpy())  # fitted without names


def scored(frame: Any, scorer: Any) -> list[Any]:
    rows = frame.select("id", scorer(*FEATURES).alias("score")).collect()
    return [row["score"] for row in sorted(rows, key=lambda r: r["id"])]


def logs(log_dir: Path, kind: str) -> list[list[str]]:
    return [
        line.split()
        for p in sorted(log_dir.glob(f"{kind}-*"))
        for line in p.read_text().splitlines()
    ]


@pytest.mark.parametrize("framework", ["sklearn", "xgboost"])
def test_scores_equal_a_local_predict_and_each_process_loads_once(
    framework: str,
    request: pytest.FixtureRequest,
    local_shelf: Any,
    local_shelf_path: Path,
    spark_table: Any,
    table: pd.DataFrame,
    tmp_path: Path,
) -> None:
    model = request.getfixturevalue(f"{framework}_model")
    version = local_shelf.upload(f"churn/{framework}", model)
    assert (
        version.serializer.name == {"sklearn": "sklearn-skops", "xgboost": "xgboost-ubj"}[framework]
    )
    local_shelf.set_alias(version.name, "prod", version.version)
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    scorer = udf(
        str(local_shelf_path),
        f"churn/{framework}@prod",
        result_type="long" if framework == "sklearn" else "double",
        loader=functools.partial(logging_loader, str(log_dir)),
        method=functools.partial(logging_method, str(log_dir), "predict"),
    )
    assert scorer.modelshelf_ref == f"churn/{framework}:1"

    scores = np.array(scored(spark_table, scorer))
    local = model.predict(table[FEATURES] if framework == "sklearn" else table[FEATURES].to_numpy())
    np.testing.assert_array_equal(scores, local)

    loads = logs(log_dir, "loads")
    batches = logs(log_dir, "batches")
    load_pids = Counter(pid for pid, _ in loads)
    batch_pids = {pid for pid, _ in batches}
    assert all(ref == f"churn/{framework}:1" for _, ref in loads)
    assert set(load_pids.values()) == {1}, f"a process loaded the model more than once: {load_pids}"
    assert set(load_pids) == batch_pids, "every process that scored loaded the model itself, once"
    # The point of the cache: many batches (6 partitions, 16 rows per Arrow batch) per load.
    assert sum(int(rows) for _, rows in batches) == len(table)
    assert len(batches) > len(loads)

    # A second job with the same UDF: the processes Spark reuses load nothing again.
    assert np.array_equal(np.array(scored(spark_table, scorer)), scores)
    again = Counter(pid for pid, _ in logs(log_dir, "loads"))
    assert set(again.values()) == {1}, f"reused worker processes loaded again: {again}"


def test_the_alias_is_resolved_once_on_the_driver(
    local_shelf: Any, local_shelf_path: Path, spark_table: Any, table: pd.DataFrame, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    first = LogisticRegression(C=1.0).fit(table[FEATURES], table["y"])
    second = LogisticRegression(C=0.001).fit(table[FEATURES], 1 - table["y"])  # other scores
    local_shelf.upload("churn/model", first)
    local_shelf.upload("churn/model", second)
    local_shelf.set_alias("churn/model", "prod", 1)
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    # Each executor process moves the alias to version 2 before it loads: the job runs while the
    # alias points elsewhere, and every process must still score with version 1.
    scorer = udf(
        str(local_shelf_path),
        "churn/model@prod",
        method="predict_proba",
        result_type="array<double>",
        loader=functools.partial(alias_moving_loader, str(log_dir), "churn/model", "prod", 2),
    )
    scores = np.array(scored(spark_table, scorer))
    assert local_shelf.get("churn/model@prod").version == 2  # the alias did move during the job
    assert {ref for _, ref in logs(log_dir, "loads")} == {"churn/model:1"}
    # Probabilities go through BLAS, whose last bit depends on the batch's size and memory layout
    # (Arrow batches of 16 rows here): equal to 1e-12, and far from version 2's.
    np.testing.assert_allclose(scores, first.predict_proba(table[FEATURES]), rtol=1e-12, atol=0)
    assert np.abs(scores - second.predict_proba(table[FEATURES])).max() > 0.1

    # A new UDF picks up the moved alias.
    assert udf(str(local_shelf_path), "churn/model@prod").modelshelf_ref == "churn/model:2"


def test_default_loader_scores_from_the_executors_cache(
    local_shelf: Any,
    local_shelf_path: Path,
    spark_table: Any,
    table: pd.DataFrame,
    executor_cache: Path,
    sklearn_model: Any,
) -> None:
    version = local_shelf.upload("plain/model", sklearn_model)
    scores = scored(spark_table, udf(str(local_shelf_path), "plain/model", result_type="long"))
    np.testing.assert_array_equal(scores, sklearn_model.predict(table[FEATURES]))
    # The executors downloaded into their own cache (MODELSHELF_CACHE of the workers).
    cached = {p.name for p in (executor_cache / "blobs").rglob("*") if p.is_file()}
    assert {f.sha256 for f in version.files} <= cached


def test_unsafe_versions_are_refused_on_the_driver(
    local_shelf: Any, local_shelf_path: Path, sklearn_model: Any, spark: Any
) -> None:
    local_shelf.upload("pickled", sklearn_model, serializer="sklearn-joblib")
    with pytest.raises(UntrustedFormat, match=r"pickled:1.*trust=True"):
        udf(str(local_shelf_path), "pickled")
    assert udf(str(local_shelf_path), "pickled", trust=True).modelshelf_ref == "pickled:1"


def test_column_count_must_match_the_recorded_features(
    local_shelf: Any, local_shelf_path: Path, spark_table: Any, sklearn_model: Any
) -> None:
    local_shelf.upload("four", sklearn_model)
    scorer = udf(str(local_shelf_path), "four")
    with pytest.raises(Exception, match=r"takes 4 features \(a, b, c, d\), the UDF was given 2"):
        spark_table.select(scorer("a", "b")).collect()
    with pytest.raises(ModelshelfError, match=r"method must be"):
        udf(str(local_shelf_path), "four", method=3)  # type: ignore[arg-type]
