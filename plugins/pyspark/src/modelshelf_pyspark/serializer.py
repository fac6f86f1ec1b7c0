"""The ``spark-ml`` serializer: fitted ``pyspark.ml`` models and pipelines in Spark ML's own format.

Nothing here imports pyspark at module level: the serializer claims ``pyspark.ml.base.Transformer``
(every fitted model, ``PipelineModel`` and feature transformer) by qualified name and imports
pyspark inside ``save``/``load``.

What is stored: the directory ``model.write().save(path)`` writes (``metadata/`` JSON and
``data/`` Parquet, one ``stages/`` sub-directory per pipeline stage), without Hadoop's ``.crc``
and ``_SUCCESS`` bookkeeping files, which modelshelf's own sha256 checks make redundant.

Safety: the format is JSON plus Parquet, and Spark's JVM readers only parse it. What can run code
is the *class names* in the metadata: Spark instantiates the class each ``metadata`` file names
(the JVM by reflection; pyspark imports a Python module and calls the class, for stages written
in Python). A version whose classes are all Spark's own (``org.apache.spark.ml.*`` or
``pyspark.ml.*``) is safe; any other class (your own Python ``Transformer``) makes the version
need trust, both when it is uploaded (the manifest records it as unsafe) and when a stored file
says so on load (the files are checked before Spark reads them).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from modelshelf.errors import InvalidModel, ModelshelfError, UntrustedFormat
from modelshelf.serializers import (
    SavedModel,
    Serializer,
    check_options,
    is_json_exact,
    model_file,
    qualified_name,
    reading,
)

#: The directory below the version's root that Spark writes.
MODEL_DIR = "model"

#: Class-name prefixes Spark instantiates from metadata without running code of the uploader's.
SPARK_CLASS_PREFIXES = ("org.apache.spark.ml.", "pyspark.ml.")

#: Params naming columns a stage reads, and columns it adds.
INPUT_COLUMN_PARAMS = ("inputCol", "inputCols", "featuresCol")
OUTPUT_COLUMN_PARAMS = (
    "outputCol",
    "outputCols",
    "predictionCol",
    "probabilityCol",
    "rawPredictionCol",
    "varianceCol",
    "leafCol",
    "topicDistributionCol",
)


class SparkMLSerializer(Serializer):
    """A fitted ``pyspark.ml`` ``Transformer`` (model, ``PipelineModel``, feature transformer) <->
    Spark ML's directory format.

    ``save(obj, directory)`` calls ``obj.write().save(directory / "model")``.
    ``load(directory, details=..., trust=False)`` returns ``cls.load(path)`` for the saved Python
    class (``LogisticRegressionModel`` comes back as ``LogisticRegressionModel``, a
    ``PipelineModel`` as a ``PipelineModel`` with the same stages). Both need an active
    ``SparkSession``, like Spark's own ``save``/``load``.

    Option ``staging`` (save and load): a directory URI every node of the cluster reaches
    (``hdfs://...``, ``s3a://...``, ``dbfs:/...``). Spark's executors write part of a model's
    data themselves, so on a multi-node cluster a path on the driver's disk is not where they
    write: with ``staging``, Spark writes to (or reads from) a fresh directory below it, copied
    from (or to) the driver's local directory through Hadoop's file system, and removed after.
    """

    name = "spark-ml"
    framework = "pyspark"
    format = "spark-ml"
    safe = True
    claims = ("pyspark.ml.base.Transformer",)

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ("staging",))
        import pyspark
        from pyspark.ml.base import Transformer
        from pyspark.ml.util import MLWritable

        if not isinstance(obj, Transformer) or not isinstance(obj, MLWritable):
            raise InvalidModel(
                f"spark-ml saves fitted pyspark.ml models and transformers that Spark can write, "
                f"not {type(obj).__qualname__}"
            )
        require_session("save")
        target = directory / MODEL_DIR
        staging = options.get("staging")
        if staging is None:
            obj.write().save(str(target))
        else:
            with _staged(staging) as (remote, hadoop):
                obj.write().save(remote)
                hadoop.fs.copyToLocalFile(
                    False, hadoop.path(remote), hadoop.path(str(target)), True
                )
        _remove_hadoop_bookkeeping(target)
        stages = list(_flat_stages(obj))
        classes = sorted(_metadata_classes(target))
        foreign = [c for c in classes if not c.startswith(SPARK_CLASS_PREFIXES)]
        return SavedModel(
            framework="pyspark",
            framework_version=pyspark.__version__,
            signature=_signature(stages),
            details={
                "path": MODEL_DIR,
                "class": qualified_name(type(obj)),
                "stages": [_describe_stage(stage) for stage in stages],
                "metadata_classes": classes,
            },
            # A Python stage of the user's own is imported and instantiated by name on load.
            safe=False if foreign else None,
        )

    def unsafe_part(self, details: Mapping[str, Any]) -> str:
        classes = [
            c
            for c in details.get("metadata_classes") or ()
            if isinstance(c, str) and not c.startswith(SPARK_CLASS_PREFIXES)
        ]
        shown = ", ".join(classes) or "classes that are not Spark's own"
        return f"Spark ML stages {shown} (imported and instantiated by pyspark on load)"

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        check_options(self.name, "load", options, ("staging",))
        relative = details.get("path", MODEL_DIR)
        path = model_file(directory, relative, kind="directory")
        cls_name = details.get("class")
        # What Spark will instantiate is what the stored files name, whatever details say.
        classes = _stored_classes(path, str(relative))
        foreign = sorted(c for c in classes if not c.startswith(SPARK_CLASS_PREFIXES))
        if foreign and not trust:
            raise UntrustedFormat(
                f"this Spark ML model names classes that are not Spark's own ({', '.join(foreign)}); "
                "pyspark imports and instantiates them while loading: pass trust=True only if you "
                "trust whoever uploaded it"
            )
        cls = _python_class(cls_name, trust=trust)
        require_session("load")
        staging = options.get("staging")
        if staging is None:
            with reading(str(relative), "pyspark.ml"):
                return cls.load(str(path))
        with _staged(staging) as (remote, hadoop):
            hadoop.fs.copyFromLocalFile(False, True, hadoop.path(str(path)), hadoop.path(remote))
            with reading(str(relative), "pyspark.ml"):
                # Spark ML readers collect the model's data to the driver while loading, so the
                # staged copy can go once load returns.
                return cls.load(remote)


# --- files -------------------------------------------------------------------------------------


class _Hadoop:
    """The Hadoop file system of a staging URI, through the active session's JVM."""

    def __init__(self, uri: str) -> None:
        from pyspark.sql import SparkSession

        session = SparkSession.getActiveSession()
        assert session is not None  # require_session ran first
        self._jvm: Any = session.sparkContext._jvm
        conf = session.sparkContext._jsc.hadoopConfiguration()
        self.fs = self.path(uri).getFileSystem(conf)

    def path(self, uri: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(uri)


@contextlib.contextmanager
def _staged(staging: object) -> Iterator[tuple[str, _Hadoop]]:
    """A fresh directory URI below ``staging`` and its file system; removed afterwards."""
    if not isinstance(staging, str) or not staging.strip():
        raise ModelshelfError(
            f"staging must be a directory URI every Spark node reaches (hdfs://..., s3a://...), "
            f"not {staging!r}"
        )
    remote = f"{staging.rstrip('/')}/modelshelf-{uuid.uuid4().hex}"
    try:
        hadoop = _Hadoop(remote)
    except Exception as exc:  # py4j errors: unknown scheme, no credentials...
        raise ModelshelfError(
            f"cannot use staging {staging!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    try:
        yield remote, hadoop
    finally:
        hadoop.fs.delete(hadoop.path(remote), True)


def _remove_hadoop_bookkeeping(root: Path) -> None:
    """Drop Hadoop's ``.crc`` checksums and ``_SUCCESS`` markers: readers ignore their absence,
    and the shelf checks every file's sha256 anyway."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and (path.name.endswith(".crc") or path.name == "_SUCCESS"):
            path.unlink()


def _metadata_files(root: Path) -> Iterator[Path]:
    """The JSON metadata files Spark reads: ``part-*`` files in every ``metadata`` directory."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if os.path.basename(dirpath) == "metadata":
            for name in sorted(filenames):
                if not name.startswith((".", "_")):
                    yield Path(dirpath) / name


def _metadata_classes(root: Path) -> set[str]:
    classes = set()
    for path in _metadata_files(root):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                classes.add(str(json.loads(line).get("class")))
    return classes


def _stored_classes(root: Path, relative: str) -> set[str]:
    """Every class a stored metadata file names; a file that is no JSON object is damaged."""
    classes = set()
    found = False
    for path in _metadata_files(root):
        found = True
        shown = f"{relative}/{path.relative_to(root).as_posix()}"
        if path.is_symlink() or not path.is_file():
            raise InvalidModel(f"refusing {shown!r}: Spark ML metadata must be a regular file")
        with reading(shown, "json"):
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            records = [json.loads(line) for line in lines]
        if not records:
            raise InvalidModel(
                f"could not read {shown!r} of this version: the Spark ML metadata file is empty, "
                "so the stored file is damaged"
            )
        for record in records:
            name = record.get("class") if isinstance(record, dict) else None
            if not isinstance(name, str):
                raise InvalidModel(
                    f"could not read {shown!r} of this version: Spark ML metadata without a class "
                    "name; the stored file is damaged or was not written by Spark"
                )
            classes.add(name)
    if not found:
        raise InvalidModel(
            f"{relative!r} of this version holds no Spark ML metadata: it was not written by "
            "this serializer"
        )
    return classes


def _python_class(name: object, *, trust: bool) -> Any:
    """The ``pyspark.ml`` class named in details, imported only after checking the name."""
    import importlib

    from pyspark.ml.base import Transformer
    from pyspark.ml.util import MLReadable

    if not isinstance(name, str) or "." not in name:
        raise InvalidModel(
            f"this version's details name no model class ({name!r}): the manifest is damaged"
        )
    if not name.startswith("pyspark.ml.") and not trust:
        raise UntrustedFormat(
            f"this Spark ML version is loaded through class {name}, which is not pyspark's own: "
            "pass trust=True only if you trust whoever uploaded it"
        )
    module_name, _, attribute = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ModelshelfError(
            f"cannot import {name}, the class this Spark ML model was saved from ({exc}): "
            "install the same pyspark (or the package defining it) where you load it"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Transformer) and issubclass(cls, MLReadable)):
        raise InvalidModel(
            f"{name} is not a readable pyspark.ml Transformer: the manifest is damaged"
        )
    return cls


# --- what is recorded ----------------------------------------------------------------------------


def _flat_stages(obj: Any) -> Iterator[Any]:
    """The transformers a model applies, nested pipelines flattened, in order."""
    stages = getattr(obj, "stages", None)
    if isinstance(stages, list):
        for stage in stages:
            yield from _flat_stages(stage)
    else:
        yield obj


def _param_values(stage: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param in stage.params:
        if stage.isDefined(param):
            value = stage.getOrDefault(param)
            if is_json_exact(value):
                values[param.name] = value
    return values


def _describe_stage(stage: Any) -> dict[str, Any]:
    return {
        "class": qualified_name(type(stage)),
        "uid": str(stage.uid),
        "params": _param_values(stage),
    }


def _columns(values: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    found: list[str] = []
    for name in names:
        value = values.get(name)
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            found.extend(str(v) for v in value)
    return found


def _signature(stages: Sequence[Any]) -> dict[str, Any] | None:
    """Columns the model reads that no earlier stage produced, and the columns it adds."""
    produced: list[str] = []
    consumed: list[str] = []
    for stage in stages:
        values = _param_values(stage)
        for column in _columns(values, INPUT_COLUMN_PARAMS):
            if column not in produced and column not in consumed:
                consumed.append(column)
        for column in _columns(values, OUTPUT_COLUMN_PARAMS):
            if column not in produced:
                produced.append(column)
    if not consumed and not produced:
        return None
    return {
        "inputs": [{"name": column, "kind": "column"} for column in consumed],
        "outputs": [{"name": column, "kind": "column"} for column in produced],
    }


# --- helpers -----------------------------------------------------------------------------------


def require_session(what: str) -> None:
    from pyspark.sql import SparkSession

    if SparkSession.getActiveSession() is None:
        raise ModelshelfError(
            f"spark-ml needs an active SparkSession to {what} a Spark ML model: create one first "
            "(SparkSession.builder.getOrCreate())"
        )
