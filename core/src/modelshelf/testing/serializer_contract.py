"""The serializer contract: what every framework plugin must do, with real framework objects.

Subclass :class:`SerializerContract` once per serializer, set two class attributes:

* ``serializer``: the serializer's registered name, e.g. ``"sklearn-skops"``.
* ``heavy_modules``: top-level modules (``("sklearn",)``) that importing the plugin and resolving
  claims must not import.

(or override the fixtures they feed, ``serializer_name`` and ``framework_modules``), and override
these fixtures:

* ``model``: a real object of the framework, small and built with a fixed seed.
* ``sample_input``: a fixed input for ``predict``.
* ``predict``: ``predict(obj, sample_input)`` returning something ``numpy.testing`` can compare; it is
  applied to the original and to the loaded object (whatever ``load`` returns with
  ``load_options``).
* ``load_options`` (optional, default ``{}``): keyword options for ``Shelf.load``.

Knob (class attribute): ``opt_in = True`` declares a serializer that claims nothing on purpose
although no other serializer claims ``model`` (say a pickle of any object). Without it, a
serializer with no claims passes only as an alternative format for objects another serializer
claims by default (``sklearn-joblib`` beside ``sklearn-skops``).

The rule for unsafe formats: a serializer whose loading can run code (``safe = False``) is opt-in
(``claims = ()``) unless no safe format can store the objects it claims, and then it says why in
``unsafe_default_reason``.

Two cases hold ``load`` to what a hostile or damaged version may contain. A path taken from
``details`` must be vetted with :func:`modelshelf.serializers.model_file` (refusals are
:class:`~modelshelf.errors.IntegrityError`); a stored file the framework cannot parse must end in
one :class:`~modelshelf.errors.ModelshelfError` line (:func:`modelshelf.serializers.reading` turns
a parser's exception into one).
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import modelshelf
from modelshelf.errors import IntegrityError, InvalidRecord, ModelshelfError, UntrustedFormat
from modelshelf.plugins import get_registry


class _OpenWatcher:
    """Records the paths Python code opens inside ``with watcher as opened:``.

    An audit hook cannot be removed once added, so one hook serves every case and records only
    while a case watches. Native code (a C++ parser opening a file itself) is not seen: the
    contract cases also make every outside file unparseable, see below.
    """

    def __init__(self) -> None:
        self._opened: list[str] | None = None
        self._hooked = False

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self._opened is None or event != "open" or not args:
            return
        if isinstance(args[0], (str, bytes, os.PathLike)):
            self._opened.append(os.path.abspath(os.fsdecode(args[0])))

    def __enter__(self) -> list[str]:
        if not self._hooked:
            sys.addaudithook(self._hook)
            self._hooked = True
        self._opened = []
        return self._opened

    def __exit__(self, *exc_info: object) -> None:
        self._opened = None


_watch_opens = _OpenWatcher()


class SerializerContract:
    """Tests every :class:`~modelshelf.serializers.Serializer` must pass."""

    #: The registered name of the serializer under test (what ``serializer_name`` gives).
    serializer = ""
    #: Top-level modules listing serializers must not import (what ``framework_modules`` gives).
    heavy_modules: tuple[str, ...] = ()
    #: True when the serializer claims nothing on purpose, for objects no serializer claims.
    opt_in = False

    @pytest.fixture
    def serializer_name(self) -> str:
        if not self.serializer:
            raise NotImplementedError("set serializer = '<registered name>' in the contract class")
        return self.serializer

    @pytest.fixture
    def model(self) -> Any:
        raise NotImplementedError("override model: a small real framework object")

    @pytest.fixture
    def sample_input(self) -> Any:
        raise NotImplementedError("override sample_input")

    @pytest.fixture
    def predict(self) -> Callable[[Any, Any], Any]:
        raise NotImplementedError("override predict: predict(obj, sample_input)")

    @pytest.fixture
    def load_options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def framework_modules(self) -> list[str]:
        if not self.heavy_modules:
            raise NotImplementedError(
                "set heavy_modules = ('<framework>', ...) in the contract class"
            )
        return list(self.heavy_modules)

    @pytest.fixture
    def contract_shelf(self, tmp_path: Path) -> Iterator[modelshelf.Shelf]:
        shelf = modelshelf.open(str(tmp_path / "contract-shelf"), cache=tmp_path / "upload-cache")
        try:
            yield shelf
        finally:
            shelf.close()

    def _serializer(self, name: str) -> Any:
        entry = get_registry().serializers().get(name)
        assert entry is not None, (
            f"serializer {name!r} is not registered (is the plugin installed?)"
        )
        return entry

    def test_round_trip_gives_identical_predictions(
        self,
        contract_shelf: modelshelf.Shelf,
        serializer_name: str,
        model: Any,
        sample_input: Any,
        predict: Callable[[Any, Any], Any],
        load_options: dict[str, Any],
        tmp_path: Path,
    ) -> None:
        import numpy.testing

        expected = predict(model, sample_input)
        version = contract_shelf.upload("contract/model", model, serializer=serializer_name)
        # A fresh cache: the load really downloads and verifies every file.
        fresh = modelshelf.open(contract_shelf.url, cache=tmp_path / "fresh-cache")
        loaded = fresh.load(version.ref, trust=True, **load_options)
        numpy.testing.assert_array_equal(
            numpy.asarray(predict(loaded, sample_input)),
            numpy.asarray(expected),
            err_msg=f"{serializer_name}: what load returns must predict exactly as the saved object did",
        )

    def test_manifest_records_framework_and_serializer(
        self, contract_shelf: modelshelf.Shelf, serializer_name: str, model: Any
    ) -> None:
        entry = self._serializer(serializer_name)
        version = contract_shelf.upload("contract/model", model, serializer=serializer_name)
        stored = contract_shelf.get(version.ref)
        assert stored.serializer.name == serializer_name
        assert stored.serializer.distribution == entry.distribution
        assert stored.serializer.safe == entry.serializer.safe
        assert stored.framework is not None, "save must return a SavedModel naming the framework"
        assert stored.framework.name == entry.serializer.framework, (
            f"SavedModel.framework ({stored.framework.name!r}) must be the serializer's framework "
            f"attribute ({entry.serializer.framework!r})"
        )
        assert stored.framework.version and stored.framework.version != "?", (
            "SavedModel.framework_version must be the framework's installed version"
        )
        assert stored.files and stored.total_size == sum(f.size for f in stored.files), (
            "save must write at least one file into the directory"
        )
        # The framework's import name may differ from its distribution (sklearn is scikit-learn,
        # xgboost may be xgboost-cpu): the recorded version must be one of those installed.
        distributions = metadata.packages_distributions().get(
            stored.framework.name, [stored.framework.name]
        )
        installed = set()
        for distribution in distributions:
            try:
                installed.add(metadata.version(distribution))
            except metadata.PackageNotFoundError:
                continue
        assert installed, f"no installed distribution provides {stored.framework.name!r}"
        assert stored.framework.version in installed, (
            f"SavedModel.framework_version {stored.framework.version!r} is not an installed version "
            f"of {stored.framework.name} ({sorted(installed)})"
        )

    def test_default_claim_resolves_to_this_serializer(
        self, serializer_name: str, model: Any
    ) -> None:
        """A serializer claims its objects by default, or is opt-in on purpose: an alternative format
        for objects another serializer claims, or declared with ``opt_in = True``."""
        from modelshelf.serializers import choose, qualified_name

        entry = self._serializer(serializer_name)
        serializer = entry.serializer
        others = [
            e.serializer
            for e in get_registry().serializers().values()
            if e.serializer is not serializer
        ]
        kind = qualified_name(type(model))
        if self.opt_in:
            assert not serializer.claims, (
                f"{serializer_name} is declared opt_in but claims {', '.join(serializer.claims)} by default"
            )
            pytest.skip(f"{serializer_name} is declared opt-in")
        if not serializer.claims:
            claimed_by = [s.name for s in others if s.claim_depth(model) is not None]
            assert claimed_by, (
                f"{serializer_name} claims nothing, and no other serializer claims {kind}: "
                f"shelf.upload(name, model) fails without serializer={serializer_name!r}. Add the "
                "qualified names of the classes it stores to claims (see type(model).__mro__), or "
                "set opt_in = True in this contract class if it is opt-in on purpose"
            )
            pytest.skip(f"{serializer_name} is opt-in: an alternative to {', '.join(claimed_by)}")
        assert serializer.claim_depth(model) is not None, (
            f"{serializer_name} claims {', '.join(serializer.claims)}, none of which is in the MRO of "
            f"the contract's model ({', '.join(qualified_name(c) for c in type(model).__mro__)}): "
            "claims are spelled module.qualname of the defining module, private modules included"
        )
        chosen = choose(model, [serializer, *others])
        assert chosen.name == serializer_name, (
            f"{kind} is claimed more specifically by {chosen.name} than by {serializer_name}: the "
            "claim matching earliest in type(obj).__mro__ wins"
        )

    def test_unsafe_format_is_opt_in_or_says_why(self, serializer_name: str) -> None:
        """An unsafe serializer (``safe = False``) claims nothing by default, unless no safe format
        can store its objects and ``unsafe_default_reason`` says why."""
        from modelshelf.plugin_checks import unsafe_default_problem

        problem = unsafe_default_problem(self._serializer(serializer_name).serializer)
        assert problem is None, problem

    def test_listing_serializers_imports_no_framework(
        self, serializer_name: str, framework_modules: list[str]
    ) -> None:
        entry = self._serializer(serializer_name)
        script = textwrap.dedent(
            f"""
            import sys
            from modelshelf.plugins import get_registry
            get_registry().serializers()
            get_registry().infos()
            loaded = sorted(m for m in {framework_modules!r} if m in sys.modules)
            assert not loaded, f"listing serializers imported {{loaded}}"
            assert {entry.serializer.name!r} in get_registry().serializers()
            """
        )
        # Only this serializer's plugin is loaded, so another plugin's fault cannot fail this test.
        env = {**os.environ, "MODELSHELF_LOAD_PLUGINS": entry.plugin}
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=False, env=env
        )
        assert result.returncode == 0, result.stderr

    def test_unsafe_format_needs_trust(
        self,
        contract_shelf: modelshelf.Shelf,
        serializer_name: str,
        model: Any,
        load_options: dict[str, Any],
        tmp_path: Path,
    ) -> None:
        entry = self._serializer(serializer_name)
        if entry.serializer.safe:
            pytest.skip(f"{serializer_name} is a safe format")
        version = contract_shelf.upload("contract/model", model, serializer=serializer_name)
        fresh = modelshelf.open(contract_shelf.url, cache=tmp_path / "untrusted-cache")
        with pytest.raises(UntrustedFormat):
            fresh.load(version.ref, **load_options)
        # Refused before any download: nothing reached the cache.
        assert not (tmp_path / "untrusted-cache" / "blobs").exists(), (
            "an unsafe version must be refused before anything is downloaded"
        )
        assert fresh.load(version.ref, trust=True, **load_options) is not None

    # --- hostile and damaged versions ---------------------------------------------------------

    def _saved_version(self, serializer_name: str, model: Any, directory: Path) -> tuple[Any, Any]:
        """``(serializer, SavedModel)`` after saving ``model`` into the new ``directory``."""
        serializer = self._serializer(serializer_name).serializer
        if serializer.files(model) is not None:
            pytest.skip(f"{serializer_name} stores files as they are: load parses nothing")
        directory.mkdir()
        return serializer, serializer.save(model, directory)

    def test_details_paths_outside_the_version_are_refused(
        self, serializer_name: str, model: Any, load_options: dict[str, Any], tmp_path: Path
    ) -> None:
        """Every details value naming a version file, replaced by a path outside the version,
        a non-string or a missing file, is refused with one IntegrityError line (or ignored,
        when the serializer does not take that path from details), and never opened."""
        version = tmp_path / "snapshot" / "version"
        version.parent.mkdir()
        serializer, saved = self._saved_version(serializer_name, model, version)
        stored = {p.relative_to(version).as_posix() for p in version.rglob("*")}
        keys = [k for k, v in saved.details.items() if isinstance(v, str) and v in stored]
        if not keys:
            pytest.skip(f"{serializer_name} names no version file in its details")
        # Not a model of any format: a serializer that opened it would fail to parse it, which
        # is an InvalidModel, not the IntegrityError a refused path gives.
        sentinel = tmp_path / "snapshot" / "outside.bin"
        sentinel.write_bytes(b"modelshelf contract sentinel: this file must never be opened\n" * 64)
        hostile: list[object] = [
            "/etc/passwd",
            str(sentinel),
            "../outside.bin",
            42,
            None,
            ["model"],
            "missing.bin",
        ]
        for key in keys:
            for value in hostile:
                details = {**saved.details, key: value}
                with _watch_opens as opened:
                    try:
                        serializer.load(version, details=details, trust=True, **load_options)
                    except ModelshelfError as exc:
                        assert isinstance(exc, (IntegrityError, InvalidRecord)), (
                            f"details[{key!r}] = {value!r} gave {type(exc).__name__} ({exc}), "
                            "not the IntegrityError of modelshelf.serializers.model_file: was the "
                            "path opened?"
                        )
                        assert str(exc).strip() and "\n" not in str(exc), f"not one line: {exc!r}"
                outside = [p for p in opened if p in (str(sentinel), "/etc/passwd")]
                assert not outside, f"details[{key!r}] = {value!r} made load open {outside}"

    def test_damaged_model_files_give_one_modelshelf_error_line(
        self, serializer_name: str, model: Any, load_options: dict[str, Any], tmp_path: Path
    ) -> None:
        """A version file that passed its sha256 check but does not parse (cut short, or empty)
        ends in one ModelshelfError line, never a raw framework exception; a file the format can
        do without may load, but damaging every file must not go unnoticed."""
        original = tmp_path / "original"
        serializer, saved = self._saved_version(serializer_name, model, original)
        files = sorted(
            p.relative_to(original).as_posix() for p in original.rglob("*") if p.is_file()
        )
        refused = []
        for index, name in enumerate(files):
            for how in ("truncated", "empty"):
                damaged = tmp_path / f"damaged-{index}-{how}"
                shutil.copytree(original, damaged)
                data = (damaged / name).read_bytes()
                (damaged / name).write_bytes(data[: len(data) // 2] if how == "truncated" else b"")
                try:
                    serializer.load(damaged, details=saved.details, trust=True, **load_options)
                except ModelshelfError as exc:
                    assert "\n" not in str(exc), f"{how} {name}: not one line: {exc}"
                    refused.append(name)
                except Exception as exc:
                    kind = f"{type(exc).__module__}.{type(exc).__name__}"
                    pytest.fail(f"{how} {name} gave a raw {kind}: {exc}")
        assert refused, f"{serializer_name} loaded every damaged copy of {files} without noticing"
