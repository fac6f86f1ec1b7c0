"""The contracts catch what they promise: a deliberately broken backend or serializer fails them
with a message naming the broken promise, and the built-in backend passes the same cases."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import modelshelf
import pytest
from modelshelf.default_plugins.filesystem import FileSystemStorage
from modelshelf.plugins import get_registry
from modelshelf.serializers import SavedModel, Serializer
from modelshelf.storage import ObjectInfo
from modelshelf.testing import SerializerContract, StorageContract


class Contract(StorageContract):
    """The contract's cases, called directly on a given storage."""

    listing_keys = 1005


@pytest.fixture
def contract() -> Contract:
    return Contract()


class StopsAfterOnePage(FileSystemStorage):
    """Forgets pagination: only the first 1,000 answers, as one request to S3 would give."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return itertools.islice(super().list(prefix), 1000)

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        return itertools.islice(super().list_prefixes(prefix), 1000)


class VisibleBeforeWritten(FileSystemStorage):
    """Creates the key at once and writes the data in a second step, as a naive upload would."""

    def put_file(self, key: str, path: Path) -> None:
        half = path.with_name(path.name + ".half")
        data = path.read_bytes()
        half.write_bytes(data[: len(data) // 2])
        super().put_file(key, half)
        time.sleep(0.5)  # the rest of the upload still on its way
        super().put_file(key, path)

    def put_blob(self, key: str, path: Path, sha256: str, size: int) -> None:
        self.put_file(key, path)


def test_a_listing_that_stops_after_one_page_fails(contract: Contract, tmp_path: Path) -> None:
    with pytest.raises(
        AssertionError, match=r"however many \(pagination is the backend's job\): 1000 of 1005"
    ):
        contract.test_list_goes_past_the_first_page(
            StopsAfterOnePage(tmp_path.as_uri(), fsync=False)
        )


@pytest.mark.parametrize("method", ["put_file", "put_blob"])
def test_a_key_visible_before_its_data_fails(
    contract: Contract, tmp_path: Path, method: str
) -> None:
    storage = VisibleBeforeWritten((tmp_path / "shelf").as_uri(), fsync=False)
    with pytest.raises(
        AssertionError, match=f"{method} made .* visible before its data was written"
    ):
        contract.test_a_reader_never_sees_a_partial_object(storage, tmp_path, method)


def test_the_builtin_backend_keeps_these_promises(contract: Contract, tmp_path: Path) -> None:
    contract.test_list_goes_past_the_first_page(FileSystemStorage((tmp_path / "a").as_uri()))
    for method in ("put_file", "put_blob"):
        contract.test_a_reader_never_sees_a_partial_object(
            FileSystemStorage((tmp_path / "b").as_uri()), tmp_path, method
        )
    contract.test_plugin_import_is_light((tmp_path / "c").as_uri())


# --- a plugin that imports its SDK at import time, as an installed distribution ---------------------

PLUGIN = """
import modelshelf
{sdk_import}

def _open(url, **options):
    from modelshelf.default_plugins.filesystem import FileSystemStorage
    return FileSystemStorage(url.replace("{scheme}://", "file://", 1))

@modelshelf.hookimpl
def modelshelf_register_storage(register):
    register("{scheme}", _open)
"""

CONTRACT = """
import pytest
from modelshelf.testing import StorageContract

class TestPlugin(StorageContract):
    sdk_modules = ("fake_cloud_sdk",)

    @pytest.fixture
    def storage_url(self, tmp_path):
        return f"{scheme}://{{tmp_path}}/shelf"
"""


def run_contract(tmp_path: Path, scheme: str, sdk_import: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "fake_cloud_sdk.py").write_text("HEAVY = True\n")
    module = f"{scheme}_plugin"
    (site / f"{module}.py").write_text(PLUGIN.format(scheme=scheme, sdk_import=sdk_import))
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[modelshelf]\n{scheme} = {module}\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "pytest.ini").write_text("[pytest]\n")
    (tests / f"test_{scheme}_contract.py").write_text(CONTRACT.format(scheme=scheme))
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("MODELSHELF_LOAD_PLUGINS", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "plugin_import_is_light",
            str(tests),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tests,
        check=False,
        timeout=300,
    )


def test_a_plugin_importing_its_sdk_at_import_time_fails(tmp_path: Path) -> None:
    result = run_contract(tmp_path, "heavy", "import fake_cloud_sdk")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "importing plugin heavy (heavy_plugin) imported fake_cloud_sdk: a plugin must import its SDK inside the storage factory"
        in result.stdout
    )


def test_a_plugin_importing_its_sdk_lazily_passes(tmp_path: Path) -> None:
    result = run_contract(tmp_path, "light", "")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


# --- serializers -------------------------------------------------------------------------------------


class Weights:
    """A model nobody else claims."""

    def __init__(self, values: list[float]) -> None:
        self.values = values


class _Base(Serializer):
    framework = "weights"
    format = "text"

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        (directory / "w.txt").write_text(" ".join(map(str, obj.values)))
        return SavedModel("weights", "1.0")

    def load(self, directory: Path, *, details: Any, trust: bool = False, **options: Any) -> Any:
        return Weights([float(v) for v in (directory / "w.txt").read_text().split()])


class ClaimsNothing(_Base):
    name = "weights-forgot-claims"


class UnsafeByDefault(_Base):
    name = "weights-unsafe-default"
    safe = False
    claims = (f"{__name__}.Weights",)


class UnsafeByDefaultSayingWhy(UnsafeByDefault):
    name = "weights-unsafe-with-reason"
    unsafe_default_reason = "no safe format keeps these objects"


class Plugin:
    def __init__(self, serializer: Serializer) -> None:
        self.serializer = serializer

    @modelshelf.hookimpl
    def modelshelf_register_serializers(self, register):  # type: ignore[no-untyped-def]
        register(self.serializer)


@pytest.fixture
def registered(request: pytest.FixtureRequest) -> Iterator[str]:
    serializer: Serializer = request.param()
    registry = get_registry()
    registry.register(Plugin(serializer), f"selftest-{serializer.name}", "modelshelf-selftest")
    try:
        yield serializer.name
    finally:
        registry.unregister(f"selftest-{serializer.name}")


@pytest.mark.parametrize("registered", [ClaimsNothing], indirect=True)
def test_a_serializer_with_no_claims_fails(registered: str) -> None:
    with pytest.raises(
        AssertionError, match="claims nothing, and no other serializer claims .*Weights"
    ):
        SerializerContract().test_default_claim_resolves_to_this_serializer(
            registered, Weights([1.0])
        )


@pytest.mark.parametrize("registered", [ClaimsNothing], indirect=True)
def test_a_serializer_declared_opt_in_passes(registered: str) -> None:
    class OptIn(SerializerContract):
        opt_in = True

    with pytest.raises(pytest.skip.Exception, match="declared opt-in"):
        OptIn().test_default_claim_resolves_to_this_serializer(registered, Weights([1.0]))


@pytest.mark.parametrize("registered", [UnsafeByDefault], indirect=True)
def test_an_unsafe_serializer_claiming_by_default_fails(registered: str) -> None:
    with pytest.raises(
        AssertionError, match="is unsafe .* by default without an unsafe_default_reason"
    ):
        SerializerContract().test_unsafe_format_is_opt_in_or_says_why(registered)


@pytest.mark.parametrize("registered", [UnsafeByDefaultSayingWhy], indirect=True)
def test_an_unsafe_default_that_says_why_passes(registered: str) -> None:
    SerializerContract().test_unsafe_format_is_opt_in_or_says_why(registered)
    SerializerContract().test_default_claim_resolves_to_this_serializer(registered, Weights([1.0]))


def test_the_checks_are_quoted_by_modelshelf_plugins_check() -> None:
    """The unsafe-default rule is the one ``modelshelf plugins --check`` applies."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import modelshelf
        from modelshelf.plugins import get_registry
        from test_contract_selftest import Plugin, UnsafeByDefault
        get_registry().register(Plugin(UnsafeByDefault()), "unsafe", "modelshelf-selftest")
        print("\\n".join(get_registry().check()))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert (
        "plugin unsafe (modelshelf-selftest): serializer 'weights-unsafe-default' is unsafe"
        in result.stdout
    )
