"""Distributed batch scoring: any shelf model as a Spark pandas UDF.

The contract of :func:`udf`:

* The reference (``"churn@prod"``, ``"churn:latest"``...) is resolved **once, on the driver**, when
  ``udf`` is called. The UDF carries the fixed ``name:version`` to the executors, so every task of
  every job using it scores with that version, even if the alias moves meanwhile. Call ``udf``
  again to pick up a moved alias.
* Each executor Python process loads the model **once**: the first batch it scores loads the
  version through ``modelshelf.open(shelf_url).load(...)`` (so from that node's own download cache,
  ``MODELSHELF_CACHE``, downloading only what it lacks) and keeps it in a module-level cache keyed
  by shelf URL and version; later batches and later tasks in the same process (Spark reuses Python
  workers, ``spark.python.worker.reuse``, on by default) use that copy.
* Trust is decided on the driver too: a version in a format that can run code is refused there,
  before any job starts, unless ``trust=True``.

Nothing here imports pyspark, pandas or a framework at module level.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from modelshelf.errors import ModelshelfError, UntrustedFormat

#: Loaded models of this process: (shelf URL, name, version, token) -> model. The token is ``""``
#: for the default load, so every UDF of one version shares one copy; a UDF with its own
#: ``load_options`` or ``loader`` gets a token of its own.
_MODELS: dict[tuple[str, str, int, str], Any] = {}
_LOCK = threading.Lock()

Loader = Callable[[Any, str], Any]


def udf(
    shelf_url: str,
    ref: str,
    *,
    result_type: str = "double",
    method: str | Callable[[Any, Any], Any] = "predict",
    trust: bool = False,
    shelf_options: Mapping[str, Any] | None = None,
    load_options: Mapping[str, Any] | None = None,
    loader: Loader | None = None,
) -> Any:
    """A Spark pandas UDF scoring rows with the shelf model ``ref`` resolved now, on the driver.

    ``df.withColumn("score", udf(url, "churn@prod")("age", "income", ...))``: the columns passed
    become the model's input matrix, in that order, named after the features the version records
    (its signature's ``feature_names``) when it records as many; a single struct column is used as
    the whole frame. The model's output, one value per row, becomes the column.

    * ``result_type``: the Spark type of the result (DDL string or ``DataType``): ``"double"``,
      ``"long"``, ``"string"``, or ``"array<double>"`` for a row of values per input row
      (``method="predict_proba"``).
    * ``method``: the model's method to call with the input (default ``"predict"``), or a
      callable ``method(model, X)``.
    * ``trust``: needed for versions whose format can run code when loaded (checked here).
    * ``shelf_options``: keyword options for ``modelshelf.open`` on the driver and executors
      (they travel with the UDF: prefer credentials from the executors' environment).
    * ``load_options``: keyword options for ``Shelf.load`` (e.g. ``module=`` for weights).
    * ``loader``: ``loader(shelf, "name:version")`` returning the model, called instead of
      ``shelf.load`` when an executor process has no copy yet (to wrap or adapt the model).

    The returned UDF has ``modelshelf_ref`` set to the fixed ``"name:version"`` it scores with.
    """
    import modelshelf

    options = dict(shelf_options or {})
    with modelshelf.open(shelf_url, **options) as shelf:
        version = shelf.get(ref)
    if not version.serializer.safe and not trust:
        raise UntrustedFormat(
            f"{version.ref} is stored as {version.serializer.format} ({version.serializer.name}), "
            "which can run code when loaded: pass trust=True to udf() only if you trust whoever "
            "uploaded it"
        )
    if not (callable(method) or isinstance(method, str)):
        raise ModelshelfError(
            f"method must be a method name or a callable, not {type(method).__name__}"
        )
    fixed = _Scorer(
        shelf_url=shelf_url,
        shelf_options=options,
        name=version.name,
        version=version.version,
        trust=trust,
        load_options=dict(load_options or {}),
        loader=loader,
        method=method,
        feature_names=_feature_names(version.signature),
        token="" if loader is None and not load_options else uuid.uuid4().hex,
    )
    return _pandas_udf(fixed, result_type)


def _feature_names(signature: Mapping[str, Any] | None) -> list[str] | None:
    inputs = (signature or {}).get("inputs") or []
    if len(inputs) == 1 and isinstance(inputs[0], Mapping):
        names = inputs[0].get("feature_names")
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return names
    return None


class _Scorer:
    """What travels to the executors: where the fixed version is, and how to score a batch."""

    def __init__(
        self,
        *,
        shelf_url: str,
        shelf_options: dict[str, Any],
        name: str,
        version: int,
        trust: bool,
        load_options: dict[str, Any],
        loader: Loader | None,
        method: str | Callable[[Any, Any], Any],
        feature_names: list[str] | None,
        token: str,
    ) -> None:
        self.shelf_url = shelf_url
        self.shelf_options = shelf_options
        self.name = name
        self.version = version
        self.trust = trust
        self.load_options = load_options
        self.loader = loader
        self.method = method
        self.feature_names = feature_names
        self.token = token

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def model(self) -> Any:
        """This process's copy of the version, loaded on first use."""
        key = (self.shelf_url, self.name, self.version, self.token)
        with _LOCK:
            if key not in _MODELS:
                _MODELS[key] = self._load()
            return _MODELS[key]

    def _load(self) -> Any:
        import modelshelf

        with modelshelf.open(self.shelf_url, **self.shelf_options) as shelf:
            if self.loader is not None:
                return self.loader(shelf, self.ref)
            return shelf.load(self.ref, trust=self.trust, **self.load_options)

    def score(self, columns: tuple[Any, ...]) -> Any:
        import numpy as np
        import pandas as pd

        frame = self._frame(columns, pd)
        model = self.model()
        if callable(self.method):
            output = self.method(model, frame)
        else:
            output = getattr(model, self.method)(frame)
        values = np.asarray(output)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim == 2:
            return pd.Series(list(values))
        if values.ndim != 1 or len(values) != len(frame):
            raise ModelshelfError(
                f"{self.ref} returned {values.shape} for {len(frame)} rows: a UDF needs one value "
                "(or one row of values) per input row"
            )
        return pd.Series(values)

    def _frame(self, columns: tuple[Any, ...], pd: Any) -> Any:
        if len(columns) == 1 and isinstance(columns[0], pd.DataFrame):
            return columns[0]  # a struct column: already a frame with its field names
        frame = pd.concat([c.reset_index(drop=True) for c in columns], axis=1)
        if self.feature_names is None:
            # The model was fitted without column names: give it a plain matrix.
            return frame.to_numpy()
        if len(self.feature_names) != len(columns):
            raise ModelshelfError(
                f"{self.ref} takes {len(self.feature_names)} features "
                f"({', '.join(self.feature_names)}), the UDF was given {len(columns)} columns"
            )
        frame.columns = self.feature_names
        return frame


def _pandas_udf(scorer: _Scorer, result_type: Any) -> Any:
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    def score(*columns: Any) -> Any:
        return scorer.score(columns)

    # Spark reads these annotations to choose the Series-to-Series UDF kind; set them as real
    # types (this module's annotations are strings that Spark could not resolve here).
    score.__annotations__ = {"columns": pd.Series, "return": pd.Series}
    score.__name__ = f"modelshelf_{scorer.name.replace('/', '_')}_{scorer.version}"
    function = pandas_udf(score, result_type)  # type: ignore[call-overload]
    function.modelshelf_ref = scorer.ref
    return function
