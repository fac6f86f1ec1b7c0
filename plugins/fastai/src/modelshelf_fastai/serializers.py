"""fastai serializers. Neither fastai nor torch is imported at module level.

* ``fastai-safetensors`` (default for every ``fastai.learner.Learner``, safe): ``learn.model``'s
  weights through modelshelf-torch's ``torch-safetensors``. Loading fills a learner the *caller*
  built; for tabular learners the preprocessing the weights were trained with (category vocabularies,
  normalisation statistics, fill values) is recorded and checked against that learner's, since a
  learner built from other data would silently predict differently.
* ``fastai-export`` (opt-in, needs trust): ``learn.export()``, a pickle of the whole learner
  (``load_learner``), which runs code when loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelshelf.errors import InvalidModel, ModelshelfError, UntrustedFormat
from modelshelf.serializers import (
    SavedModel,
    Serializer,
    check_options,
    jsonable,
    model_file,
    qualified_name,
    reading,
)

EXPORT_FILE = "export.pkl"
LEARNER_CLASS = "fastai.learner.Learner"


class FastaiSafetensorsSerializer(Serializer):
    """A ``Learner``'s model weights as safetensors. Safe; the default for every Learner.

    ``load`` option ``learner``: a Learner built like the saved one (same architecture; for tabular
    learners, DataLoaders from the same training data); its model is filled and it is returned.
    ``strict`` (default ``True``), ``check_preprocessing`` (default ``True``: a tabular learner's
    vocabularies and normalisation must equal the saved ones). Without ``learner``, ``load``
    refuses, naming the saved classes.
    """

    name = "fastai-safetensors"
    framework = "fastai"
    format = "safetensors"
    safe = True
    claims = (LEARNER_CLASS,)

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ())
        fastai = _import_fastai()
        if not isinstance(obj, fastai.learner.Learner):
            raise InvalidModel(
                f"fastai-safetensors saves fastai Learners, not {type(obj).__qualname__}"
            )
        weights = _torch_weights().save(obj.model, directory)
        tabular = _tabular_facts(obj)
        return SavedModel(
            framework="fastai",
            framework_version=fastai.__version__,
            signature=_signature(tabular),
            details={
                **weights.details,
                "learner_class": qualified_name(type(obj)),
                "loss_func": _name_of(obj.loss_func),
                "opt_func": _name_of(obj.opt_func),
                "metrics": [_name_of(m) for m in obj.metrics],
                "epochs": _epochs(obj),
                "tabular": tabular,
                "torch_version": weights.framework_version,
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        check_options(self.name, "load", options, ("learner", "strict", "check_preprocessing"))
        fastai = _import_fastai()
        learner = options.get("learner")
        if learner is None:
            raise ModelshelfError(
                f"pass learner= a {details.get('learner_class', 'fastai Learner')} built with model "
                f"{details.get('module_class', '?')} to load these weights into; the version stores "
                "weights, not code"
            )
        if not isinstance(learner, fastai.learner.Learner):
            raise ModelshelfError(
                f"learner= must be a fastai Learner, not {type(learner).__qualname__}"
            )
        stored = details.get("tabular")
        if options.get("check_preprocessing", True) and isinstance(stored, Mapping):
            _check_preprocessing(stored, _tabular_facts(learner))
        device = _device_of(learner.model)
        _torch_weights().load(
            directory,
            details=details,
            module=learner.model,
            strict=options.get("strict", True),
            device=device,
        )
        return learner


class FastaiExportSerializer(Serializer):
    """``learn.export()`` (a pickle of the learner without data), back through ``load_learner``.
    Opt-in, needs trust. ``load`` option ``cpu`` (default ``True``)."""

    name = "fastai-export"
    framework = "fastai"
    format = "pickle"
    safe = False
    claims = ()

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ())
        fastai = _import_fastai()
        if not isinstance(obj, fastai.learner.Learner):
            raise InvalidModel(f"fastai-export saves fastai Learners, not {type(obj).__qualname__}")
        obj.export(Path(directory).resolve() / EXPORT_FILE)
        tabular = _tabular_facts(obj)
        return SavedModel(
            framework="fastai",
            framework_version=fastai.__version__,
            signature=_signature(tabular),
            details={
                "file": EXPORT_FILE,
                "learner_class": qualified_name(type(obj)),
                "module_class": qualified_name(type(obj.model)),
                "tabular": tabular,
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        if not trust:
            raise UntrustedFormat(
                "loading a fastai-export version runs pickle (load_learner), which can execute code "
                "stored in it: pass trust=True only if you trust whoever uploaded it"
            )
        check_options(self.name, "load", options, ("cpu",))
        import warnings

        from fastai.learner import load_learner

        relative = details.get("file", EXPORT_FILE)
        path = model_file(directory, relative)
        with reading(str(relative), "fastai"), warnings.catch_warnings():
            # load_learner warns that it uses pickle: trust=True said that is known.
            warnings.simplefilter("ignore", UserWarning)
            learner = load_learner(path, cpu=bool(options.get("cpu", True)))
        if learner is None:  # load_learner swallows some ImportErrors and returns nothing
            raise ModelshelfError(
                f"fastai could not load {relative!r}: a module it needs is missing in this process"
            )
        return learner


# --- tabular preprocessing -----------------------------------------------------------------------


def _tabular_facts(learner: Any) -> dict[str, Any] | None:
    """Columns, target vocabulary and preprocessing state of a tabular learner, as JSON."""
    dls = getattr(learner, "dls", None)
    cat_names = getattr(dls, "cat_names", None)
    cont_names = getattr(dls, "cont_names", None)
    if cat_names is None or cont_names is None:
        return None
    procs: dict[str, Any] = {}
    for proc in getattr(dls, "procs", None) or []:
        kind = type(proc).__name__
        if kind == "Categorify":
            procs[kind] = {"classes": {k: jsonable(list(v)) for k, v in proc.classes.items()}}
        elif kind == "Normalize":
            procs[kind] = {"means": jsonable(dict(proc.means)), "stds": jsonable(dict(proc.stds))}
        elif kind == "FillMissing":
            procs[kind] = {
                "na_dict": jsonable(dict(proc.na_dict)),
                "fill_strategy": str(proc.fill_strategy),
            }
        else:
            procs[kind] = {}
    vocab = getattr(dls, "vocab", None)
    return {
        "cat_names": [str(c) for c in cat_names],
        "cont_names": [str(c) for c in cont_names],
        "y_names": [str(c) for c in getattr(dls, "y_names", None) or []],
        "classes": jsonable(list(vocab)) if vocab is not None else None,
        "procs": procs,
    }


def _check_preprocessing(stored: Mapping[str, Any], current: Mapping[str, Any] | None) -> None:
    if current is None:
        raise ModelshelfError(
            "this version is a tabular learner's weights, and the learner passed is not tabular: "
            "build it with TabularDataLoaders"
        )
    for key in ("cat_names", "cont_names", "classes"):
        if stored.get(key) != current.get(key):
            raise ModelshelfError(
                f"the learner passed has other {key} ({_short(current.get(key))}) than the saved one "
                f"({_short(stored.get(key))}): build its DataLoaders like the saved one's, or pass "
                "check_preprocessing=False"
            )
    stored_procs, current_procs = stored.get("procs") or {}, current.get("procs") or {}
    for proc in sorted(set(stored_procs) | set(current_procs)):
        if stored_procs.get(proc) != current_procs.get(proc):
            raise ModelshelfError(
                f"the learner passed preprocesses differently ({proc} state differs from the saved "
                "one, so the same rows would reach the model as other numbers): build its "
                "DataLoaders from the same training data, or pass check_preprocessing=False"
            )


def _signature(tabular: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if tabular is None:
        return None
    names = [*tabular["cat_names"], *tabular["cont_names"]]
    output: dict[str, Any] = {"name": (tabular["y_names"] or ["y"])[0]}
    if tabular.get("classes") is not None:
        output["classes"] = tabular["classes"]
    return {
        "inputs": [
            {
                "name": "X",
                "shape": [None, len(names)],
                "feature_names": names,
                "cat_names": tabular["cat_names"],
                "cont_names": tabular["cont_names"],
            }
        ],
        "outputs": [output],
    }


# --- helpers -----------------------------------------------------------------------------------


def _epochs(learner: Any) -> int | None:
    values = getattr(getattr(learner, "recorder", None), "values", None)
    return len(values) if isinstance(values, list) else None


def _name_of(value: Any) -> str | None:
    if value is None:
        return None
    target = getattr(value, "func", value)  # fastai wraps losses and metrics
    if isinstance(target, type):
        return qualified_name(target)
    name = getattr(target, "__qualname__", None) or getattr(target, "name", None)
    module = getattr(target, "__module__", None)
    if name is None:
        return qualified_name(type(target))
    return f"{module}.{name}" if module else str(name)


def _device_of(model: Any) -> str:
    for parameter in model.parameters():
        return str(parameter.device)
    return "cpu"


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _import_fastai() -> Any:
    try:
        import fastai
        import fastai.learner
    except ImportError as exc:
        raise ModelshelfError(
            f"the fastai serializers need fastai, which could not be imported ({exc}): pip install "
            "fastai (with a torchvision built for your torch)"
        ) from exc
    return fastai


def _torch_weights() -> Any:
    from modelshelf_torch import TorchSafetensorsSerializer

    return TorchSafetensorsSerializer()
