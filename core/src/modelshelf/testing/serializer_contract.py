"""The serializer contract: what every framework plugin must do, with real framework objects.

Subclass :class:`SerializerContract` once per serializer and override these fixtures:

* ``serializer_name``: the serializer's registered name, e.g. ``"sklearn-skops"``.
* ``model``: a real object of the framework, small and built with a fixed seed.
* ``sample_input``: a fixed input for ``predict``.
* ``predict``: ``predict(obj, sample_input)`` returning something ``numpy.testing`` can compare; it is
  applied to the original and to the loaded object (whatever ``load`` returns with
  ``load_options``).
* ``load_options`` (optional, default ``{}``): keyword options for ``Shelf.load``.
* ``framework_modules``: top-level modules (``["sklearn"]``) that importing the plugin and
  resolving claims must not import.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import modelshelf
from modelshelf.errors import UntrustedFormat
from modelshelf.plugins import get_registry


class SerializerContract:
    """Tests every :class:`~modelshelf.serializers.Serializer` must pass."""

    @pytest.fixture
    def serializer_name(self) -> str:
        raise NotImplementedError("override serializer_name")

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
        raise NotImplementedError("override framework_modules, e.g. ['sklearn']")

    @pytest.fixture
    def contract_shelf(self, tmp_path: Path) -> Iterator[modelshelf.Shelf]:
        shelf = modelshelf.open(str(tmp_path / "contract-shelf"), cache=tmp_path / "upload-cache")
        try:
            yield shelf
        finally:
            shelf.close()

    def _serializer(self, name: str) -> Any:
        entry = get_registry().serializers().get(name)
        assert entry is not None, f"serializer {name!r} is not registered (is the plugin installed?)"
        return entry

    def test_round_trip_gives_identical_predictions(
        self, contract_shelf: modelshelf.Shelf, serializer_name: str, model: Any, sample_input: Any,
        predict: Callable[[Any, Any], Any], load_options: dict[str, Any], tmp_path: Path,
    ) -> None:
        import numpy.testing

        expected = predict(model, sample_input)
        version = contract_shelf.upload("contract/model", model, serializer=serializer_name)
        # A fresh cache: the load really downloads and verifies every file.
        fresh = modelshelf.open(contract_shelf.url, cache=tmp_path / "fresh-cache")
        loaded = fresh.load(version.ref, trust=True, **load_options)
        numpy.testing.assert_array_equal(numpy.asarray(predict(loaded, sample_input)), numpy.asarray(expected))

    def test_manifest_records_framework_and_serializer(
        self, contract_shelf: modelshelf.Shelf, serializer_name: str, model: Any
    ) -> None:
        entry = self._serializer(serializer_name)
        version = contract_shelf.upload("contract/model", model, serializer=serializer_name)
        stored = contract_shelf.get(version.ref)
        assert stored.serializer.name == serializer_name
        assert stored.serializer.distribution == entry.distribution
        assert stored.serializer.safe == entry.serializer.safe
        assert stored.framework is not None
        assert stored.framework.name == entry.serializer.framework
        assert stored.framework.version and stored.framework.version != "?"
        assert stored.files and stored.total_size == sum(f.size for f in stored.files)
        # The framework's import name may differ from its distribution (sklearn is scikit-learn,
        # xgboost may be xgboost-cpu): the recorded version must be one of those installed.
        distributions = metadata.packages_distributions().get(stored.framework.name, [stored.framework.name])
        installed = set()
        for distribution in distributions:
            try:
                installed.add(metadata.version(distribution))
            except metadata.PackageNotFoundError:
                continue
        assert installed, f"no installed distribution provides {stored.framework.name!r}"
        assert stored.framework.version in installed

    def test_default_claim_resolves_to_this_serializer(self, serializer_name: str, model: Any) -> None:
        entry = self._serializer(serializer_name)
        if not entry.serializer.claims:
            pytest.skip(f"{serializer_name} is opt-in: it claims nothing by default")
        from modelshelf.serializers import choose

        chosen = choose(model, (e.serializer for e in get_registry().serializers().values()))
        assert chosen.name == serializer_name

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
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, env=env)
        assert result.returncode == 0, result.stderr

    def test_unsafe_format_needs_trust(
        self, contract_shelf: modelshelf.Shelf, serializer_name: str, model: Any,
        load_options: dict[str, Any], tmp_path: Path,
    ) -> None:
        entry = self._serializer(serializer_name)
        if entry.serializer.safe:
            pytest.skip(f"{serializer_name} is a safe format")
        version = contract_shelf.upload("contract/model", model, serializer=serializer_name)
        fresh = modelshelf.open(contract_shelf.url, cache=tmp_path / "untrusted-cache")
        with pytest.raises(UntrustedFormat):
            fresh.load(version.ref, **load_options)
        # Refused before any download: nothing reached the cache.
        assert not (tmp_path / "untrusted-cache" / "blobs").exists()
        assert fresh.load(version.ref, trust=True, **load_options) is not None
