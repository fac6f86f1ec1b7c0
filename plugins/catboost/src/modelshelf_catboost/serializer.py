"""The ``catboost-cbm`` serializer: CatBoost's own binary model format.

A cbm file holds the trees, training parameters, feature names, categorical feature indices and
class labels; loading it parses data and never runs code, so the serializer is safe. The file does
not say which Python class wrote it, so the class is kept in the manifest details and rebuilt
from a closed list on load.

catboost is imported inside :meth:`~CatBoostSerializer.save` and :meth:`~CatBoostSerializer.load`
only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelshelf.errors import ModelshelfError
from modelshelf.serializers import (
    SavedModel,
    Serializer,
    jsonable,
    model_file,
    qualified_name,
    reading,
    tabular_signature,
)

#: Written into the version directory. Fixed, never read from the manifest.
MODEL_FILE = "model.cbm"

#: Classes ``load`` may rebuild, by qualified name -> attribute of ``catboost``. A closed list, so a
#: tampered manifest cannot make ``load`` import an arbitrary class; subclasses are restored as the
#: nearest class listed here (found at save time).
CLASSES: dict[str, str] = {
    "catboost.core.CatBoostClassifier": "CatBoostClassifier",
    "catboost.core.CatBoostRegressor": "CatBoostRegressor",
    "catboost.core.CatBoostRanker": "CatBoostRanker",
    "catboost.core.CatBoost": "CatBoost",
}

_KIND_BY_CLASS = {
    "catboost.core.CatBoostClassifier": "classifier",
    "catboost.core.CatBoostRegressor": "regressor",
    "catboost.core.CatBoostRanker": "ranker",
}


_CLASSIFICATION_LOSSES = {
    "Logloss",
    "CrossEntropy",
    "MultiClass",
    "MultiClassOneVsAll",
    "MultiLogloss",
    "MultiCrossEntropy",
}
_RANKING_MARKERS = ("Rank", "Pair", "Query", "Yeti")


def _kind_from_loss(loss: str) -> str:
    name = loss.split(":")[0]  # "Quantile:alpha=0.9" -> "Quantile"
    if name in _CLASSIFICATION_LOSSES:
        return "classifier"
    if any(marker in name for marker in _RANKING_MARKERS):
        return "ranker"
    return "regressor"


def _restore_as(obj: Any) -> str:
    for cls in type(obj).__mro__:
        name = qualified_name(cls)
        if name in CLASSES:
            return name
    return "catboost.core.CatBoost"


def catboost_signature(model: Any, restore_as: str) -> dict[str, Any]:
    """Inputs (features, categorical/text/embedding features) and outputs (kind, loss, classes)."""
    names = list(model.feature_names_ or [])
    inputs: dict[str, Any] = {"n_features": len(names)}
    if names:
        inputs["feature_names"] = names
    for key, getter in (
        ("cat_features", "get_cat_feature_indices"),
        ("text_features", "get_text_feature_indices"),
        ("embedding_features", "get_embedding_feature_indices"),
    ):
        method = getattr(model, getter, None)
        indices = list(method()) if callable(method) else []
        if indices:
            inputs[key] = [names[i] if i < len(names) else int(i) for i in indices]
    outputs: dict[str, Any] = {}
    loss = model.get_all_params().get("loss_function")
    kind = _KIND_BY_CLASS.get(restore_as)
    if kind is None and isinstance(loss, str):
        # The generic CatBoost class: infer the kind from the loss, as CatBoost's wrappers do.
        kind = _kind_from_loss(loss)
    if kind:
        outputs["kind"] = kind
    if isinstance(loss, str):
        outputs["loss_function"] = loss
    classes = getattr(model, "classes_", None)
    if classes is not None and len(classes):
        outputs["classes"] = jsonable(classes)
    return tabular_signature(inputs, outputs)


class CatBoostSerializer(Serializer):
    """CatBoost models in the native cbm format.

    ``load`` returns the class that was saved for ``CatBoostClassifier``, ``CatBoostRegressor``,
    ``CatBoostRanker`` and ``CatBoost`` (subclasses come back as the nearest of these), with its
    training parameters, feature names, categorical features and class labels.
    """

    name = "catboost-cbm"
    framework = "catboost"
    format = "cbm"
    safe = True
    claims = ("catboost.core.CatBoost",)

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        if options:
            raise ModelshelfError(
                f"{self.name} takes no save options (got {', '.join(sorted(options))})"
            )
        import catboost

        if not obj.is_fitted():
            raise ModelshelfError(
                f"cannot save an unfitted {type(obj).__name__}: fit it before uploading"
            )
        restore_as = _restore_as(obj)
        obj.save_model(str(directory / MODEL_FILE), format="cbm")
        details: dict[str, Any] = {
            "file": MODEL_FILE,
            "class": qualified_name(type(obj)),
            "restore_as": restore_as,
            "tree_count": int(obj.tree_count_),
        }
        best = obj.get_best_iteration()
        if best is not None:
            details["best_iteration"] = int(best)
        return SavedModel(
            framework=self.framework,
            framework_version=str(catboost.__version__),
            signature=catboost_signature(obj, restore_as),
            details=details,
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        if options:
            raise ModelshelfError(
                f"{self.name} takes no load options (got {', '.join(sorted(options))})"
            )
        import catboost

        path = model_file(directory, MODEL_FILE)
        restore_as = details.get("restore_as", "catboost.core.CatBoost")
        if not isinstance(restore_as, str) or restore_as not in CLASSES:
            raise ModelshelfError(
                f"this version was saved as {restore_as!r}, which this modelshelf-catboost cannot "
                "rebuild: upgrade modelshelf-catboost"
            )
        model = getattr(catboost, CLASSES[restore_as])()
        with reading(MODEL_FILE, "catboost"):
            model.load_model(str(path), format="cbm")
        return model
