"""The ``causalml-joblib`` serializer: CausalML learners with ``joblib.dump`` / ``joblib.load``.

A CausalML learner wraps other estimators (any scikit-learn, XGBoost or LightGBM model, or the
user's own) and, for uplift trees, CausalML's own tree structures. CausalML has no format other
than pickle (its own ``save`` is joblib with a metadata header), so this serializer is unsafe: core
loads such a version only with ``trust=True``, and ``load`` refuses again when called directly.

causalml and joblib are imported inside ``save``/``load`` only.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelshelf.errors import InvalidModel, UntrustedFormat
from modelshelf.serializers import (
    SavedModel,
    Serializer,
    check_options,
    is_json_exact,
    jsonable,
    model_file,
    qualified_name,
    reading,
)

#: Written into the version directory. Fixed, never read from the manifest.
MODEL_FILE = "learner.joblib"

CLAIMS = (
    # Every meta-learner (S, T, X, R, DR learners; regressors and classifiers).
    "causalml.inference.meta.base.BaseLearner",
    # causalml >= 0.16: the base of learners with save/load (uplift and causal trees and forests).
    "causalml.inference.serialization.SerializableLearner",
    # Uplift trees and forests, in the modules of current and older causalml releases.
    "causalml.inference.tree._uplift.uplifttree.UpliftTreeClassifier",
    "causalml.inference.tree._uplift.upliftforest.UpliftRandomForestClassifier",
    "causalml.inference.tree.uplift.UpliftTreeClassifier",
    "causalml.inference.tree.uplift.UpliftRandomForestClassifier",
)


def _causalml_version() -> str:
    try:
        return importlib.metadata.version("causalml")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - causalml is imported
        return "unknown"


def _params(obj: Any) -> tuple[dict[str, Any], list[str]]:
    """JSON-exact constructor parameters (shallow), and the names of the others (estimators...)."""
    get_params = getattr(obj, "get_params", None)
    if not callable(get_params):
        return {}, []
    try:
        params = get_params(deep=False)
    except Exception:  # a learner whose get_params fails: its parameters are simply not shown
        return {}, []
    kept = {k: v for k, v in params.items() if is_json_exact(v)}
    return kept, sorted(k for k in params if k not in kept)


def learner_signature(obj: Any) -> dict[str, Any]:
    inputs: dict[str, Any] = {"name": "X"}
    n_features = getattr(obj, "n_features_in_", None) or getattr(obj, "n_features_", None)
    if isinstance(n_features, int):
        inputs["shape"] = [None, n_features]
    output: dict[str, Any] = {"name": "cate", "kind": "uplift"}
    control = getattr(obj, "control_name", None)
    if control is not None:
        output["control_name"] = jsonable(control)
    groups = getattr(obj, "t_groups", None)
    if groups is None:
        groups = getattr(obj, "classes_", None)
    if groups is not None:
        output["treatment_groups"] = jsonable(list(groups))
    return {"inputs": [inputs] if len(inputs) > 1 else [], "outputs": [output]}


class CausalMLSerializer(Serializer):
    """CausalML meta-learners and uplift trees/forests as a joblib pickle; needs trust to load.

    ``load`` returns the learner that was saved. Save option ``compress`` (as ``joblib.dump``).
    """

    name = "causalml-joblib"
    framework = "causalml"
    format = "joblib"
    safe = False
    claims = CLAIMS
    unsafe_default_reason = (
        "a CausalML learner wraps arbitrary base estimators (scikit-learn, XGBoost, LightGBM or "
        "your own classes) and has no save format but pickle (its own save is joblib)"
    )

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ("compress",))
        import joblib

        mro = [qualified_name(c) for c in type(obj).__mro__]
        if not any(name.startswith("causalml.") for name in mro):
            raise InvalidModel(
                f"causalml-joblib stores CausalML learners, not {qualified_name(type(obj))}"
            )
        fitted = getattr(obj, "_is_fitted", None)
        details: dict[str, Any] = {"file": MODEL_FILE, "class": qualified_name(type(obj))}
        if callable(fitted):
            details["fitted"] = bool(fitted())
        params, others = _params(obj)
        details["params"] = params
        if others:
            # Estimators and other objects: stored in the pickle, named here for reviewers.
            details["object_params"] = {
                k: qualified_name(type(v))
                for k, v in obj.get_params(deep=False).items()
                if k in others
            }
        joblib.dump(obj, directory / MODEL_FILE, **options)
        details["joblib_version"] = str(joblib.__version__)
        return SavedModel(
            framework=self.framework,
            framework_version=_causalml_version(),
            signature=learner_signature(obj),
            details=details,
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        # Core refuses unsafe serializers without trust before downloading; this keeps the
        # serializer safe when it is called directly.
        if not trust:
            raise UntrustedFormat(
                "causalml-joblib versions are pickles and loading one can run arbitrary code: load "
                "with trust=True only if you trust where the learner comes from"
            )
        check_options(self.name, "load", options, ("mmap_mode",))
        import joblib

        # Versions saved here name MODEL_FILE; imported ones (modelstore's model.joblib, written by
        # joblib.dump too) name theirs. model_file vets whatever details say.
        name = details.get("file", MODEL_FILE)
        path = model_file(directory, name)
        with reading(str(name), "joblib"):
            return joblib.load(path, **options)
