"""The ``lightgbm-text`` serializer: LightGBM's own text model format.

``load`` always returns a ``lightgbm.Booster``, also for models saved from the scikit-learn
wrappers (``LGBMClassifier``, ``LGBMRegressor``, ``LGBMRanker``): the text file holds the trees,
objective, feature names and pandas categories, but not the wrapper's label encoder and state,
and LightGBM has no public way to wrap a Booster back into an estimator. Rebuilding one by setting
the wrapper's private attributes would break silently on a LightGBM upgrade, so this serializer
does not pretend: the wrapper's class, hyperparameters and ``classes_`` are kept in the manifest
(details and signature) for whoever needs them.

lightgbm is imported inside :meth:`~LightGBMSerializer.save` and :meth:`~LightGBMSerializer.load`
only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelshelf.errors import InvalidModel, ModelshelfError
from modelshelf.serializers import (
    SavedModel,
    Serializer,
    is_json_exact,
    jsonable,
    model_file,
    qualified_name,
    reading,
    tabular_signature,
)

#: Written into the version directory. Fixed, never read from the manifest.
MODEL_FILE = "model.txt"

_KINDS = {
    "binary": "classifier",
    "multiclass": "classifier",
    "multiclassova": "classifier",
    "cross_entropy": "probability",
    "cross_entropy_lambda": "probability",
    "lambdarank": "ranker",
    "rank_xendcg": "ranker",
}


def read_header(path: Path) -> dict[str, str]:
    """The ``key=value`` lines before the first tree of a LightGBM text model file."""
    header: dict[str, str] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if line.startswith("Tree="):
                break
            key, sep, value = line.partition("=")
            if sep:
                header[key] = value
    return header


def check_tree_layout(path: Path) -> None:
    """Refuse a model file whose trees do not sit where its ``tree_sizes`` header says.

    LightGBM parses the trees in parallel at the offsets ``tree_sizes`` gives, and a parse error
    inside that parallel loop can abort the whole process (``terminate called``) instead of raising:
    a truncated or altered file must be caught here, before LightGBM reads it.
    """
    data = path.read_bytes()
    first = data.find(b"\nTree=")
    header = data[: first if first >= 0 else len(data)].decode("utf-8", "replace")
    sizes_line = next(
        (line for line in header.splitlines() if line.startswith("tree_sizes=")), None
    )
    problem = None
    if first < 0 or sizes_line is None:
        # Only models without trees lack both; they still need LightGBM's end marker.
        if b"\nend of trees" not in data:
            problem = "no 'end of trees' line"
    else:
        try:
            sizes = [int(size) for size in sizes_line.partition("=")[2].split()]
        except ValueError:
            sizes = []
            problem = f"a malformed header line {sizes_line[:60]!r}"
        position = first + 1
        for index, size in enumerate(sizes):
            if size <= 0 or not data.startswith(f"Tree={index}\n".encode(), position):
                problem = f"tree {index} is not where tree_sizes says"
                break
            position += size
        else:
            if problem is None and not data.startswith(b"end of trees", position):
                problem = "the trees do not end where tree_sizes says"
    if problem is None:
        problem = _parameters_problem(data)
    if problem is not None:
        raise InvalidModel(
            f"could not read {path.name!r} of this version with lightgbm: {problem} (the file is "
            "truncated or altered); the stored file is damaged or was not written by this "
            "serializer"
        )


def _parameters_problem(data: bytes) -> str | None:
    """What is wrong with the ``parameters:`` section, which LightGBM parses without bounds
    checks (a cut or altered section crashes the process with a segmentation fault)."""
    start = data.find(b"\nparameters:\n")
    if start < 0:
        return None  # the section is optional
    end = data.find(b"\nend of parameters", start)
    if end < 0:
        return "no 'end of parameters' line"
    for line in data[start + len(b"\nparameters:\n") : end].splitlines():
        if line and not (line.startswith(b"[") and line.endswith(b"]") and b": " in line):
            return f"a malformed parameter line {line[:60]!r}"
    return None


def text_signature(header: Mapping[str, str], classes: Any = None) -> dict[str, Any]:
    """Inputs (feature count and names) and outputs (kind, objective, classes) from the header."""
    inputs: dict[str, Any] = {}
    if "max_feature_idx" in header:
        inputs["n_features"] = int(header["max_feature_idx"]) + 1
    if header.get("feature_names"):
        inputs["feature_names"] = header["feature_names"].split(" ")
    outputs: dict[str, Any] = {}
    objective = header.get("objective", "").split(" ")[0]
    if objective:
        outputs["kind"] = _KINDS.get(objective, "regressor")
        outputs["objective"] = objective
    n_classes = int(header.get("num_class", "1") or 1)
    if n_classes > 1:
        outputs["n_classes"] = n_classes
    if classes is not None:
        outputs["classes"] = jsonable(classes)
    return tabular_signature(inputs, outputs)


class LightGBMSerializer(Serializer):
    """LightGBM Boosters and scikit-learn wrappers in the native text format.

    ``load`` returns a ``lightgbm.Booster`` in every case (see the module docstring). A model
    trained with early stopping is saved up to its best iteration, which is what the original's
    ``predict`` uses by default, so the loaded Booster predicts the same values.
    """

    name = "lightgbm-text"
    framework = "lightgbm"
    format = "text"
    safe = True
    # LGBMModel comes before sklearn's BaseEstimator in every wrapper's MRO, so this claim beats
    # sklearn-skops' when both plugins are installed.
    claims = ("lightgbm.basic.Booster", "lightgbm.sklearn.LGBMModel")

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        if options:
            raise ModelshelfError(
                f"{self.name} takes no save options (got {', '.join(sorted(options))})"
            )
        import lightgbm

        details: dict[str, Any] = {"file": MODEL_FILE, "class": qualified_name(type(obj))}
        classes = None
        if isinstance(obj, lightgbm.Booster):
            booster = obj
        else:
            try:
                booster = obj.booster_
            except Exception as exc:  # LGBMNotFittedError
                raise ModelshelfError(
                    f"cannot save an unfitted {type(obj).__name__}: fit it before uploading"
                ) from exc
            classes = getattr(obj, "classes_", None)
            params = obj.get_params(deep=False)
            details["params"] = {k: v for k, v in params.items() if is_json_exact(v)}
            details["skipped_params"] = sorted(k for k, v in params.items() if not is_json_exact(v))
        if booster.best_iteration and booster.best_iteration > 0:
            details["best_iteration"] = int(booster.best_iteration)
        path = directory / MODEL_FILE
        # num_iteration=None saves up to the best iteration when early stopping found one (the
        # iterations predict() uses by default); the file does not record best_iteration itself.
        booster.save_model(path)
        details["num_trees"] = int(booster.num_trees())
        signature = text_signature(read_header(path), classes)
        if "kind" not in signature["outputs"][0]:
            # A callable objective leaves no objective line in the file; the wrapper still knows.
            for cls, kind in (
                (lightgbm.LGBMClassifier, "classifier"),
                (lightgbm.LGBMRegressor, "regressor"),
                (lightgbm.LGBMRanker, "ranker"),
            ):
                if isinstance(obj, cls):
                    signature["outputs"][0]["kind"] = kind
        return SavedModel(
            framework=self.framework,
            framework_version=str(lightgbm.__version__),
            signature=signature,
            details=details,
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        if options:
            raise ModelshelfError(
                f"{self.name} takes no load options (got {', '.join(sorted(options))})"
            )
        import lightgbm

        path = model_file(directory, MODEL_FILE)
        check_tree_layout(path)
        with reading(MODEL_FILE, "lightgbm"):
            return lightgbm.Booster(model_file=str(path))
