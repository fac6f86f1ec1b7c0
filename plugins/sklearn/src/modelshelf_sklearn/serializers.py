"""scikit-learn serializers: ``sklearn-skops`` (safe, the default) and ``sklearn-joblib`` (opt-in).

Nothing here imports scikit-learn, skops or joblib at module import time: claims are qualified class
names, and the frameworks are imported inside :meth:`save` and :meth:`load`, so that ``import
modelshelf_sklearn`` and listing serializers stay free.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelshelf.errors import ModelshelfError, UntrustedFormat
from modelshelf.serializers import (
    SavedModel,
    Serializer,
    check_options,
    jsonable,
    model_file,
    qualified_name,
    reading,
    tabular_signature,
)

#: File names written into the version directory. Fixed (never read from the manifest), so that a
#: tampered manifest cannot point ``load`` at another path.
SKOPS_FILE = "model.skops"
JOBLIB_FILE = "model.joblib"


def _output_kind(obj: Any) -> str:
    """What the estimator's main output is, in scikit-learn's own vocabulary."""
    from sklearn import base

    for kind, test in (
        ("classifier", base.is_classifier),
        ("regressor", base.is_regressor),
        ("clusterer", getattr(base, "is_clusterer", None)),
        ("outlier_detector", getattr(base, "is_outlier_detector", None)),
    ):
        if test is not None and test(obj):
            return kind
    if hasattr(obj, "transform"):
        return "transformer"
    return "estimator"


def _is_fitted(obj: Any) -> bool:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(obj)
    except NotFittedError:
        return False
    except Exception:  # estimators that do not follow the convention: assume usable
        return True
    return True


def sklearn_signature(obj: Any) -> dict[str, Any] | None:
    """Inputs and outputs a fitted scikit-learn estimator knows about itself.

    ``{"inputs": [{"name": "X", "shape": [None, 4], "feature_names": [...]}], "outputs": [{"name":
    "y", "kind": "classifier", "classes": [...]}]}``; keys the estimator does not know are left
    out. ``None`` for objects that are not scikit-learn estimators (the joblib serializer stores
    anything).
    """
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - sklearn is a dependency
        return None
    if not isinstance(obj, BaseEstimator):
        return None
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] = {"kind": _output_kind(obj)}
    # getattr with a default: on a Pipeline these are properties that raise AttributeError when the
    # last step lacks them, and on unfitted estimators they do not exist.
    n_features = getattr(obj, "n_features_in_", None)
    if n_features is not None:
        inputs["n_features"] = int(n_features)
    feature_names = getattr(obj, "feature_names_in_", None)
    if feature_names is not None:
        inputs["feature_names"] = jsonable(feature_names)
    classes = getattr(obj, "classes_", None)
    if classes is not None:
        outputs["classes"] = jsonable(classes)
    n_outputs = getattr(obj, "n_outputs_", None)
    if isinstance(n_outputs, int):
        outputs["n_outputs"] = n_outputs
    return tabular_signature(inputs, outputs)


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


class SkopsSerializer(Serializer):
    """scikit-learn estimators and pipelines in the skops format (no pickle).

    Save options: ``compression`` (a :mod:`zipfile` constant, default stored) and
    ``compresslevel``, passed to :func:`skops.io.dump`.

    Load: types skops does not trust by default (custom classes, some scikit-learn internals such
    as ``sklearn.tree._tree.Tree``) are refused with :class:`~modelshelf.errors.UntrustedFormat`
    naming them, unless ``trust=True`` (trusts exactly the types found in the file) or the load
    option ``trusted_types=[...]`` lists every one of them.
    """

    name = "sklearn-skops"
    framework = "sklearn"
    format = "skops"
    safe = True
    claims = ("sklearn.base.BaseEstimator",)

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ("compression", "compresslevel"))
        import skops
        import skops.io as sio

        path = directory / SKOPS_FILE
        try:
            sio.dump(obj, path, **options)
        except Exception as exc:
            raise ModelshelfError(
                f"skops cannot save {qualified_name(type(obj))}: {_first_line(exc)}; "
                "upload it with serializer='sklearn-joblib' (loading will then need trust=True)"
            ) from exc
        # Recorded so that anyone can review, before loading, what they would have to trust.
        untrusted = sorted(sio.get_untrusted_types(file=path))
        return SavedModel(
            framework=self.framework,
            framework_version=_sklearn_version(),
            signature=sklearn_signature(obj),
            details={
                "file": SKOPS_FILE,
                "class": qualified_name(type(obj)),
                "fitted": _is_fitted(obj),
                "skops_version": str(skops.__version__),
                "untrusted_types": untrusted,
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        check_options(self.name, "load", options, ("trusted_types",))
        import skops.io as sio

        path = model_file(directory, SKOPS_FILE)
        # Ask the file itself, not the manifest: whoever could rewrite the file could rewrite the
        # manifest too, so the manifest's list is for people to read, not for deciding.
        with reading(SKOPS_FILE, "skops"):
            found = sorted(sio.get_untrusted_types(file=path))
        trusted = set(_as_type_names(options.get("trusted_types", ())))
        refused = [t for t in found if t not in trusted]
        if refused and not trust:
            raise UntrustedFormat(
                f"this skops file holds types skops does not trust: {', '.join(refused)}; review "
                "them and, if you trust where the model comes from, load with trust=True "
                "(or trusted_types=[...] naming them)"
            )
        # Trust exactly the types found in the file, never more.
        with reading(SKOPS_FILE, "skops"):
            return sio.load(path, trusted=found)


def _as_type_names(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    names: list[str] = []
    for item in value:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, type):
            names.append(qualified_name(item))
        else:
            raise ModelshelfError(
                f"trusted_types takes qualified type names (str) or types, not {type(item).__name__}"
            )
    return names


class JoblibSerializer(Serializer):
    """Any picklable object with joblib. Opt-in only: loading runs pickle, so it needs trust.

    Select it with ``shelf.upload(name, obj, serializer="sklearn-joblib")``. Save option:
    ``compress`` (passed to :func:`joblib.dump`).
    """

    name = "sklearn-joblib"
    framework = "sklearn"
    format = "joblib"
    safe = False
    claims = ()

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ("compress",))
        import joblib

        joblib.dump(obj, directory / JOBLIB_FILE, **options)
        return SavedModel(
            framework=self.framework,
            framework_version=_sklearn_version(),
            signature=sklearn_signature(obj),
            details={
                "file": JOBLIB_FILE,
                "class": qualified_name(type(obj)),
                "joblib_version": str(joblib.__version__),
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        # Core already refuses unsafe serializers without trust before downloading; this second
        # check keeps the serializer safe when it is called directly.
        if not trust:
            raise UntrustedFormat(
                f"{self.name} versions are pickles and loading one can run arbitrary code: load "
                "with trust=True only if you trust where the model comes from"
            )
        check_options(self.name, "load", options, ("mmap_mode",))
        import joblib

        path = model_file(directory, JOBLIB_FILE)
        with reading(JOBLIB_FILE, "joblib"):
            return joblib.load(path, **options)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
