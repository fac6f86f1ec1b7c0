"""modelshelf-pyspark: Spark ML models in Spark ML's own format, and shelf models as Spark UDFs.

* ``spark-ml`` (default for every ``pyspark.ml.base.Transformer``: fitted models, ``PipelineModel``,
  feature transformers): the directory ``model.write().save()`` writes; safe unless a stage is a
  Python class of your own.
* :func:`udf`: ``udf(shelf_url, "churn@prod")`` is a Spark pandas UDF scoring with the version the
  alias points to now; each executor process loads it once.

Importing this module imports neither pyspark nor pandas: the serializer claims classes by
qualified name, and both import Spark inside the calls.
"""

from __future__ import annotations

from modelshelf.hookspecs import SerializerRegistrar
from modelshelf.plugins import hookimpl

from .scoring import udf
from .serializer import SparkMLSerializer

__all__ = ["SparkMLSerializer", "modelshelf_register_serializers", "udf"]


@hookimpl
def modelshelf_register_serializers(register: SerializerRegistrar) -> None:
    register(SparkMLSerializer())
