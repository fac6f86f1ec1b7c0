"""The ``annoy-native`` serializer: an Annoy index as its own ``.ann`` file.

An ``.ann`` file is the index's memory image (nodes and item vectors); it holds neither the
dimension nor the metric, and Annoy reads it with whatever ``AnnoyIndex(f, metric)`` it is given.
So both go in the manifest. ``f`` is an attribute of every index; the metric is not (no Annoy
version exposes it), so it comes from the caller (save option ``metric``) or, when the caller
does not give it, from the index itself: :func:`infer_metric` keeps the metrics whose formula
reproduces ``get_distance`` on pairs of stored items, then the saved file is read back under each
remaining metric and only those that give back the same item count, tree count and item vectors
stay (metrics lay out nodes differently, which tells apart e.g. 0/1 vectors that Manhattan and
Hamming measure alike). Only a single survivor is accepted. An index that cannot be decided
(fewer than two distinct items, and a file that several metrics read alike) is refused with a
message asking for ``metric``; a given metric that contradicts the distances or the file is
refused too. The metric is never guessed.

Loading maps the file read-only and runs no code: the serializer is safe. ``load`` reads the
file named by ``details["file"]`` (vetted by :func:`~modelshelf.serializers.model_file`), so an
index imported from modelstore (``model.ann``, with ``num_dimensions`` and ``metric`` from its
parameters as ``f`` and ``metric``) loads too; the counts ``n_items``, ``n_trees`` and ``size`` are
checked when details have them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelshelf.errors import InvalidModel, ModelshelfError
from modelshelf.serializers import (
    SavedModel,
    Serializer,
    check_options,
    model_file,
    qualified_name,
    reading,
)

#: Written into the version directory. Fixed, never read from the manifest.
INDEX_FILE = "index.ann"
#: Annoy's metrics, by the names ``AnnoyIndex(f, metric)`` accepts.
METRICS = ("angular", "euclidean", "manhattan", "dot", "hamming")
#: Pairs of items compared to infer a metric: enough to tell metrics apart on any real index,
#: few enough to cost nothing.
_PROBE_PAIRS = 16


def _distance(metric: str, u: list[float], v: list[float]) -> float:
    """What ``AnnoyIndex.get_distance`` returns for items ``u`` and ``v`` under ``metric``."""
    if metric == "angular":
        nu = math.sqrt(sum(a * a for a in u))
        nv = math.sqrt(sum(b * b for b in v))
        if nu == 0 or nv == 0:
            return math.sqrt(2.0)
        return math.sqrt(
            max(0.0, 2.0 - 2.0 * sum(a * b for a, b in zip(u, v, strict=True)) / (nu * nv))
        )
    if metric == "euclidean":
        return math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v, strict=True)))
    if metric == "manhattan":
        return sum(abs(a - b) for a, b in zip(u, v, strict=True))
    if metric == "dot":
        return sum(a * b for a, b in zip(u, v, strict=True))  # Annoy reports the dot product itself
    # hamming: items are bit vectors
    return float(sum(1 for a, b in zip(u, v, strict=True) if (a != 0) != (b != 0)))


def _matches(metric: str, u: list[float], v: list[float], got: float) -> bool:
    if metric == "hamming" and not all(x in (0.0, 1.0) for x in (*u, *v)):
        return False  # a Hamming index only ever holds bits
    want = _distance(metric, u, v)
    # Annoy computes in float32 and returns float32.
    return abs(want - got) <= 1e-4 * max(1.0, abs(want), abs(got))


def infer_metric(index: Any) -> tuple[str, ...]:
    """The metrics consistent with ``index``'s own distances between stored items.

    One name means the metric is known. Several (or every metric, when the index holds fewer than
    two distinct items) mean the distances cannot tell: the caller must say.
    """
    n_items = int(index.get_n_items())
    candidates = list(METRICS)
    ids = list(range(min(n_items, _PROBE_PAIRS + 1)))
    informative = 0
    for i, j in itertools.pairwise(ids):
        u, v = list(index.get_item_vector(i)), list(index.get_item_vector(j))
        if u == v:
            continue
        got = float(index.get_distance(i, j))
        candidates = [m for m in candidates if _matches(m, u, v, got)]
        informative += 1
    return tuple(candidates) if informative else METRICS


def _reads_back(path: Path, index: Any, f: int, metric: str) -> bool:
    """True if the file at ``path`` read as an ``f``-dimensional ``metric`` index gives back
    ``index``'s item count, tree count and first item vectors."""
    from annoy import AnnoyIndex

    candidate = AnnoyIndex(f, metric)  # type: ignore[arg-type]  # one of METRICS, checked by the caller
    try:
        candidate.load(str(path))
    except OSError:  # the file is no whole number of this metric's nodes
        return False
    try:
        n_items = int(index.get_n_items())
        if int(candidate.get_n_items()) != n_items or int(candidate.get_n_trees()) != int(
            index.get_n_trees()
        ):
            return False
        # Only now are item ids known to lie inside the file.
        return all(
            list(candidate.get_item_vector(i)) == list(index.get_item_vector(i))
            for i in range(min(n_items, _PROBE_PAIRS + 1))
        )
    finally:
        candidate.unload()


def _annoy_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("annoy")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - imported from elsewhere
        return "unknown"


class AnnoySerializer(Serializer):
    """Built Annoy indexes as their ``.ann`` file; ``load`` returns an ``annoy.AnnoyIndex``.

    Save option ``metric`` (one of :data:`METRICS`): needed only when the index's distances cannot
    tell (see the module docstring). Load option ``prefault`` (bool, as ``AnnoyIndex.load``).
    """

    name = "annoy-native"
    framework = "annoy"
    format = "ann"
    safe = True
    # AnnoyIndex is annoy.Annoy in annoy 1.17 (an alias), a subclass of annoy.annoylib.Annoy before.
    claims = ("annoy.Annoy", "annoy.AnnoyIndex", "annoy.annoylib.Annoy")

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ("metric",))
        f = getattr(obj, "f", None)
        if not isinstance(f, int) or f <= 0:
            raise InvalidModel(
                f"cannot read the dimension of this {type(obj).__name__} (no attribute f)"
            )
        n_trees = int(obj.get_n_trees())
        if n_trees == 0:
            raise InvalidModel(
                "cannot save an Annoy index that is not built: call index.build(n_trees) before uploading"
            )
        metric = options.get("metric")
        if metric is not None and metric not in METRICS:
            raise ModelshelfError(f"metric must be one of {', '.join(METRICS)} (got {metric!r})")
        consistent = infer_metric(obj)
        if metric is not None and metric not in consistent:
            raise InvalidModel(
                f"this index's distances are not {metric} distances (they fit "
                f"{', '.join(consistent) or 'no Annoy metric'}): pass the metric the index was created with"
            )
        path = directory / INDEX_FILE
        # Annoy's save() also re-opens the index from the new file (memory-mapped): the caller's
        # index keeps working, read-only, as it was after build().
        obj.save(str(path))
        readable = [m for m in ([metric] if metric else consistent) if _reads_back(path, obj, f, m)]
        if metric is not None and not readable:
            raise InvalidModel(
                f"the saved index does not read back as a {metric} index: pass the metric the "
                "index was created with"
            )
        if metric is None:
            if len(readable) != 1:
                raise InvalidModel(
                    "Annoy does not tell an index's metric, and this index fits "
                    f"{', '.join(readable or consistent)}: upload with options={{'metric': ...}} "
                    "(CLI: --serializer-option metric=...) naming the metric it was created with"
                )
            (metric,) = readable
        return SavedModel(
            framework=self.framework,
            framework_version=_annoy_version(),
            signature={
                "inputs": [
                    {
                        "name": "vector",
                        "dtype": "uint64" if metric == "hamming" else "float32",
                        "shape": [f],
                    }
                ],
                "outputs": [
                    {"name": "neighbours", "dtype": "int64", "shape": [None], "metric": metric}
                ],
            },
            details={
                "file": INDEX_FILE,
                "class": qualified_name(type(obj)),
                "f": f,
                "metric": metric,
                "metric_from": "option" if options.get("metric") is not None else "distances",
                "n_items": int(obj.get_n_items()),
                "n_trees": n_trees,
                "size": path.stat().st_size,
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        check_options(self.name, "load", options, ("prefault",))
        f, metric = details.get("f"), details.get("metric")
        if not isinstance(f, int) or isinstance(f, bool) or f <= 0 or metric not in METRICS:
            raise InvalidModel(
                f"this version's details give no usable dimension and metric (f={f!r}, "
                f"metric={metric!r}): the manifest is damaged"
            )
        from annoy import AnnoyIndex

        # Versions saved here name INDEX_FILE; imported ones (modelstore's model.ann) name theirs.
        name = details.get("file", INDEX_FILE)
        path = model_file(directory, name)
        index = AnnoyIndex(f, metric)
        # Annoy checks only that the size is a multiple of a node: a cut file can still load, as
        # a smaller index. The counts saved with it catch that.
        expected = {k: details.get(k) for k in ("size", "n_items", "n_trees")}
        with reading(str(name), "annoy"):
            if expected["size"] is not None and path.stat().st_size != expected["size"]:
                raise ValueError(
                    f"the file holds {path.stat().st_size} bytes, not {expected['size']}"
                )
            index.load(str(path), prefault=bool(options.get("prefault", False)))
            found = {"n_items": int(index.get_n_items()), "n_trees": int(index.get_n_trees())}
            for key, value in found.items():
                if expected[key] is not None and value != expected[key]:
                    raise ValueError(f"the index holds {value} {key[2:]}, not {expected[key]}")
        return index
