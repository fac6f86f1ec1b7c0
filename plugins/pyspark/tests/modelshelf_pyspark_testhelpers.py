"""Helpers that Spark's Python workers import by name (this directory is on their PYTHONPATH).

Loaders and methods for ``modelshelf_pyspark.udf`` record each call in a log directory, bound with
``functools.partial`` so that the UDF carries it to the executors.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable

TESTS_DIR = Path(__file__).parent

#: Spark settings for a small, quiet, local session; Python worker reuse stays on (the default),
#: which is what lets an executor process keep its loaded model between tasks.
SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "1g",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.python.worker.reuse": "true",
    # Several Arrow batches per task, so "once per process, not once per batch" is tested.
    "spark.sql.execution.arrow.maxRecordsPerBatch": "16",
}


def spark_environment(cache: Path) -> dict[str, str]:
    """What Spark's Python workers (and a fresh driver process) need: this interpreter, the
    helpers on the path, and a download cache of their own (the executors' node-local cache)."""
    return {
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH", "")) if p
        ),
        "MODELSHELF_CACHE": str(cache),
    }


def transform_to_numpy(model: Any, frame: Any) -> Any:
    """``model.transform(frame)`` as a numpy array: prediction and probabilities, ordered by id."""
    import numpy as np

    rows = model.transform(frame).orderBy("id").select("prediction", "probability").collect()
    return np.array([[row["prediction"], *row["probability"].toArray()] for row in rows])


def logging_loader(log_dir: str, shelf: Any, ref: str) -> Any:
    """Load ``ref`` as the UDF would, and append ``pid ref`` to ``log_dir/loads-<pid>``."""
    model = shelf.load(ref)
    with open(Path(log_dir) / f"loads-{os.getpid()}", "a") as log:
        log.write(f"{os.getpid()} {ref}\n")
    return model


def alias_moving_loader(
    log_dir: str, name: str, alias: str, to_version: int, shelf: Any, ref: str
) -> Any:
    """Move ``name@alias`` to ``to_version`` while the job runs, then load ``ref`` as given."""
    shelf.set_alias(name, alias, to_version)
    return logging_loader(log_dir, shelf, ref)


def logging_method(log_dir: str, method: str, model: Any, frame: Any) -> Any:
    """Call ``model.<method>(frame)`` and append ``pid rows`` to ``log_dir/batches-<pid>``."""
    with open(Path(log_dir) / f"batches-{os.getpid()}", "a") as log:
        log.write(f"{os.getpid()} {len(frame)}\n")
    return getattr(model, method)(frame)


class MarkerStage(
    Transformer, HasInputCol, HasOutputCol, DefaultParamsReadable, DefaultParamsWritable
):
    """A Python pipeline stage of "the uploader's": creating one writes the file named by
    ``MODELSHELF_TEST_MARKER``. pyspark creates it by its class name when loading a pipeline, so
    the marker appearing means a load ran the uploader's code."""

    @keyword_only
    def __init__(self, inputCol: str | None = None, outputCol: str | None = None) -> None:
        super().__init__()
        marker = os.environ.get("MODELSHELF_TEST_MARKER")
        if marker:
            Path(marker).write_text("code from the stored model ran\n")
        kwargs = self._input_kwargs
        self._set(**kwargs)

    def _transform(self, dataset: Any) -> Any:
        return dataset.withColumn(self.getOutputCol(), dataset[self.getInputCol()] * 2.0)
