"""PyTorch serializers. ``torch`` and ``safetensors`` are imported inside save/load only.

Safety, decided from what each loader does (see README.md, "Safety"):

* ``torch-safetensors`` is safe: a safetensors file is a JSON header plus raw tensor bytes.
* ``torch-export`` is NOT safe: ``torch.export.load`` falls back to ``torch.load(...,
  weights_only=False)`` (pickle) when a stored artifact does not load with ``weights_only=True``,
  resolves graph call targets by walking attributes of the ``torch`` module (which reaches
  ``torch.os``...), and parses stored symbolic-shape expressions with sympy (``eval``).
* ``torch-script`` is NOT safe: a TorchScript archive holds code (``code/*.py``) that is compiled and
  run, ``__setstate__`` methods included, as the archive loads; PyTorch's own security policy says to
  treat such models as programs.
* ``torch-pickle`` is NOT safe: it is pickle.

Core refuses to call ``load`` of an unsafe serializer without trust; each unsafe ``load`` here
checks ``trust`` again so that calling a serializer directly is no way around it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelshelf.errors import ModelshelfError, UntrustedFormat
from modelshelf.serializers import (
    SavedModel,
    Serializer,
    check_options,
    model_file,
    qualified_name,
    reading,
)

if TYPE_CHECKING:
    import torch

SAFETENSORS_FILE = "model.safetensors"
EXPORT_FILE = "model.pt2"
SCRIPT_FILE = "model.pt"
PICKLE_FILE = "model.pt"


class InvalidTorchModel(ModelshelfError, ValueError):
    """An object or stored file the torch serializers cannot use (one-line message)."""


# --- torch-safetensors -------------------------------------------------------------------------


class TorchSafetensorsSerializer(Serializer):
    """The module's state dict as one safetensors file. Safe; the default for every nn.Module.

    Only tensors are stored: the module's class and code are not. ``load`` returns the state dict
    (``dict[str, torch.Tensor]``), or, given ``module=``, loads it into that module and returns it.

    Tied or shared tensors (safetensors refuses tensors sharing memory): a state-dict entry that is
    the very same tensor view as an earlier one is stored once and recorded as an alias, and comes
    back as the same tensor object; a tensor that only overlaps another's memory is stored as a
    copy.

    ``load`` options: ``module`` (an ``nn.Module`` to fill), ``strict`` (``bool``, default
    ``True``: the module's keys must equal the stored keys), ``device`` (default ``"cpu"``).
    """

    name = "torch-safetensors"
    framework = "torch"
    format = "safetensors"
    safe = True
    claims = ("torch.nn.modules.module.Module",)

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        """Write ``obj.state_dict()`` to ``model.safetensors``; refuses non-tensor state."""
        import safetensors.torch
        import torch

        check_options(self.name, "save", options, ())
        if not isinstance(obj, torch.nn.Module):
            raise InvalidTorchModel(
                f"torch-safetensors saves torch.nn.Module objects, not {type(obj).__name__}"
            )
        state = obj.state_dict()
        tensors, aliases = _dedupe_state_dict(state)
        safetensors.torch.save_file(
            tensors, str(directory / SAFETENSORS_FILE), metadata={"format": "pt"}
        )
        buffers = {name for name, _ in obj.named_buffers()}
        return SavedModel(
            framework="torch",
            framework_version=torch.__version__,
            signature=None,  # an nn.Module does not know its inputs
            details={
                "file": SAFETENSORS_FILE,
                "module_class": qualified_name(type(obj)),
                # Every state-dict entry, aliases included, as a list: manifests may sort the
                # keys of JSON objects, and state-dict order is worth keeping.
                "tensors": [
                    {
                        "name": name,
                        "shape": list(t.shape),
                        "dtype": _dtype_name(t.dtype),
                        "kind": "buffer" if name in buffers else "parameter",
                    }
                    for name, t in state.items()
                ],
                "aliases": aliases,
                "parameter_count": sum(p.numel() for p in obj.parameters()),
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        """Return the state dict, or the given ``module`` with the state dict loaded into it."""
        import safetensors.torch
        import torch

        check_options(self.name, "load", options, ("module", "strict", "device"))
        module = options.get("module")
        strict = options.get("strict", True)
        device = options.get("device", "cpu")
        if module is not None and not isinstance(module, torch.nn.Module):
            raise InvalidTorchModel(
                f"module= must be a torch.nn.Module to load the weights into, not {type(module).__name__}"
            )
        relative = details.get("file", SAFETENSORS_FILE)
        path = model_file(directory, relative)
        with reading(str(relative), "safetensors"):
            stored = safetensors.torch.load_file(str(path), device=device)
        state = _restore_aliases(stored, details)
        if module is None:
            return state
        _check_fits(module, state, strict=bool(strict), stored_class=details.get("module_class"))
        module.load_state_dict(state, strict=bool(strict))
        return module


def _dedupe_state_dict(
    state: Mapping[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Make a state dict storable by safetensors: ``(tensors to write, {alias: stored name})``."""
    import torch

    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[Any, ...], str] = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise InvalidTorchModel(
                f"state dict entry {name!r} is a {type(value).__name__}, not a tensor (extra state?): "
                "safetensors stores tensors only; use serializer='torch-pickle' (needs trust to load)"
            )
        tensor = value.detach()
        if tensor.device.type == "meta":
            raise InvalidTorchModel(
                f"tensor {name!r} is on the meta device and has no data: materialize the module "
                "(e.g. module.to_empty(device='cpu') and load weights) before uploading"
            )
        if tensor.numel() > 0:
            view = (
                tensor.untyped_storage().data_ptr(),
                tensor.storage_offset(),
                tuple(tensor.shape),
                tuple(tensor.stride()),
                tensor.dtype,
                str(tensor.device),
            )
            if view in seen:  # a tied weight: the same tensor under two names
                aliases[name] = seen[view]
                continue
            seen[view] = name
        tensors[name] = tensor
    # Distinct tensors can still share memory (slices of one buffer); safetensors refuses those,
    # and non-contiguous tensors: store independent contiguous copies of just these.
    owners: dict[int, int] = {}
    for tensor in tensors.values():
        if tensor.numel() > 0:
            pointer = tensor.untyped_storage().data_ptr()
            owners[pointer] = owners.get(pointer, 0) + 1
    for name, tensor in tensors.items():
        shared = tensor.numel() > 0 and owners[tensor.untyped_storage().data_ptr()] > 1
        if shared or not tensor.is_contiguous():
            tensors[name] = tensor.contiguous().clone()
    return tensors, aliases


def _restore_aliases(stored: dict[str, Any], details: Mapping[str, Any]) -> dict[str, Any]:
    """Put tied names back (pointing at the same tensor), in the original state-dict order."""
    aliases = details.get("aliases") or {}
    if not isinstance(aliases, Mapping):
        raise InvalidTorchModel(
            f"this version's details hold aliases of type {type(aliases).__name__}, not a "
            "mapping: the manifest is damaged"
        )
    for alias, target in aliases.items():
        if target not in stored:
            raise InvalidTorchModel(
                f"stored weights lack {target!r}, which {alias!r} is tied to: the version is damaged"
            )
        stored[alias] = stored[target]
    entries = details.get("tensors")
    order = [
        str(entry.get("name"))
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, Mapping)
    ]
    if set(order) == set(stored):
        return {name: stored[name] for name in order}
    return stored


def _check_fits(
    module: torch.nn.Module, state: Mapping[str, Any], *, strict: bool, stored_class: Any
) -> None:
    """One-line errors instead of ``load_state_dict``'s multi-line RuntimeError."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {list(state[k].shape)} vs {list(v.shape)}"
        for k, v in expected.items()
        if k in state and hasattr(v, "shape") and tuple(state[k].shape) != tuple(v.shape)
    ]
    target = qualified_name(type(module))
    saved = f" (saved from {stored_class})" if stored_class else ""
    if wrong:
        raise InvalidTorchModel(
            f"stored weights{saved} do not fit {target}: shape mismatch for {_few(wrong)}"
        )
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing keys {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_few(unexpected)}")
        raise InvalidTorchModel(
            f"stored weights{saved} do not fit {target}: {'; '.join(parts)}; "
            "pass strict=False to load only the matching keys"
        )


# --- torch-export ------------------------------------------------------------------------------


class TorchExportSerializer(Serializer):
    """A ``torch.export.ExportedProgram`` through ``torch.export.save`` / ``torch.export.load``.

    ``load`` returns an ``ExportedProgram`` (call ``.module()`` to run it). Needs trust: see the
    module docstring. The signature lists user inputs and outputs with dtypes and shapes; symbolic
    dimensions appear as their symbol names (e.g. ``"s31"``) with ranges in ``details``.
    """

    name = "torch-export"
    framework = "torch"
    format = "pt2"
    safe = False
    claims = ("torch.export.exported_program.ExportedProgram",)
    unsafe_default_reason = (
        "an ExportedProgram is a program (graph, signature, constants); no safe format stores "
        "one, and its weights alone go to torch-safetensors (serializer='torch-safetensors' on "
        "ep.module())"
    )

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        import torch
        import torch.export

        check_options(self.name, "save", options, ())
        if not isinstance(obj, torch.export.ExportedProgram):
            raise InvalidTorchModel(
                f"torch-export saves torch.export.ExportedProgram objects, not {type(obj).__name__}"
            )
        torch.export.save(obj, str(directory / EXPORT_FILE))
        return SavedModel(
            framework="torch",
            framework_version=torch.__version__,
            signature=_export_signature(obj),
            details={
                "file": EXPORT_FILE,
                "range_constraints": {str(k): str(v) for k, v in obj.range_constraints.items()},
                "state_dict": {
                    name: {"shape": list(t.shape), "dtype": _dtype_name(t.dtype)}
                    for name, t in obj.state_dict.items()
                },
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        _require_trust(self.name, trust)
        check_options(self.name, "load", options, ())
        import torch.export

        relative = details.get("file", EXPORT_FILE)
        path = model_file(directory, relative)
        with reading(str(relative), "torch.export"):
            return torch.export.load(str(path))


def _export_signature(program: Any) -> dict[str, Any]:
    from torch.export.graph_signature import InputKind, OutputKind

    nodes = {node.name: node for node in program.graph.nodes}

    def describe(name: str) -> dict[str, Any]:
        value: Any = nodes[name].meta.get("val") if name in nodes else None
        out: dict[str, Any] = {"name": name}
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            # int for fixed dimensions, the symbol's name (str) for dynamic ones.
            out["shape"] = [int(d) if isinstance(d, int) else str(d) for d in value.shape]
            out["dtype"] = _dtype_name(value.dtype)
        elif value is not None:
            out["type"] = type(value).__name__
        return out

    graph_signature = program.graph_signature
    return {
        "inputs": [
            describe(spec.arg.name)
            for spec in graph_signature.input_specs
            if spec.kind == InputKind.USER_INPUT and hasattr(spec.arg, "name")
        ],
        "outputs": [
            describe(spec.arg.name)
            for spec in graph_signature.output_specs
            if spec.kind == OutputKind.USER_OUTPUT and hasattr(spec.arg, "name")
        ],
    }


# --- torch-script ------------------------------------------------------------------------------


class TorchScriptSerializer(Serializer):
    """TorchScript modules (scripted or traced) through ``torch.jit.save`` / ``torch.jit.load``.

    Claims ``ScriptModule`` and ``RecursiveScriptModule``, which are more specific than the
    ``nn.Module`` claimed by torch-safetensors, so a scripted module keeps its code by default.
    ``load`` returns a ``torch.jit.RecursiveScriptModule`` (a traced module comes back as one too).
    Needs trust. ``load`` option: ``device`` (``map_location``, default ``"cpu"``).
    """

    name = "torch-script"
    framework = "torch"
    format = "torchscript"
    safe = False
    claims = ("torch.jit._script.RecursiveScriptModule", "torch.jit._script.ScriptModule")
    unsafe_default_reason = (
        "a TorchScript module is code; no safe format keeps it, and storing its weights instead "
        "would silently drop the program (pass serializer='torch-safetensors' for weights only)"
    )

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        import torch

        check_options(self.name, "save", options, ())
        if not isinstance(obj, torch.jit.ScriptModule):
            raise InvalidTorchModel(
                f"torch-script saves TorchScript modules (torch.jit.script / torch.jit.trace), "
                f"not {type(obj).__name__}"
            )
        torch.jit.save(obj, str(directory / SCRIPT_FILE))
        return SavedModel(
            framework="torch",
            framework_version=torch.__version__,
            signature=_script_signature(obj),
            details={
                "file": SCRIPT_FILE,
                "original_name": str(getattr(obj, "original_name", type(obj).__name__)),
                "script_class": qualified_name(type(obj)),
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        _require_trust(self.name, trust)
        check_options(self.name, "load", options, ("device",))
        import torch

        relative = details.get("file", SCRIPT_FILE)
        path = model_file(directory, relative)
        with reading(str(relative), "torch.jit"):
            return torch.jit.load(str(path), map_location=options.get("device", "cpu"))


def _script_signature(module: Any) -> dict[str, Any] | None:
    """Argument names and TorchScript types of ``forward``, when the module has one."""
    try:
        schema = module.forward.schema
    except (AttributeError, RuntimeError):
        return None
    return {
        "inputs": [
            {"name": arg.name, "type": str(arg.type)}
            for arg in schema.arguments
            if arg.name != "self"
        ],
        "outputs": [{"type": str(ret.type)} for ret in schema.returns],
    }


# --- torch-pickle ------------------------------------------------------------------------------


class TorchPickleSerializer(Serializer):
    """Any object (usually a whole ``nn.Module``) through ``torch.save`` (pickle). Opt-in, unsafe.

    Select it with ``serializer="torch-pickle"``; loading runs pickle (``torch.load(...,
    weights_only=False)``) and needs trust. The object's classes must be importable, under the same
    module names, in the loading process. ``load`` option: ``device`` (default ``"cpu"``).
    """

    name = "torch-pickle"
    framework = "torch"
    format = "pickle"
    safe = False
    claims = ()

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        import torch

        check_options(self.name, "save", options, ())
        torch.save(obj, str(directory / PICKLE_FILE))
        cls = type(obj)
        details: dict[str, Any] = {"file": PICKLE_FILE, "object_class": qualified_name(cls)}
        if cls.__module__ == "__main__":
            # Worth knowing before someone tries to load it elsewhere.
            details["warning"] = (
                "class defined in __main__: only loadable where it is defined again"
            )
        return SavedModel(framework="torch", framework_version=torch.__version__, details=details)

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        _require_trust(self.name, trust)
        check_options(self.name, "load", options, ("device",))
        import torch

        relative = details.get("file", PICKLE_FILE)
        path = model_file(directory, relative)
        with reading(str(relative), "torch"):
            try:
                return torch.load(
                    str(path), map_location=options.get("device", "cpu"), weights_only=False
                )
            except (AttributeError, ModuleNotFoundError) as exc:
                raise InvalidTorchModel(
                    f"cannot unpickle {details.get('object_class', 'the object')} ({exc}): its "
                    "class must be importable under the same module name in this process"
                ) from exc


# --- helpers -----------------------------------------------------------------------------------


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _few(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _require_trust(name: str, trust: bool) -> None:
    if not trust:
        raise UntrustedFormat(
            f"loading a {name} version can execute code stored in it: pass trust=True only if "
            "you trust whoever uploaded it"
        )
