"""spark-ml through a real filesystem shelf: pipelines, what is recorded, a fresh process, and
versions whose stages are Python classes that are not Spark's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelshelf.errors import InvalidModel, ModelshelfError, UntrustedFormat
from modelshelf.testing import frameworks
from modelshelf_pyspark import SparkMLSerializer
from modelshelf_pyspark_testhelpers import spark_environment, transform_to_numpy


def test_importing_the_plugin_and_listing_serializers_imports_no_framework() -> None:
    frameworks.assert_light_import(
        "pyspark",
        ["spark-ml"],
        ["pyspark", "py4j", "pandas", "pyarrow", "numpy", "sklearn", "xgboost"],
        then="assert callable(modelshelf_pyspark.udf)\n",
    )


def test_modelshelf_plugins_lists_the_claim() -> None:
    frameworks.assert_plugins_command_lists(
        "pyspark",
        "serializer spark-ml [spark-ml, safe]: pyspark.ml.base.Transformer",
    )


def test_pipeline_round_trip_records_stages_and_signature(
    local_shelf: Any, pipeline_model: Any, scoring_frame: Any
) -> None:
    import pyspark
    from pyspark.ml import PipelineModel

    version = local_shelf.upload("churn/pipeline", pipeline_model)
    assert version.serializer.name == "spark-ml"
    assert version.serializer.safe is True
    assert (version.framework.name, version.framework.version) == ("pyspark", pyspark.__version__)
    paths = [f.path for f in version.files]
    assert all(p.startswith("model/") for p in paths)
    assert not [p for p in paths if p.endswith(".crc") or p.endswith("_SUCCESS")]
    details = version.serializer.details
    assert details["class"] == "pyspark.ml.pipeline.PipelineModel"
    assert [s["class"] for s in details["stages"]] == [
        "pyspark.ml.feature.StringIndexerModel",
        "pyspark.ml.feature.VectorAssembler",
        "pyspark.ml.classification.LogisticRegressionModel",
    ]
    assert details["stages"][2]["params"]["maxIter"] == 20
    assert details["stages"][2]["params"]["regParam"] == 0.01
    assert "org.apache.spark.ml.PipelineModel" in details["metadata_classes"]
    assert version.signature == {
        "inputs": [{"name": n, "kind": "column"} for n in ("colour", "x1", "x2")],
        "outputs": [
            {"name": n, "kind": "column"}
            for n in ("colour_index", "features", "prediction", "probability", "rawPrediction")
        ],
    }

    loaded = local_shelf.load(version.ref)
    assert type(loaded) is PipelineModel
    assert [type(s) for s in loaded.stages] == [type(s) for s in pipeline_model.stages]
    np.testing.assert_array_equal(
        transform_to_numpy(loaded, scoring_frame), transform_to_numpy(pipeline_model, scoring_frame)
    )


FRESH_PROCESS = """
import json, sys
import modelshelf
from pyspark.sql import SparkSession

shelf_path, ref, dest = sys.argv[1:4]
spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
         .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
         .getOrCreate())
shelf = modelshelf.open(shelf_path)
listed = [v.version for v in shelf.versions("churn/pipeline")]
files = sorted(str(p.relative_to(dest)) for p in shelf.download(ref, dest).rglob("*") if p.is_file())
model = shelf.load(ref)
rows = [(i, 0.1 * i - 1.0, 1.0 - 0.05 * i, ["red", "green", "blue"][i % 3]) for i in range(12)]
frame = spark.createDataFrame(rows, ["id", "x1", "x2", "colour"])
scored = model.transform(frame).orderBy("id").select("prediction", "probability").collect()
print(json.dumps({"listed": listed, "files": len(files), "type": type(model).__name__,
                  "scores": [[r["prediction"], *r["probability"].toArray().tolist()] for r in scored]}))
spark.stop()
"""


def test_upload_list_download_and_load_in_a_fresh_process(
    local_shelf: Any,
    local_shelf_path: Path,
    pipeline_model: Any,
    scoring_frame: Any,
    modelshelf_run_python: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    version = local_shelf.upload("churn/pipeline", pipeline_model)
    env = spark_environment(tmp_path / "fresh-executor-cache")
    env.pop("MODELSHELF_CACHE")  # run_python gives the process an empty cache of its own
    result = modelshelf_run_python(
        textwrap.dedent(FRESH_PROCESS),
        str(local_shelf_path),
        version.ref,
        str(tmp_path / "dl"),
        env=env,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["listed"] == [1]
    assert report["files"] == len(version.files)
    assert report["type"] == "PipelineModel"
    # JSON keeps every digit of a double, so equality here is bit-for-bit equality.
    expected = transform_to_numpy(pipeline_model, scoring_frame)
    np.testing.assert_array_equal(np.array(report["scores"]), expected)


def test_save_and_load_need_an_active_session_and_say_so() -> None:
    code = textwrap.dedent(
        """
        from pathlib import Path
        from modelshelf.errors import ModelshelfError
        from modelshelf_pyspark.serializer import require_session
        try:
            require_session("load")
        except ModelshelfError as exc:
            print(exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "needs an active SparkSession" in result.stdout


def test_staging_through_a_directory_every_node_reaches(
    local_shelf: Any, pipeline_model: Any, scoring_frame: Any, tmp_path: Path
) -> None:
    """What a cluster needs (executors write part of the data): Spark writes and reads a staging
    directory through Hadoop's file system, copied to and from the driver, then removed."""
    staging = tmp_path / "staging"
    staging.mkdir()
    version = local_shelf.upload("staged", pipeline_model, options={"staging": staging.as_uri()})
    assert list(staging.iterdir()) == []
    assert all(f.path.startswith("model/") and not f.path.endswith(".crc") for f in version.files)
    loaded = local_shelf.load(version.ref, staging=staging.as_uri())
    assert list(staging.iterdir()) == []
    np.testing.assert_array_equal(
        transform_to_numpy(loaded, scoring_frame), transform_to_numpy(pipeline_model, scoring_frame)
    )
    # Versions staged or not are the same format: either loads either way.
    np.testing.assert_array_equal(
        transform_to_numpy(local_shelf.load(version.ref), scoring_frame),
        transform_to_numpy(pipeline_model, scoring_frame),
    )
    with pytest.raises(ModelshelfError, match=r"staging must be a directory URI"):
        local_shelf.upload("staged", pipeline_model, options={"staging": 3})


def test_unknown_options_and_non_spark_objects_are_refused(
    local_shelf: Any, pipeline_model: Any, tmp_path: Path, spark: Any
) -> None:
    with pytest.raises(
        ModelshelfError,
        match=r"spark-ml does not understand save option\(s\) overwrite \(accepted: staging\)",
    ):
        local_shelf.upload("m", pipeline_model, options={"overwrite": True})
    version = local_shelf.upload("m", pipeline_model)
    with pytest.raises(ModelshelfError, match=r"spark-ml does not understand load option"):
        local_shelf.load(version.ref, path="elsewhere")
    with pytest.raises(InvalidModel, match=r"spark-ml saves fitted pyspark.ml"):
        SparkMLSerializer().save(object(), tmp_path)


# --- stages that are not Spark's own ------------------------------------------------------------


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The file MarkerStage writes when it is created; armed only after the model is built."""
    return tmp_path / "marker"


def _python_stage_pipeline(training_frame: Any) -> Any:
    from modelshelf_pyspark_testhelpers import MarkerStage
    from pyspark.ml import Pipeline

    return Pipeline(stages=[MarkerStage(inputCol="x1", outputCol="x1_doubled")]).fit(training_frame)


def test_python_stage_of_the_uploader_needs_trust_and_never_runs_without_it(
    local_shelf: Any,
    training_frame: Any,
    marker: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    model = _python_stage_pipeline(training_frame)
    version = local_shelf.upload("custom", model)
    assert version.serializer.safe is False  # recorded at upload: core asks for trust
    assert (
        "modelshelf_pyspark_testhelpers.MarkerStage"
        in version.serializer.details["metadata_classes"]
    )
    monkeypatch.setenv("MODELSHELF_TEST_MARKER", str(marker))
    with pytest.raises(UntrustedFormat, match=r"MarkerStage"):
        local_shelf.load(version.ref)
    assert not marker.exists()

    # Called directly (no core check in front), the serializer refuses from the stored files.
    serializer = SparkMLSerializer()
    directory = local_shelf.download(version.ref, tmp_path / "dl")
    with pytest.raises(UntrustedFormat, match=r"modelshelf_pyspark_testhelpers.MarkerStage"):
        serializer.load(directory, details=version.serializer.details)
    assert not marker.exists()

    # The payload is real: trusting the version runs it.
    loaded = local_shelf.load(version.ref, trust=True)
    assert marker.exists()
    assert type(loaded.stages[0]).__name__ == "MarkerStage"


def test_stored_metadata_naming_a_foreign_class_is_refused_whatever_details_say(
    pipeline_model: Any,
    training_frame: Any,
    marker: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A hostile writer stores a safe-looking manifest over files that name another class."""
    serializer = SparkMLSerializer()
    directory = tmp_path / "version"
    directory.mkdir()
    saved = serializer.save(pipeline_model, directory)
    assert saved.safe is None
    stage_metadata = next((directory / "model" / "stages").glob("1_*/metadata/part-*"))
    record = json.loads(stage_metadata.read_text())
    record["class"] = "modelshelf_pyspark_testhelpers.MarkerStage"
    stage_metadata.write_text(json.dumps(record) + "\n")
    monkeypatch.setenv("MODELSHELF_TEST_MARKER", str(marker))
    with pytest.raises(UntrustedFormat, match=r"MarkerStage") as refused:
        serializer.load(directory, details=saved.details)
    assert "\n" not in str(refused.value)
    assert not marker.exists()

    # Details naming a class outside pyspark.ml are refused before anything is imported.
    clean = tmp_path / "clean"
    clean.mkdir()
    saved = serializer.save(pipeline_model, clean)
    with pytest.raises(UntrustedFormat, match=r"os.system"):
        serializer.load(clean, details={**saved.details, "class": "os.system"})
