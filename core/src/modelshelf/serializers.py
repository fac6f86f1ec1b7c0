"""The Serializer interface, and how an object picks its serializer.

A serializer turns one kind of in-memory object into files in a directory and back. It claims
objects by the *qualified class names* found in ``type(obj).__mro__`` so that choosing a serializer
never imports a framework: ``"sklearn.base.BaseEstimator"`` claims every scikit-learn estimator
without importing scikit-learn. The claim that matches earliest in the MRO (the most specific
class) wins; two serializers matching at the same depth are an ambiguity the user resolves by
passing ``serializer=NAME``.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs

from .errors import AmbiguousSerializer, NoSerializer


@attrs.frozen
class SavedModel:
    """What a serializer reports after writing an object to a directory."""

    #: Framework name and version, e.g. ``("sklearn", "1.5.2")``.
    framework: str
    framework_version: str
    #: Input/output signature where the framework knows it (JSON-compatible), else ``None``.
    signature: Mapping[str, Any] | None = None
    #: Serializer-specific facts worth keeping in the manifest (JSON-compatible).
    details: Mapping[str, Any] = attrs.field(factory=dict)


class Serializer(abc.ABC):
    """Saves objects of one framework to files and loads them back.

    Subclasses set the class attributes and implement :meth:`save` and :meth:`load`. Neither the
    class body nor :meth:`claims` may import the framework: import it inside ``save``/``load``.
    """

    #: Unique name, stored in manifests, e.g. ``"sklearn-skops"``.
    name: ClassVar[str]
    #: Framework this serializer is for, e.g. ``"sklearn"``.
    framework: ClassVar[str]
    #: File format written, e.g. ``"skops"``.
    format: ClassVar[str]
    #: ``True`` when loading can never execute code stored in the files.
    safe: ClassVar[bool] = True
    #: Qualified class names this serializer claims by default. An opt-in serializer (selected
    #: only by ``serializer=NAME``) leaves this empty.
    claims: ClassVar[tuple[str, ...]] = ()

    def claim_depth(self, obj: Any) -> int | None:
        """Index in ``type(obj).__mro__`` of the first class this serializer claims, or None."""
        wanted = set(self.claims)
        if not wanted:
            return None
        for depth, cls in enumerate(type(obj).__mro__):
            if qualified_name(cls) in wanted:
                return depth
        return None

    def files(self, obj: Any) -> Mapping[str, Path] | None:
        """Files to upload as they are (relative path -> local file), or ``None`` to call save.

        Serializers of objects that already are files (the built-in ``files`` serializer) return
        them here so that a 10 GB checkpoint is hashed and uploaded in place, never copied first.
        """
        return None

    @abc.abstractmethod
    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        """Write ``obj`` as files below the empty ``directory``."""

    @abc.abstractmethod
    def load(
        self, directory: Path, *, details: Mapping[str, Any], trust: bool = False, **options: Any
    ) -> Any:
        """Read back what :meth:`save` wrote. ``details`` is what ``save`` reported.

        Core refuses to call ``load`` of an unsafe serializer (``safe = False``) without trust, so a
        safe serializer only needs ``trust`` when part of a file is unsafe (skops' unknown types):
        then it must refuse, naming what is untrusted, unless ``trust`` is true.
        """


# --- helpers for serializer authors --------------------------------------------------------------


def is_json_exact(value: Any) -> bool:
    """True for values JSON holds exactly, so a manifest round trip gives them back unchanged."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(is_json_exact(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json_exact(v) for k, v in value.items())
    return False


def jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays and nested containers into plain JSON values.

    Anything JSON cannot hold (objects of other types) becomes its ``str()``: a signature describes a
    model, it is never fed back to it.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and numpy scalars, without importing numpy
    if callable(tolist):
        return jsonable(tolist())
    return str(value)


def tabular_signature(inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The signature of a model taking one feature matrix ``X`` and predicting ``y``.

    ``inputs`` may hold ``n_features`` (becoming ``shape: [null, n]``) and whatever the model knows
    of its columns (``feature_names``...); ``outputs`` describes the prediction (``kind``,
    ``classes``...). A model that does not know its inputs (unfitted) gets ``inputs: []``.
    """
    columns = dict(inputs)
    n_features = columns.pop("n_features", None)
    matrix: dict[str, Any] = {"name": "X"}
    if n_features is not None:
        matrix["shape"] = [None, int(n_features)]
    matrix.update(columns)
    return {"inputs": [matrix] if len(matrix) > 1 else [], "outputs": [{"name": "y", **outputs}]}


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


#: Top-level module of a framework -> the plugin distribution that serializes it. Used only to
#: tell a user what to install.
KNOWN_FRAMEWORK_PLUGINS: dict[str, str] = {
    "sklearn": "modelshelf-sklearn",
    "onnx": "modelshelf-onnx",
    "torch": "modelshelf-torch",
    "xgboost": "modelshelf-xgboost",
    "lightgbm": "modelshelf-lightgbm",
    "catboost": "modelshelf-catboost",
    "keras": "modelshelf-keras",
    "tf_keras": "modelshelf-keras",
    "transformers": "modelshelf-transformers",
}


def choose(obj: Any, serializers: Iterable[Serializer]) -> Serializer:
    """Pick the serializer whose claim on ``obj`` is the most specific."""
    candidates = list(serializers)
    claimed = [(depth, s) for s in candidates if (depth := s.claim_depth(obj)) is not None]
    if not claimed:
        kind = qualified_name(type(obj))
        top = type(obj).__module__.split(".")[0]
        hint = KNOWN_FRAMEWORK_PLUGINS.get(top)
        if hint:
            raise NoSerializer(
                f"no installed serializer handles {kind}: install it with `pip install {hint}`"
            )
        names = ", ".join(sorted(s.name for s in candidates)) or "none"
        raise NoSerializer(
            f"no installed serializer handles {kind} (installed serializers: {names}); pass "
            "file paths to upload files as they are, or install the plugin for this framework"
        )
    best = min(depth for depth, _ in claimed)
    winners = [s for depth, s in claimed if depth == best]
    if len(winners) > 1:
        names = ", ".join(sorted(s.name for s in winners))
        raise AmbiguousSerializer(
            f"{qualified_name(type(obj))} is claimed equally by serializers {names}: "
            "choose one with serializer=NAME (CLI: --serializer NAME)"
        )
    return winners[0]
