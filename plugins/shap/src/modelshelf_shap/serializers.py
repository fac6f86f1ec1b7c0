"""SHAP serializers: ``shap-tree`` (safe when its model's format is) and ``shap-pickle`` (needs trust).

A ``TreeExplainer`` is fully determined by the tree model it explains and a few settings
(``model_output``, ``feature_perturbation``, ``feature_names``, the background ``data``), and
shap's own ``save`` cannot store one. ``shap-tree`` therefore stores the *model* with the
serializer modelshelf picks for it (``xgboost-ubj``, ``lightgbm-...``, ``sklearn-skops``...) in the
sub-directory ``model/``, the settings in ``explainer.json`` and the background data in
``data.npy`` (read with ``allow_pickle=False``), and ``load`` builds a new ``TreeExplainer`` over
the loaded model: its SHAP values and expected value are identical.

The model serializer's name is read from ``explainer.json`` (a verified version file) and looked
up among the *installed* serializers: its safety is the installed serializer's, never a claim of
the file. ``shap-tree`` refuses to save over an unsafe model serializer, and refuses to load one
without trust.

``shap-pickle`` is ``Explainer.save`` / ``Explainer.load`` (pickle for the model and masker).

shap is imported inside ``save``/``load`` only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelshelf.errors import InvalidModel, ModelshelfError, NoSerializer, UntrustedFormat
from modelshelf.serializers import (
    SavedModel,
    Serializer,
    check_options,
    model_file,
    qualified_name,
    reading,
)

#: Fixed names, never read from the manifest.
EXPLAINER_FILE = "explainer.json"
DATA_FILE = "data.npy"
MODEL_DIR = "model"
PICKLE_FILE = "explainer.shap"

TREE_EXPLAINER = "shap.explainers._tree.TreeExplainer"
_MODEL_OUTPUTS = ("raw", "probability", "log_loss", "predict", "predict_proba")
_PERTURBATIONS = ("interventional", "tree_path_dependent", "auto")


def _shap_version() -> str:
    import shap

    return str(shap.__version__)


def _names(value: Any) -> list[str] | None:
    if value is None:
        return None
    names = [str(v) for v in list(value)]
    return names or None


def _explainer_signature(
    explainer: Any, n_features: int | None, feature_names: list[str] | None
) -> dict[str, Any]:
    matrix: dict[str, Any] = {"name": "X"}
    if n_features is not None:
        matrix["shape"] = [None, n_features]
    if feature_names:
        matrix["feature_names"] = feature_names
    return {
        "inputs": [matrix] if len(matrix) > 1 else [],
        "outputs": [
            {
                "name": "shap_values",
                "dtype": "float64",
                "kind": "explanation",
                "model_output": str(getattr(explainer, "model_output", "")),
            }
        ],
    }


def _serializer_entry(name: str) -> Any:
    from modelshelf.plugins import get_registry

    entry = get_registry().serializers().get(name)
    if entry is None:
        raise NoSerializer(
            f"this explainer's model was stored by serializer {name!r}, which is not installed: "
            "install the modelshelf plugin that provides it"
        )
    return entry


class TreeExplainerSerializer(Serializer):
    """``shap.TreeExplainer``: settings + background data, over the model stored by its own plugin.

    The model is ``explainer.model.original_model`` when shap keeps it (XGBoost, LightGBM,
    CatBoost), otherwise the save option ``model`` (the object the explainer was built on, e.g. a
    scikit-learn forest). Save option ``model_serializer`` picks the model's serializer by name
    (default: the one modelshelf chooses for it). ``load`` returns a new ``TreeExplainer``; its
    model (``details.model.returns``) is what the model's serializer loads. Load options are passed
    to the model's serializer.
    """

    name = "shap-tree"
    framework = "shap"
    format = "tree-explainer"
    safe = True
    claims = (TREE_EXPLAINER,)

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ("model", "model_serializer"))
        import numpy as np
        import shap
        from modelshelf.plugins import get_registry
        from modelshelf.serializers import choose

        if TREE_EXPLAINER not in [qualified_name(c) for c in type(obj).__mro__]:
            raise InvalidModel(
                f"{self.name} stores shap TreeExplainers, not {qualified_name(type(obj))}"
            )
        model = options.get("model")
        if model is None:
            model = getattr(obj.model, "original_model", None)
        if model is None:
            raise InvalidModel(
                "shap does not keep the model of this TreeExplainer: upload with "
                "options={'model': <the model the explainer was built on>}"
            )
        entries = get_registry().serializers()
        wanted = options.get("model_serializer")
        if wanted is not None:
            inner = _serializer_entry(str(wanted)).serializer
        else:
            try:
                inner = choose(model, (e.serializer for e in entries.values()))
            except ModelshelfError as exc:
                raise InvalidModel(f"cannot store this explainer's model: {exc}") from exc
        if not inner.safe:
            raise InvalidModel(
                f"this explainer's model would be stored with {inner.name}, which needs trust to "
                f"load: upload with serializer='shap-pickle' if you mean to store it as a pickle"
            )
        if inner.files(model) is not None:
            raise InvalidModel(f"{inner.name} stores files, not a model a TreeExplainer can wrap")
        settings: dict[str, Any] = {
            "model_output": str(obj.model_output),
            "feature_perturbation": str(obj.feature_perturbation),
            "feature_names": _names(
                getattr(obj, "data_feature_names", None) or getattr(obj, "feature_names", None)
            ),
        }
        data = getattr(obj, "data", None)
        if data is not None:
            array = np.asarray(data)
            if array.dtype.kind not in "biuf":
                raise InvalidModel(
                    f"the background data is {array.dtype}, not numbers: upload with serializer='shap-pickle'"
                )
            np.save(directory / DATA_FILE, array, allow_pickle=False)
        # A different model (the wrong `model` option) would explain something else: checked now.
        rebuilt = shap.TreeExplainer(
            model,
            data=data,
            model_output=settings["model_output"],
            feature_perturbation=settings["feature_perturbation"],
        )
        if not np.array_equal(np.asarray(rebuilt.expected_value), np.asarray(obj.expected_value)):
            raise InvalidModel(
                "the model given does not give this explainer's expected value: pass the model it was built on"
            )
        (directory / MODEL_DIR).mkdir()
        inner_saved = inner.save(model, directory / MODEL_DIR)
        record = {
            **settings,
            "has_data": data is not None,
            "model": {
                "serializer": inner.name,
                "class": qualified_name(type(model)),
                "framework": inner_saved.framework,
                "framework_version": inner_saved.framework_version,
                "details": dict(inner_saved.details),
            },
        }
        (directory / EXPLAINER_FILE).write_text(
            json.dumps(record, indent=1, sort_keys=True, default=str), encoding="utf-8"
        )
        n_features = None
        signature = inner_saved.signature
        if signature and signature.get("inputs"):
            shape = signature["inputs"][0].get("shape")
            if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int):
                n_features = shape[1]
        return SavedModel(
            framework=self.framework,
            framework_version=_shap_version(),
            signature=_explainer_signature(obj, n_features, settings["feature_names"]),
            details={
                "class": qualified_name(type(obj)),
                **{k: v for k, v in settings.items() if v is not None},
                "model": {k: v for k, v in record["model"].items() if k != "details"},
                "background_rows": int(np.asarray(data).shape[0]) if data is not None else 0,
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        import numpy as np

        path = model_file(directory, EXPLAINER_FILE)
        with reading(EXPLAINER_FILE, "shap-tree"):
            record = json.loads(path.read_text(encoding="utf-8"))
            inner_record = record["model"]
            if not isinstance(inner_record, dict) or not isinstance(
                inner_record.get("serializer"), str
            ):
                raise ValueError("no model serializer named")
            if (
                record["model_output"] not in _MODEL_OUTPUTS
                or record["feature_perturbation"] not in _PERTURBATIONS
            ):
                raise ValueError("unknown model_output or feature_perturbation")
            names = record.get("feature_names")
            if names is not None and not (
                isinstance(names, list) and all(isinstance(n, str) for n in names)
            ):
                raise ValueError("feature_names is not a list of names")
            inner_details = inner_record.get("details") or {}
            if not isinstance(inner_details, dict):
                raise ValueError("the model's details are not a mapping")
        entry = _serializer_entry(inner_record["serializer"])
        inner = entry.serializer
        if not inner.safe and not trust:
            raise UntrustedFormat(
                f"this explainer's model is stored with {inner.name}, and loading it can run code: "
                "load with trust=True only if you trust whoever uploaded it"
            )
        data = None
        if record.get("has_data"):
            data_path = model_file(directory, DATA_FILE)
            with reading(DATA_FILE, "numpy"):
                data = np.load(data_path, allow_pickle=False)
        model = inner.load(
            model_file(directory, MODEL_DIR, kind="directory"),
            details=inner_details,
            trust=trust,
            **options,
        )
        import shap

        with reading(EXPLAINER_FILE, "shap"):
            return shap.TreeExplainer(
                model,
                data=data,
                model_output=record["model_output"],
                feature_perturbation=record["feature_perturbation"],
                feature_names=names,
            )


class ShapPickleSerializer(Serializer):
    """Any shap explainer through ``Explainer.save`` / ``Explainer.load`` (pickle): needs trust.

    ``load`` returns the explainer class that was saved (Exact, Permutation, Partition, Kernel,
    Linear...). shap's save cannot store a ``TreeExplainer``: those go to ``shap-tree``.
    """

    name = "shap-pickle"
    framework = "shap"
    format = "shap-save"
    safe = False
    claims = ("shap.explainers._explainer.Explainer",)
    unsafe_default_reason = (
        "a model-agnostic explainer wraps a Python callable (a predict function or method) and a "
        "masker, which only shap's pickle-based save stores; TreeExplainers go to the safe shap-tree"
    )

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ())
        if not callable(getattr(obj, "save", None)):
            raise InvalidModel(
                f"{self.name} stores shap explainers, not {qualified_name(type(obj))}"
            )
        if TREE_EXPLAINER in [qualified_name(c) for c in type(obj).__mro__]:
            # shap writes one without complaint, then cannot read it back ("Unsupported encoder
            # type found: None", shap 0.51).
            raise InvalidModel(
                "shap's save writes a TreeExplainer it cannot load back: upload it with "
                "serializer='shap-tree' (the default)"
            )
        try:
            with (directory / PICKLE_FILE).open("wb") as out:
                obj.save(out)
        except Exception as exc:
            raise InvalidModel(
                f"shap cannot save this {type(obj).__name__}: {type(exc).__name__}: {_first_line(exc)}"
            ) from exc
        masker = getattr(obj, "masker", None)
        details: dict[str, Any] = {"file": PICKLE_FILE, "class": qualified_name(type(obj))}
        if masker is not None:
            details["masker"] = qualified_name(type(masker))
        names = _names(getattr(obj, "feature_names", None))
        return SavedModel(
            framework=self.framework,
            framework_version=_shap_version(),
            signature=_explainer_signature(obj, len(names) if names else None, names),
            details=details,
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        # Core refuses unsafe serializers without trust before downloading; this keeps the
        # serializer safe when it is called directly.
        if not trust:
            raise UntrustedFormat(
                f"{self.name} versions are pickles and loading one can run arbitrary code: load "
                "with trust=True only if you trust where the explainer comes from"
            )
        check_options(self.name, "load", options, ())
        import contextlib
        import io

        import shap

        path = model_file(directory, PICKLE_FILE)
        # shap's loader prints a line per object it reads: keep the caller's output clean.
        with (
            reading(PICKLE_FILE, "shap"),
            path.open("rb") as stream,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            return shap.Explainer.load(stream)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
