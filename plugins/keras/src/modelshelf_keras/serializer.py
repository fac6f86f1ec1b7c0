"""The ``keras-v3`` serializer: Keras 3 models as one native ``model.keras`` file.

Nothing here imports Keras at module level: Keras is imported inside :meth:`KerasV3Serializer.save`
and :meth:`KerasV3Serializer.load`, so listing serializers (and choosing one by the qualified class
names in ``type(obj).__mro__``) never pays for Keras or its backend.

Safety: ``model.keras`` is a zip of JSON config and HDF5 weights. Keras' safe mode (used unless the
caller passes ``trust=True``) refuses the one part of it that is code: a ``Lambda`` layer whose
function is a Python lambda stored as marshalled bytecode. With ``trust=True`` the file is loaded
with ``safe_mode=False`` and that bytecode runs.

Backends: the backend a model was saved under (and its version) is recorded. The format stores
architecture and weights independently of the backend, so a version loads under another one;
``load`` then warns (:class:`BackendChangeWarning`) saying what that means.
"""

from __future__ import annotations

import sys
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from modelshelf.errors import InvalidModel, ModelshelfError, UntrustedFormat
from modelshelf.serializers import SavedModel, Serializer, check_options, model_file, reading

#: The single file a version holds.
FILENAME = "model.keras"

#: ``keras.saving.load_model`` arguments a caller may pass (``safe_mode`` comes from ``trust``).
LOAD_OPTIONS = ("custom_objects", "compile")


class BackendChangeWarning(UserWarning):
    """A Keras version is loaded under another backend than the one it was saved under."""


class KerasV3Serializer(Serializer):
    """Keras 3 ``Model`` (Sequential, functional or subclassed) <-> ``model.keras``.

    ``save(model, directory)`` calls ``model.save(directory / "model.keras")``; it takes no
    options. ``load(directory, details=..., trust=False, **options)`` returns the model from
    ``keras.saving.load_model(path, safe_mode=not trust, **options)``: same class, same weights,
    with its compile state (optimizer, loss) when it was compiled. ``options`` are
    ``custom_objects=`` and ``compile=``; ``safe_mode`` is set from ``trust`` and cannot be passed.
    """

    name = "keras-v3"
    framework = "keras"
    format = "keras-v3"
    safe = True
    # keras.Model's real home in Keras 3 is keras.src.models.model.Model; Sequential and functional
    # models subclass it, but claiming them too makes them resolve at depth 0 whatever else
    # (e.g. torch.nn.Module under the torch backend) sits in their MRO.
    claims = (
        "keras.src.models.model.Model",
        "keras.src.models.sequential.Sequential",
        "keras.src.models.functional.Functional",
    )

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        # The .keras format has nothing to tune, and Keras' own save() arguments (zipped=False,
        # overwrite) would only break the one-file layout.
        check_options(self.name, "save", options, ())
        keras = import_keras()
        if not isinstance(obj, keras.Model):
            raise InvalidModel(
                f"keras-v3 saves keras.Model objects, not {type(obj).__qualname__}: "
                "wrap a bare layer in keras.Sequential([...]) first"
            )
        if not obj.built:
            raise InvalidModel(
                f"Keras model {obj.name!r} has not been built, so it has no weights to store: "
                "call it on a batch or call model.build(input_shape) before uploading"
            )
        obj.save(directory / FILENAME)
        return SavedModel(
            framework="keras",
            framework_version=keras.__version__,
            signature=signature_of(obj),
            details={
                "file": FILENAME,
                "class": registered_name(keras, type(obj)),
                "backend": keras.backend.backend(),
                "backend_version": backend_version(keras.backend.backend()),
                "compiled": bool(getattr(obj, "compiled", False)),
                # What a loader must know before loading: Python code that safe mode refuses, and
                # classes that must be registered (or passed as custom_objects) to load at all.
                "python_lambdas": sorted(lambda_layer_names(keras, obj)),
                "custom_objects": sorted(custom_class_names(keras, obj)),
            },
        )

    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        if "safe_mode" in options:
            raise ModelshelfError(
                "do not pass safe_mode to load a keras-v3 version: it is set from trust "
                "(trust=True loads with safe_mode=False)"
            )
        check_options(self.name, "load", options, LOAD_OPTIONS)
        keras = import_keras()
        # The file name comes from the manifest, which whoever can write the shelf controls.
        relative = details.get("file", FILENAME)
        path = model_file(directory, relative)
        # Keras reports a file that is not a zip as "File not found": say what is really wrong.
        if not zipfile.is_zipfile(path):
            raise InvalidModel(
                f"could not read {relative!r} of this version with keras: it is not a .keras zip "
                "archive; the stored file is damaged or was not written by this serializer"
            )
        warn_if_backend_changed(details.get("backend"), keras.backend.backend())
        with reading(str(relative), "keras"):
            try:
                return keras.saving.load_model(path, safe_mode=not trust, **options)
            except ValueError as exc:
                # Keras' safe-mode refusal is a plain ValueError naming safe_mode; nothing else is.
                if not trust and "safe_mode" in str(exc):
                    lambdas = ", ".join(details.get("python_lambdas") or ()) or "a Python lambda"
                    raise UntrustedFormat(
                        f"this Keras model holds Python code ({lambdas}) that runs when it is "
                        "loaded; Keras safe mode refused it: pass trust=True only if you trust "
                        "whoever uploaded it"
                    ) from exc
                raise
            except TypeError as exc:
                if "Could not locate" not in str(exc):
                    raise
                needed = ", ".join(details.get("custom_objects") or ()) or "see the Keras error"
                raise ModelshelfError(
                    f"this Keras model uses classes or functions Keras cannot find ({needed}): "
                    "import the module that defines them (decorated with "
                    "@keras.saving.register_keras_serializable) before loading, or pass "
                    "custom_objects={name: object}"
                ) from exc


def backend_version(backend: str) -> str | None:
    """The installed version of the backend's package (already imported by Keras), if known."""
    module = sys.modules.get(
        {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}.get(backend, backend)
    )
    version = getattr(module, "__version__", None)
    return str(version) if version is not None else None


def warn_if_backend_changed(saved: object, current: str) -> None:
    """Say what loading under another backend means; a version from before backends were
    recorded (or a damaged ``backend`` entry) says nothing."""
    if not isinstance(saved, str) or saved == current:
        return
    warnings.warn(
        BackendChangeWarning(
            f"this Keras model was saved under the {saved} backend and is loaded under {current}: "
            "the .keras format stores the architecture and weights independently of the backend, "
            "so Keras' own layers load and predict the same up to floating-point rounding (not "
            f"bit for bit); a custom layer or Lambda calling {saved}'s own functions fails to load "
            f"or to run. Set KERAS_BACKEND={saved} before Keras is imported to load it as saved"
        ),
        stacklevel=3,
    )


def import_keras() -> ModuleType:
    """Import Keras 3, turning a missing package or backend into one actionable line."""
    try:
        import keras
    except ModuleNotFoundError as exc:
        if exc.name == "keras":
            raise ModelshelfError(
                "the keras-v3 serializer needs Keras 3: pip install keras"
            ) from exc
        # Keras imports its backend while being imported; the default backend is TensorFlow.
        raise ModelshelfError(
            f"Keras could not import its backend ({exc.name}): install it, or select an "
            "installed backend with KERAS_BACKEND=torch (or jax) before Keras is first imported"
        ) from exc
    major = int(keras.__version__.split(".")[0])
    if major < 3:
        raise ModelshelfError(
            f"keras-v3 needs Keras 3, found keras {keras.__version__}: pip install 'keras>=3'"
        )
    return keras


def signature_of(model: Any) -> dict[str, Any] | None:
    """Inputs and outputs (name, dtype, shape with ``None`` for free axes), when Keras knows them.

    Sequential and functional models know them; a subclassed model has no symbolic inputs, so it
    gets ``None`` rather than a guess.
    """
    try:
        inputs = list(model.inputs)
        outputs = list(model.outputs)
    except (AttributeError, ValueError):
        return None
    if not inputs or not outputs:
        return None
    output_names = list(getattr(model, "output_names", None) or [])
    if len(output_names) != len(outputs):
        # Sequential models have no output_names; their outputs' auto-generated tensor names
        # (keras_tensor_32) change from run to run, so name each by the layer that produces it.
        output_names = [_producer_name(t) for t in outputs]
    return {
        "inputs": [_tensor_spec(t.name, t) for t in inputs],
        "outputs": [_tensor_spec(n, t) for n, t in zip(output_names, outputs, strict=True)],
    }


def _producer_name(tensor: Any) -> str:
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None)
    return str(getattr(operation, "name", None) or tensor.name)


def _tensor_spec(name: str, tensor: Any) -> dict[str, Any]:
    return {
        "name": str(name),
        "dtype": str(tensor.dtype),
        "shape": [None if d is None else int(d) for d in tensor.shape],
    }


def _all_layers(model: Any) -> Iterator[Any]:
    """The model and every layer below it, depth first (nested models included)."""
    seen: set[int] = set()
    stack = [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        stack.extend(getattr(layer, "layers", None) or [])


def lambda_layer_names(keras: ModuleType, model: Any) -> list[str]:
    """Names of the ``Lambda`` layers holding Python lambdas: Keras stores those as bytecode,
    which safe mode refuses to load (named, registered functions are stored by name and load)."""
    return [
        layer.name
        for layer in _all_layers(model)
        if isinstance(layer, keras.layers.Lambda)
        and any(
            _is_python_lambda(getattr(layer, attribute, None))
            for attribute in ("function", "mask", "_output_shape")
        )
    ]


def _is_python_lambda(value: Any) -> bool:
    return callable(value) and getattr(value, "__name__", None) == "<lambda>"


def custom_class_names(keras: ModuleType, model: Any) -> set[str]:
    """Registered names of the non-Keras classes in the model, and of the named functions its
    ``Lambda`` layers call: Keras must find each of them (registered, or in ``custom_objects``)
    to load the model."""
    found = set()
    for layer in _all_layers(model):
        cls = type(layer)
        if not cls.__module__.startswith("keras."):
            found.add(registered_name(keras, cls))
        if isinstance(layer, keras.layers.Lambda):
            function = getattr(layer, "function", None)
            if callable(function) and not _is_python_lambda(function):
                found.add(registered_name(keras, function))
    return found


def registered_name(keras: ModuleType, obj: Any) -> str:
    """The name Keras stores for a class or function (``package>Name`` when registered)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return str(keras.saving.get_registered_name(obj))
