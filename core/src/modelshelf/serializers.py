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
import contextlib
import math
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import attrs

from .errors import (
    AmbiguousSerializer,
    IntegrityError,
    InvalidModel,
    InvalidRecord,
    ModelshelfError,
    NoSerializer,
)
from .known_plugins import serializer_plugin_for
from .refs import check_file_path


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
    #: ``False`` when this object's files can run code on load although the serializer is safe
    #: in general (a composite is only as safe as its least safe part); ``None``: as the class says.
    safe: bool | None = None


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
    #: Qualified class names this serializer claims by default (``module.qualname`` of a class in
    #: ``type(obj).__mro__``, e.g. ``"sklearn.base.BaseEstimator"``). An opt-in serializer
    #: (selected only by ``serializer=NAME``) leaves this empty.
    claims: ClassVar[tuple[str, ...]] = ()
    #: Only for an unsafe serializer (``safe = False``) that claims classes by default: why no safe
    #: format can store these objects (a program, not only weights). Unsafe formats are opt-in
    #: otherwise; ``SerializerContract`` and ``modelshelf plugins --check`` enforce it.
    unsafe_default_reason: ClassVar[str] = ""
    #: ``False`` for serializers of plain files, whose manifests name no framework.
    records_framework: ClassVar[bool] = True

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
        them here so that a 10 GB checkpoint is hashed and uploaded in place, never copied first;
        :meth:`describe` then tells what :meth:`save` would have returned.
        """
        return None

    def describe(self, obj: Any) -> SavedModel:
        """What to record for an object uploaded through :meth:`files` (no :meth:`save` call)."""
        return SavedModel(self.framework, "")

    def unsafe_part(self, details: Mapping[str, Any]) -> str:
        """Names what needs trust in a stored version, for the message that asks for it."""
        return f"{self.format} ({self.name})"

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
    tolist = getattr(
        value, "tolist", None
    )  # numpy arrays and numpy scalars, without importing numpy
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


def model_file(
    directory: Path, relative: object, *, kind: Literal["file", "directory"] = "file"
) -> Path:
    """The path of the version file (or subdirectory) ``relative`` below ``directory``, vetted.

    ``directory`` is what core hands to :meth:`Serializer.load`: it holds exactly the version's
    verified files, hardlinked or copied, and no symbolic link. ``relative`` usually comes from
    the manifest's ``details``, which anyone able to write the shelf controls, so nothing may be
    opened before it is checked: it must be a str that :func:`modelshelf.refs.check_file_path`
    accepts, every step below ``directory`` must exist and be no symbolic link, and the last one a
    regular file (or a directory when ``kind="directory"``). Anything else raises
    :class:`~modelshelf.errors.IntegrityError`, one line naming the refused value.
    """
    try:
        checked = check_file_path(relative)
    except InvalidRecord as exc:
        raise IntegrityError(
            f"refusing to open {_shown(relative)} named by this version's details: {exc}"
        ) from None
    path = directory
    for part in checked.split("/"):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            raise IntegrityError(
                f"this version has no {kind} {_shown(checked)} (named by its details): the manifest "
                "does not match its files"
            ) from None
        # The load directory never holds links, so a link was planted to lead somewhere else.
        if stat.S_ISLNK(mode):
            raise IntegrityError(
                f"refusing to open {_shown(checked)}: {_shown(path.relative_to(directory).as_posix())} "
                "is a symbolic link, and a version's files never are"
            )
    wanted = stat.S_ISDIR(mode) if kind == "directory" else stat.S_ISREG(mode)
    if not wanted:
        raise IntegrityError(f"refusing to open {_shown(checked)}: it is not a regular {kind}")
    return path


def check_options(
    serializer: str, step: str, options: Mapping[str, Any], accepted: Iterable[str]
) -> None:
    """Refuse the options ``serializer`` does not understand at ``step`` (``"save"``, ``"load"``)
    with one :class:`~modelshelf.errors.ModelshelfError` line naming them and what is accepted,
    instead of silently ignoring a typo."""
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ModelshelfError(
            f"{serializer} does not understand {step} option(s) {', '.join(unknown)} "
            f"(accepted: {', '.join(sorted(accepted)) or 'none'})"
        )


@contextlib.contextmanager
def reading(file: str, library: str) -> Iterator[None]:
    """Turn a framework's failure to parse version file (or part) ``file`` into one
    :class:`~modelshelf.errors.InvalidModel` line.

    A file can pass its sha256 check and still be unparseable: it was uploaded that way, or a
    hostile writer stored garbage with a matching manifest. Framework parsers then raise whatever
    they raise (``zipfile.BadZipFile``, ``SafetensorError``, multi-line C++ messages, even a Rust
    panic, which is no ``Exception``); the user gets one line naming the file, the library and
    the first line of its reason, with the original chained. modelshelf's own errors pass through.

    Wrap only the call that parses stored bytes: an error raised by the caller's own code would be
    misreported as a damaged file.
    """
    try:
        yield
    except ModelshelfError:
        raise
    except BaseException as exc:
        # pyo3's PanicException derives from BaseException so that ``except Exception`` misses it;
        # a panic while parsing a file is still a parse failure. Nothing else that is not an
        # Exception (KeyboardInterrupt, SystemExit) is ours to translate.
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        raise InvalidModel(
            f"could not read {file!r} of this version with {library} ({type(exc).__name__}: "
            f"{_first_line(exc)}): the stored file is damaged or was not written by this "
            "serializer"
        ) from exc


def _shown(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _first_line(exc: BaseException) -> str:
    line = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "no message")
    return line if len(line) <= 200 else line[:197] + "..."


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def choose(obj: Any, serializers: Iterable[Serializer]) -> Serializer:
    """Pick the serializer whose claim on ``obj`` is the most specific."""
    candidates = list(serializers)
    claimed = [(depth, s) for s in candidates if (depth := s.claim_depth(obj)) is not None]
    if not claimed:
        kind = qualified_name(type(obj))
        hint = serializer_plugin_for(type(obj).__module__)
        from .plugins import get_registry

        # An installed plugin that failed, is blocked or conflicts explains it better than
        # advice to install it.
        why = get_registry().explain_unclaimed(obj, hint)
        if why:
            raise NoSerializer(f"no serializer handles {kind}: {why}")
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
