"""Lightning serializers. Neither Lightning nor torch is imported at module level.

Lightning ships as two packages, ``lightning`` (``lightning.pytorch.LightningModule``) and
``pytorch_lightning`` (``pytorch_lightning.LightningModule``), whose module classes are distinct;
both are claimed, and the package an object came from is recorded.

* ``lightning-safetensors`` (default, safe): the weights through modelshelf-torch's
  ``torch-safetensors`` (tied weights and all) as ``model.safetensors``, and the hyperparameters
  (``module.hparams``) as ``hparams.json``. Loading builds the class the *caller* names,
  ``cls(**hparams)``, as Lightning's ``load_from_checkpoint`` does, and fills in the weights: no
  class name stored in the version is ever imported, so nothing in it can run.
* ``lightning-checkpoint`` (opt-in, needs trust): the full checkpoint, ``trainer.save_checkpoint``
  when the module is attached to a trainer, else a checkpoint of the same shape through
  ``torch.save``. It is pickle (``torch.load(weights_only=False)``), so it runs code when loaded.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelshelf.errors import InvalidModel, ModelshelfError, UntrustedFormat
from modelshelf.serializers import (
    SavedModel,
    Serializer,
    check_options,
    is_json_exact,
    model_file,
    qualified_name,
    reading,
)

WEIGHTS_FILE = "model.safetensors"
HPARAMS_FILE = "hparams.json"
CHECKPOINT_FILE = "model.ckpt"

#: The LightningModule classes of both distributions, by their defining modules.
LIGHTNING_MODULE_CLASSES = (
    "lightning.pytorch.core.module.LightningModule",
    "pytorch_lightning.core.module.LightningModule",
)


class LightningSafetensorsSerializer(Serializer):
    """A ``LightningModule``'s weights (safetensors) and hyperparameters (JSON). Safe; the default.

    ``load`` options: ``cls`` (your ``LightningModule`` subclass: built as ``cls(**hparams)`` and
    filled), or ``module`` (an instance you built: filled); ``strict`` (default ``True``),
    ``device`` (default ``"cpu"``). Without either, ``load`` refuses, naming the saved class.
    """

    name = "lightning-safetensors"
    framework = "lightning"
    format = "safetensors+json"
    safe = True
    claims = LIGHTNING_MODULE_CLASSES

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ())
        package, version = lightning_package_of(obj)
        weights = _torch_weights().save(obj, directory)
        hparams, skipped = _jsonable_hparams(obj)
        (directory / HPARAMS_FILE).write_text(json.dumps(hparams, indent=2, sort_keys=True) + "\n")
        return SavedModel(
            framework="lightning",
            framework_version=version,
            signature=_signature(obj),
            details={
                **weights.details,
                "hparams_file": HPARAMS_FILE,
                # "kwargs" when save_hyperparameters() collected __init__ arguments, else the name
                # of the one argument it was given (a dict or Namespace of hyperparameters).
                "hparams_name": getattr(obj, "_hparams_name", None),
                "skipped_hparams": skipped,
                "lightning_package": package,
                "torch_version": weights.framework_version,
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        check_options(self.name, "load", options, ("cls", "module", "strict", "device"))
        cls, module = options.get("cls"), options.get("module")
        saved_class = details.get("module_class", "a LightningModule")
        if (cls is None) == (module is None):
            raise ModelshelfError(
                f"pass cls=YourModule (built from the stored hyperparameters) or module=instance "
                f"to load this {saved_class} into; the version stores weights, not code"
            )
        hparams_name = str(details.get("hparams_file", HPARAMS_FILE))
        hparams_path = model_file(directory, details.get("hparams_file", HPARAMS_FILE))
        with reading(hparams_name, "json"):
            hparams = json.loads(hparams_path.read_text(encoding="utf-8"))
        if not isinstance(hparams, dict):
            raise InvalidModel(
                f"{hparams_name!r} of this version holds no JSON object: it is damaged"
            )
        if module is None:
            module = build(cls, hparams, details)
        elif not _is_lightning_module(module):
            raise ModelshelfError(
                f"module= must be a LightningModule instance, not {type(module).__qualname__}"
            )
        weight_options = {k: options[k] for k in ("strict", "device") if k in options}
        return _torch_weights().load(directory, details=details, module=module, **weight_options)


class LightningCheckpointSerializer(Serializer):
    """The full Lightning checkpoint (pickle), ``model.ckpt``. Opt-in, needs trust.

    ``save``: ``trainer.save_checkpoint`` when the module has a trainer (optimizer and loop state
    included), else ``torch.save`` of ``{"state_dict", "hyper_parameters", ...}`` as Lightning
    writes it. ``load`` options: ``cls`` (returns ``cls.load_from_checkpoint(path)``; without it,
    the checkpoint dict), ``device`` (``map_location``, default ``"cpu"``), ``strict``.
    """

    name = "lightning-checkpoint"
    framework = "lightning"
    format = "lightning-ckpt"
    safe = False
    claims = ()

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ())
        package, version = lightning_package_of(obj)
        import torch

        path = directory / CHECKPOINT_FILE
        trainer = getattr(obj, "_trainer", None)
        if trainer is not None:
            trainer.save_checkpoint(str(path))
            written_by = "trainer.save_checkpoint"
        else:
            torch.save(_bare_checkpoint(obj, package, version), str(path))
            written_by = "torch.save"
        return SavedModel(
            framework="lightning",
            framework_version=version,
            signature=_signature(obj),
            details={
                "file": CHECKPOINT_FILE,
                "module_class": qualified_name(type(obj)),
                "lightning_package": package,
                "written_by": written_by,
                "torch_version": torch.__version__,
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        if not trust:
            raise UntrustedFormat(
                "loading a lightning-checkpoint version runs pickle, which can execute code stored "
                "in it: pass trust=True only if you trust whoever uploaded it"
            )
        check_options(self.name, "load", options, ("cls", "device", "strict"))
        import torch

        relative = details.get("file", CHECKPOINT_FILE)
        path = model_file(directory, relative)
        device = options.get("device", "cpu")
        cls = options.get("cls")
        if cls is None:
            with reading(str(relative), "torch"):
                return torch.load(str(path), map_location=device, weights_only=False)
        if not (isinstance(cls, type) and _is_lightning_module_class(cls)):
            raise ModelshelfError(f"cls= must be a LightningModule subclass, not {cls!r}")
        module_class: Any = cls  # checked above: a LightningModule subclass
        with reading(str(relative), "lightning"):
            return module_class.load_from_checkpoint(
                str(path), map_location=device, strict=options.get("strict"), weights_only=False
            )


# --- building the caller's class -------------------------------------------------------------------


def build(cls: Any, hparams: dict[str, Any], details: Mapping[str, Any]) -> Any:
    """``cls`` built from stored hyperparameters the way ``load_from_checkpoint`` builds it."""
    if not (isinstance(cls, type) and _is_lightning_module_class(cls)):
        raise ModelshelfError(f"cls= must be a LightningModule subclass, not {cls!r}")
    parameters = inspect.signature(cls.__init__).parameters  # type: ignore[misc]  # the class's own
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    hparams_name = details.get("hparams_name")
    if isinstance(hparams_name, str) and hparams_name != "kwargs" and hparams_name in parameters:
        kwargs: dict[str, Any] = {hparams_name: hparams}
    else:
        kwargs = dict(hparams)
    if not takes_any:
        kwargs = {k: v for k, v in kwargs.items() if k in parameters}
    skipped = [str(s) for s in details.get("skipped_hparams") or ()]
    try:
        module = cls(**kwargs)
    except TypeError as exc:
        hint = (
            f"; hyperparameters {', '.join(skipped)} were not JSON and are not stored"
            if skipped
            else ""
        )
        raise ModelshelfError(
            f"could not build {qualified_name(cls)} from the stored hyperparameters ({exc}){hint}: "
            "build it yourself and pass module=instance"
        ) from exc
    configure = getattr(type(module), "configure_model", None)
    base = next(
        (c for c in type(module).__mro__ if qualified_name(c) in LIGHTNING_MODULE_CLASSES), None
    )
    if (
        configure is not None
        and base is not None
        and configure is not getattr(base, "configure_model", None)
    ):
        module.configure_model()  # layers created there exist before the weights go in
    return module


# --- what is recorded ------------------------------------------------------------------------------


def lightning_package_of(obj: Any) -> tuple[str, str]:
    """``(package, version)`` of the Lightning distribution whose LightningModule ``obj`` is."""
    import importlib

    for cls in type(obj).__mro__:
        name = qualified_name(cls)
        if name in LIGHTNING_MODULE_CLASSES:
            package = name.split(".")[0]
            return package, str(importlib.import_module(package).__version__)
    raise InvalidModel(
        f"Lightning serializers save LightningModule objects, not {type(obj).__qualname__}: "
        "for a plain torch.nn.Module use torch-safetensors"
    )


def _jsonable_hparams(obj: Any) -> tuple[dict[str, Any], list[str]]:
    """The module's hyperparameters JSON can hold exactly, and the names of those it cannot."""
    raw = getattr(obj, "hparams", None) or {}
    hparams: dict[str, Any] = {}
    skipped: list[str] = []
    for key, value in dict(raw).items():
        if isinstance(key, str) and is_json_exact(value):
            hparams[key] = value
        else:
            skipped.append(str(key))
    return hparams, sorted(skipped)


def _signature(obj: Any) -> dict[str, Any] | None:
    """The input described by ``example_input_array`` when the module sets one (a tensor)."""
    example = getattr(obj, "example_input_array", None)
    if example is None or not (hasattr(example, "shape") and hasattr(example, "dtype")):
        return None
    shape: list[Any] = [None, *[int(d) for d in example.shape[1:]]]
    return {
        "inputs": [
            {"name": "x", "dtype": str(example.dtype).removeprefix("torch."), "shape": shape}
        ],
        "outputs": [],
    }


def _bare_checkpoint(obj: Any, package: str, version: str) -> dict[str, Any]:
    """A checkpoint as Lightning writes one, for a module that has no trainer."""
    checkpoint: dict[str, Any] = {
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": version,
        "state_dict": obj.state_dict(),
        "loops": None,
    }
    if getattr(obj, "hparams", None):
        checkpoint[type(obj).CHECKPOINT_HYPER_PARAMS_KEY] = dict(obj.hparams)
        checkpoint[type(obj).CHECKPOINT_HYPER_PARAMS_NAME] = getattr(obj, "_hparams_name", None)
    obj.on_save_checkpoint(checkpoint)
    return checkpoint


# --- helpers -----------------------------------------------------------------------------------


def _torch_weights() -> Any:
    from modelshelf_torch import TorchSafetensorsSerializer

    return TorchSafetensorsSerializer()


def _is_lightning_module_class(cls: type) -> bool:
    return any(qualified_name(c) in LIGHTNING_MODULE_CLASSES for c in cls.__mro__)


def _is_lightning_module(obj: Any) -> bool:
    return _is_lightning_module_class(type(obj))
