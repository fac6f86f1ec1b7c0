"""skorch serializers. Neither skorch nor torch is imported at module level.

* ``skorch-safetensors`` (default for every ``skorch.net.NeuralNet``, safe): the parameters of each
  torch module of the net (``module_``, and extra modules or criteria with state) through
  modelshelf-torch's ``torch-safetensors``, one sub-directory each, plus the training history as
  ``history.json`` and what the net knows of its classes. Loading fills a net the *caller* built
  (and initialises it when needed): no class named in the version is imported.
* ``skorch-pickle`` (opt-in, needs trust): the whole net through ``pickle``, which runs code on load.
"""

from __future__ import annotations

import pickle
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

HISTORY_FILE = "history.json"
PICKLE_FILE = "net.pkl"
NEURAL_NET_CLASS = "skorch.net.NeuralNet"


class SkorchSafetensorsSerializer(Serializer):
    """A skorch net's module parameters (safetensors) and history (JSON). Safe; the default.

    ``load`` option ``net``: a skorch net built like the saved one (same module class and module
    arguments); it is initialised if it is not yet, filled, and returned. ``strict`` (default
    ``True``) goes to each module's ``load_state_dict``. Without ``net``, ``load`` refuses, naming
    the saved classes.
    """

    name = "skorch-safetensors"
    framework = "skorch"
    format = "safetensors"
    safe = True
    claims = (NEURAL_NET_CLASS,)

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ())
        skorch = _import_skorch()
        if not isinstance(obj, skorch.NeuralNet):
            raise InvalidModel(
                f"skorch-safetensors saves skorch nets, not {type(obj).__qualname__}"
            )
        if not getattr(obj, "initialized_", False):
            raise InvalidModel(
                f"{type(obj).__name__} is not initialised, so it has no parameters to store: fit it "
                "or call net.initialize() before uploading"
            )
        torch_weights = _torch_weights()
        parts = []
        for attribute in _stateful_parts(obj):
            subdirectory = directory / attribute
            subdirectory.mkdir()
            saved = torch_weights.save(getattr(obj, attribute), subdirectory)
            parts.append({"attribute": attribute, "path": attribute, "torch": dict(saved.details)})
        obj.history.to_file(str(directory / HISTORY_FILE))
        classes = _classes(obj)
        import torch

        return SavedModel(
            framework="skorch",
            framework_version=skorch.__version__,
            signature=_signature(classes),
            details={
                "net_class": qualified_name(type(obj)),
                "module_class": qualified_name(type(obj.module_)),
                "parts": parts,
                "history_file": HISTORY_FILE,
                "epochs": len(obj.history),
                "params": _params(obj),
                "classes": classes,
                "torch_version": torch.__version__,
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        check_options(self.name, "load", options, ("net", "strict"))
        skorch = _import_skorch()
        net = options.get("net")
        if net is None:
            raise ModelshelfError(
                f"pass net= a {details.get('net_class', 'skorch net')} built with module "
                f"{details.get('module_class', '?')} to load these parameters into; the version "
                "stores parameters, not code"
            )
        if not isinstance(net, skorch.NeuralNet):
            raise ModelshelfError(f"net= must be a skorch net, not {type(net).__qualname__}")
        parts = details.get("parts")
        if not isinstance(parts, list) or not parts:
            raise InvalidModel(
                "this version's details list no stored modules: the manifest is damaged"
            )
        history_path = model_file(directory, details.get("history_file", HISTORY_FILE))
        if not getattr(net, "initialized_", False):
            net.initialize()
        torch_weights = _torch_weights()
        strict = options.get("strict", True)
        device = str(getattr(net, "device", "cpu") or "cpu")
        for part in parts:
            if not isinstance(part, Mapping) or not isinstance(part.get("torch"), Mapping):
                raise InvalidModel(
                    "this version's details describe a stored module badly: the manifest is damaged"
                )
            attribute = part.get("attribute")
            target = getattr(net, attribute, None) if isinstance(attribute, str) else None
            if target is None or not isinstance(attribute, str) or not attribute.endswith("_"):
                raise ModelshelfError(
                    f"the net passed has no module {attribute!r}, which this version stores: build "
                    "the net like the saved one"
                )
            subdirectory = model_file(directory, part.get("path"), kind="directory")
            torch_weights.load(
                subdirectory, details=part["torch"], module=target, strict=strict, device=device
            )
        history = skorch.history.History
        with reading(str(details.get("history_file", HISTORY_FILE)), "skorch"):
            net.history = history.from_file(str(history_path))
        _restore_classes(net, details.get("classes"))
        return net


class SkorchPickleSerializer(Serializer):
    """The whole net through ``pickle`` (``net.pkl``). Opt-in, needs trust.

    Everything comes back (modules, optimizer, callbacks, history), and ``load`` needs no net; the
    classes must be importable, under the same module names, where it is loaded.
    """

    name = "skorch-pickle"
    framework = "skorch"
    format = "pickle"
    safe = False
    claims = ()

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        check_options(self.name, "save", options, ())
        skorch = _import_skorch()
        with open(directory / PICKLE_FILE, "wb") as file:
            pickle.dump(obj, file, protocol=pickle.HIGHEST_PROTOCOL)
        details: dict[str, Any] = {"file": PICKLE_FILE, "net_class": qualified_name(type(obj))}
        module = getattr(obj, "module_", None)
        if module is not None:
            details["module_class"] = qualified_name(type(module))
        return SavedModel(framework="skorch", framework_version=skorch.__version__, details=details)

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        if not trust:
            raise UntrustedFormat(
                "loading a skorch-pickle version runs pickle, which can execute code stored in it: "
                "pass trust=True only if you trust whoever uploaded it"
            )
        check_options(self.name, "load", options, ())
        relative = details.get("file", PICKLE_FILE)
        path = model_file(directory, relative)
        with reading(str(relative), "pickle"), open(path, "rb") as file:
            try:
                return pickle.load(file)
            except (AttributeError, ModuleNotFoundError) as exc:
                raise ModelshelfError(
                    f"cannot unpickle {details.get('net_class', 'the net')} ({exc}): its classes "
                    "must be importable under the same module names in this process"
                ) from exc


# --- what is stored and recorded --------------------------------------------------------------------


def _stateful_parts(net: Any) -> list[str]:
    """Attributes (``module_``, ``criterion_``, extras) holding torch modules with state."""
    import torch

    names = [f"{n}_" for n in (*getattr(net, "_modules", ()), *getattr(net, "_criteria", ()))]
    if "module_" not in names:
        names.insert(0, "module_")
    parts = []
    for name in dict.fromkeys(names):
        value = getattr(net, name, None)
        if isinstance(value, torch.nn.Module) and (name == "module_" or value.state_dict()):
            parts.append(name)
    return parts


def _params(net: Any) -> dict[str, Any]:
    """The net's own parameters JSON holds exactly; classes and callables by qualified name."""
    params: dict[str, Any] = {}
    for key, value in net.get_params(deep=False).items():
        if is_json_exact(value):
            params[key] = value
        elif isinstance(value, type):
            params[key] = qualified_name(value)
    return params


def _classes(net: Any) -> list[Any] | None:
    classes = getattr(net, "classes_inferred_", None)
    if classes is None:
        return None
    values = classes.tolist() if hasattr(classes, "tolist") else list(classes)
    return values if is_json_exact(values) else None


def _signature(classes: list[Any] | None) -> dict[str, Any] | None:
    if classes is None:
        return None
    return {"inputs": [], "outputs": [{"name": "y", "classes": classes}]}


def _restore_classes(net: Any, classes: Any) -> None:
    """Give a classifier back the classes it inferred while fitting (sklearn tools read them)."""
    if (
        isinstance(classes, list)
        and getattr(net, "classes", None) is None
        and hasattr(type(net), "classes_")
    ):
        import numpy as np

        net.classes_inferred_ = np.asarray(classes)


# --- helpers -----------------------------------------------------------------------------------


def _import_skorch() -> Any:
    import skorch
    import skorch.history

    return skorch


def _torch_weights() -> Any:
    from modelshelf_torch import TorchSafetensorsSerializer

    return TorchSafetensorsSerializer()
