"""The ``xgboost-ubj`` serializer: XGBoost's own UBJSON model format.

The file holds trees, objective, feature names/types and, for scikit-learn wrappers, the estimator
type; loading it parses data and never runs code, so the serializer is safe. XGBoost does not
store a wrapper's hyperparameters (``max_depth``, ``n_estimators``...) in the model file, so they
are kept in the manifest details (plain JSON values only) and given back to the wrapper's
constructor on load.

xgboost is imported inside :meth:`~XGBoostSerializer.save` and :meth:`~XGBoostSerializer.load`
only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelshelf.errors import ModelshelfError
from modelshelf.serializers import (
    SavedModel,
    Serializer,
    check_options,
    is_json_exact,
    jsonable,
    model_file,
    qualified_name,
    reading,
    tabular_signature,
)

#: Written into the version directory. Fixed, never read from the manifest.
MODEL_FILE = "model.ubj"
BOOSTER = "xgboost.core.Booster"

#: Wrapper classes ``load`` may rebuild, by qualified name -> attribute of ``xgboost.sklearn``.
#: A closed list: the manifest names a class, and importing whatever class a manifest names
#: would let a tampered manifest run code. Subclasses (yours, or xgboost's Dask wrappers) are
#: restored as the nearest class listed here, found at save time.
WRAPPERS: dict[str, str] = {
    "xgboost.sklearn.XGBClassifier": "XGBClassifier",
    "xgboost.sklearn.XGBRegressor": "XGBRegressor",
    "xgboost.sklearn.XGBRanker": "XGBRanker",
    "xgboost.sklearn.XGBRFClassifier": "XGBRFClassifier",
    "xgboost.sklearn.XGBRFRegressor": "XGBRFRegressor",
    "xgboost.sklearn.XGBModel": "XGBModel",
}

_KINDS = {
    "binary": "classifier",
    "multi": "classifier",
    "reg": "regressor",
    "count": "regressor",
    "survival": "regressor",
    "rank": "ranker",
}


def _restore_as(obj: Any) -> str:
    """The class ``load`` will rebuild: the nearest allowed wrapper in the MRO, or a Booster."""
    for cls in type(obj).__mro__:
        name = qualified_name(cls)
        if name in WRAPPERS or name == BOOSTER:
            return name
    return BOOSTER


def booster_signature(booster: Any, classes: Any = None) -> dict[str, Any]:
    """Inputs (feature count, names, types) and outputs (kind, objective, classes) of a booster."""
    config = json.loads(booster.save_config())
    learner = config.get("learner", {})
    objective = learner.get("objective", {}).get("name")
    params = learner.get("learner_model_param", {})
    inputs: dict[str, Any] = {"n_features": int(booster.num_features())}
    if booster.feature_names:
        inputs["feature_names"] = list(booster.feature_names)
    if booster.feature_types:
        inputs["feature_types"] = list(booster.feature_types)
    outputs: dict[str, Any] = {}
    if isinstance(objective, str):
        outputs["kind"] = _KINDS.get(objective.split(":")[0], "other")
        outputs["objective"] = objective
    n_classes = int(params.get("num_class", 0) or 0)
    if n_classes:
        outputs["n_classes"] = n_classes
    n_targets = int(params.get("num_target", 1) or 1)
    if n_targets > 1:
        outputs["n_targets"] = n_targets
    if classes is not None:
        outputs["classes"] = jsonable(classes)
    return tabular_signature(inputs, outputs)


class XGBoostSerializer(Serializer):
    """XGBoost Boosters and scikit-learn wrappers in the native UBJSON format.

    ``load`` returns the class that was saved for ``XGBClassifier``, ``XGBRegressor``,
    ``XGBRanker``, ``XGBRFClassifier``, ``XGBRFRegressor`` and ``XGBModel`` (with their
    JSON-compatible hyperparameters), the nearest of those for subclasses, and an
    ``xgboost.Booster`` for boosters. Load option ``as_booster=True`` returns the Booster always.
    """

    name = "xgboost-ubj"
    framework = "xgboost"
    format = "ubj"
    safe = True
    # XGBModel comes before sklearn's BaseEstimator in every wrapper's MRO, so this serializer's
    # claim is more specific than sklearn-skops' and wins when both plugins are installed.
    claims = ("xgboost.core.Booster", "xgboost.sklearn.XGBModel")

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        if options:
            raise ModelshelfError(
                f"{self.name} takes no save options (got {', '.join(sorted(options))})"
            )
        import xgboost

        restore_as = _restore_as(obj)
        details: dict[str, Any] = {
            "file": MODEL_FILE,
            "class": qualified_name(type(obj)),
            "restore_as": restore_as,
        }
        if isinstance(obj, xgboost.Booster):
            booster, classes = obj, None
        else:
            try:
                booster = obj.get_booster()
            except Exception as exc:  # sklearn's NotFittedError
                raise ModelshelfError(
                    f"cannot save an unfitted {type(obj).__name__}: fit it before uploading"
                ) from exc
            classes = getattr(obj, "classes_", None)
            params = obj.get_params(deep=False)
            # Callables (custom objectives, metrics, callbacks) and NaN cannot go in a manifest;
            # they are listed so the user knows to set them again.
            # None means "xgboost's default" for every wrapper parameter: not worth storing.
            details["params"] = {
                k: v for k, v in params.items() if v is not None and is_json_exact(v)
            }
            details["skipped_params"] = sorted(
                k
                for k, v in params.items()
                if not is_json_exact(v) and not _is_default_missing(k, v)
            )
        path = directory / MODEL_FILE
        # A wrapper's save_model also records its estimator type, which load_model checks.
        (booster if restore_as == BOOSTER else obj).save_model(path)
        details["num_boosted_rounds"] = int(booster.num_boosted_rounds())
        best = booster.attr("best_iteration")
        if best is not None:
            details["best_iteration"] = int(best)
        return SavedModel(
            framework=self.framework,
            framework_version=str(xgboost.__version__),
            signature=booster_signature(booster, classes),
            details=details,
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        check_options(self.name, "load", options, ("as_booster",))
        import xgboost
        import xgboost.sklearn

        path = model_file(directory, MODEL_FILE)
        restore_as = details.get("restore_as", BOOSTER)
        if options.get("as_booster") or restore_as == BOOSTER:
            booster = xgboost.Booster()
            with reading(MODEL_FILE, "xgboost"):
                booster.load_model(path)
            return booster
        if not isinstance(restore_as, str) or restore_as not in WRAPPERS:
            raise ModelshelfError(
                f"this version was saved as {restore_as!r}, which this modelshelf-xgboost cannot "
                "rebuild: upgrade modelshelf-xgboost, or load with as_booster=True"
            )
        cls = getattr(xgboost.sklearn, WRAPPERS[restore_as])
        # Plain JSON values only (see save): constructing the wrapper with them runs no stored code.
        params = details.get("params") or {}
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise ModelshelfError(
                "this version's details hold params that are not a mapping of names: the "
                "manifest is damaged; load with as_booster=True"
            )
        model = cls(**dict(params))
        with reading(MODEL_FILE, "xgboost"):
            model.load_model(path)
        return model


def _is_default_missing(name: str, value: Any) -> bool:
    # ``missing=nan`` is the default and what a fresh wrapper gets anyway: not worth reporting.
    return name == "missing" and isinstance(value, float) and math.isnan(value)
