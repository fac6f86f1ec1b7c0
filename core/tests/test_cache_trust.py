"""The local cache is never trusted blindly: every use of a cached blob re-verifies it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import modelshelf
import pytest
from modelshelf.cache import Cache
from modelshelf.errors import IntegrityError
from modelshelf.plugins import get_registry
from modelshelf.serializers import SavedModel, Serializer
from modelshelf.shelf import Problem, Shelf
from modelshelf.transfer import hash_file

from .conftest import CountingStorage  # type: ignore[import-not-found]


class _Payload:
    """An in-memory object saved as one file and loaded back as bytes (not as a path)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class _BytesSerializer(Serializer):
    name = "test-bytes"
    framework = "testing"
    format = "raw"
    claims: ClassVar[tuple[str, ...]] = (f"{__name__}._Payload",)

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        (directory / "payload.bin").write_bytes(obj.data)
        return SavedModel("testing", "1.0")

    def load(self, directory: Path, *, details: Any, trust: bool = False, **options: Any) -> Any:
        return (directory / "payload.bin").read_bytes()


class _DirectorySerializer(_BytesSerializer):
    """A third-party serializer that, like the built-in ``files``, returns the directory it got."""

    name = "test-directory"
    claims: ClassVar[tuple[str, ...]] = ()  # chosen only by serializer="test-directory"

    def load(self, directory: Path, *, details: Any, trust: bool = False, **options: Any) -> Any:
        return directory


class _Plugin:
    @modelshelf.hookimpl
    def modelshelf_register_serializers(self, register):  # type: ignore[no-untyped-def]
        register(_BytesSerializer())
        register(_DirectorySerializer())


@pytest.fixture
def bytes_plugin() -> Iterator[None]:
    registry = get_registry()
    registry.register(_Plugin(), "test-bytes-plugin", "modelshelf-test-bytes")
    try:
        yield
    finally:
        registry.unregister("test-bytes-plugin")


def _rewrite_in_place(path: Path) -> None:
    """Change a file's bytes without changing its size or inode, as root or after a chmod can."""
    os.chmod(path, 0o644)
    with open(path, "r+b") as handle:
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0xFF]))


def _blob_reads(shelf: Shelf) -> list[str]:
    return [
        key
        for call, key in shelf.storage.calls
        if call in ("read_stream", "local_path") and key.startswith("blobs/")
    ]  # type: ignore[attr-defined]


def _files_below(root: Path) -> list[str]:
    return (
        sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())
        if root.exists()
        else []
    )


# --- download --------------------------------------------------------------------------------


@pytest.mark.parametrize("link", [False, True], ids=["copy", "link"])
def test_download_refetches_a_corrupted_cached_blob(
    counting_shelf: Shelf, model_file: Path, tmp_path: Path, link: bool
) -> None:
    entry = counting_shelf.upload("m", model_file).files[0]
    counting_shelf.download("m", tmp_path / "first", link=link, keep_cache=True)
    cached = counting_shelf.cache.blob_path(entry.sha256)
    _rewrite_in_place(cached)
    counting_shelf.storage.calls.clear()  # type: ignore[attr-defined]
    out = counting_shelf.download("m", tmp_path / "second", link=link)
    assert (out / "model.bin").read_bytes() == model_file.read_bytes()
    assert len(_blob_reads(counting_shelf)) == 1, "the bad cached blob is fetched again, once"
    assert hash_file(cached) == (entry.sha256, entry.size), "the cache holds the good blob again"


def test_bad_cache_and_bad_shelf_copy_is_one_line_and_writes_nothing(
    local_shelf: Shelf, model_file: Path, tmp_path: Path
) -> None:
    entry = local_shelf.upload("m", model_file).files[0]
    local_shelf.download("m", tmp_path / "first", keep_cache=True)
    _rewrite_in_place(local_shelf.cache.blob_path(entry.sha256))
    _rewrite_in_place(tmp_path / "shelf" / "blobs" / "sha256" / entry.sha256[:2] / entry.sha256)
    dest = tmp_path / "dest"
    for call in (
        lambda: local_shelf.download("m", dest),
        lambda: local_shelf.download("m", dest, link=True),
        lambda: local_shelf.load("m"),
    ):
        with pytest.raises(IntegrityError) as caught:
            call()
        assert "\n" not in str(caught.value)
        assert _files_below(dest) == [], (
            "nothing corrupt (nor any temporary file) reaches the destination"
        )
        assert not local_shelf.cache.blob_path(entry.sha256).exists(), (
            "the bad cached blob was evicted"
        )


def test_download_exposes_no_file_until_every_file_verified(
    local_shelf: Shelf, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "a.bin").write_bytes(os.urandom(1000))
    (model / "z.bin").write_bytes(os.urandom(1000))
    version = local_shelf.upload("m", model)
    local_shelf.download("m", tmp_path / "first", keep_cache=True)
    last = next(f for f in version.files if f.path == "z.bin")
    _rewrite_in_place(local_shelf.cache.blob_path(last.sha256))
    _rewrite_in_place(tmp_path / "shelf" / "blobs" / "sha256" / last.sha256[:2] / last.sha256)
    with pytest.raises(IntegrityError):
        local_shelf.download("m", tmp_path / "dest")
    assert _files_below(tmp_path / "dest") == []


# --- load ------------------------------------------------------------------------------------


def test_load_refetches_a_corrupted_cached_blob(bytes_plugin: None, counting_shelf: Shelf) -> None:
    payload = os.urandom(5000)
    entry = counting_shelf.upload("m", _Payload(payload)).files[0]
    assert counting_shelf.load("m") == payload
    _rewrite_in_place(counting_shelf.cache.blob_path(entry.sha256))
    counting_shelf.storage.calls.clear()  # type: ignore[attr-defined]
    assert counting_shelf.load("m") == payload
    assert len(_blob_reads(counting_shelf)) == 1


def test_load_rebuilds_a_snapshot_entry_that_is_not_the_verified_blob(
    bytes_plugin: None, counting_shelf: Shelf
) -> None:
    payload = os.urandom(5000)
    counting_shelf.upload("m", _Payload(payload))
    assert counting_shelf.load("m") == payload
    [entry_path] = (counting_shelf.cache.root / "snapshots").glob("*/payload.bin")
    replacement = entry_path.with_name("other")
    replacement.write_bytes(b"x" * 5000)
    os.replace(replacement, entry_path)  # a new inode in the snapshot; the blob itself is intact
    counting_shelf.storage.calls.clear()  # type: ignore[attr-defined]
    assert counting_shelf.load("m") == payload
    assert _blob_reads(counting_shelf) == [], "the intact cached blob is reused, not fetched again"


def test_editing_a_loaded_raw_file_never_poisons_later_loads(
    counting_shelf: Shelf, model_file: Path, tmp_path: Path
) -> None:
    original = model_file.read_bytes()
    counting_shelf.upload("m", model_file)
    loaded = counting_shelf.load("m")
    _rewrite_in_place(loaded)  # e.g. a fine-tuning script saving weights in place, as root
    counting_shelf.storage.calls.clear()  # type: ignore[attr-defined]
    again = counting_shelf.load("m")
    assert again.read_bytes() == original
    assert loaded.read_bytes() != original, "the edited copy is the user's own and stays edited"
    assert _blob_reads(counting_shelf) == [], "the edit never reached the cache"
    shutil.copytree(tmp_path / "shelf", tmp_path / "copy")
    other = Shelf(CountingStorage(str(tmp_path / "copy")), cache=Cache(counting_shelf.cache.root))
    assert other.load("m").read_bytes() == original
    assert _blob_reads(other) == []


def test_a_third_party_path_returning_load_is_a_private_copy(
    bytes_plugin: None, local_shelf: Shelf
) -> None:
    payload = os.urandom(3000)
    local_shelf.upload("m", _Payload(payload), serializer="test-directory")
    loaded = local_shelf.load("m")
    _rewrite_in_place(loaded / "payload.bin")
    assert (local_shelf.load("m") / "payload.bin").read_bytes() == payload


# --- verify ----------------------------------------------------------------------------------


def _two_cached_blobs(shelf: Shelf, tmp_path: Path) -> tuple[str, str]:
    shas = []
    for name in ("good", "bad"):
        (tmp_path / f"{name}.bin").write_bytes(os.urandom(2000))
        shas.append(shelf.upload(name, tmp_path / f"{name}.bin").files[0].sha256)
        shelf.download(name, tmp_path / f"out-{name}", keep_cache=True)
    return shas[0], shas[1]


def test_cache_verify_removes_and_reports_only_bad_blobs(
    local_shelf: Shelf, tmp_path: Path
) -> None:
    good, bad = _two_cached_blobs(local_shelf, tmp_path)
    _rewrite_in_place(local_shelf.cache.blob_path(bad))
    found = local_shelf.cache.verify()
    assert [b.sha256 for b in found] == [bad]
    assert not local_shelf.cache.blob_path(bad).exists()
    assert local_shelf.cache.blob_path(good).exists()
    assert local_shelf.cache.verify() == []


def test_cli_cache_verify(
    run_cli: Any, local_shelf: Shelf, modelshelf_cache: Path, tmp_path: Path
) -> None:
    good, bad = _two_cached_blobs(local_shelf, tmp_path)
    env = {"MODELSHELF_CACHE": str(modelshelf_cache)}
    clean = run_cli("cache", "verify", env=env)
    assert clean.returncode == 0, clean.stderr
    _rewrite_in_place(local_shelf.cache.blob_path(bad))
    result = run_cli("cache", "verify", env=env)
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines() if bad[:16] in line]
    assert len(lines) == 1 and good[:16] not in result.stdout + result.stderr
    assert run_cli("cache", "verify", env=env).returncode == 0


def test_shelf_verify_checks_and_evicts_cached_copies(
    local_shelf: Shelf, model_file: Path, tmp_path: Path
) -> None:
    version = local_shelf.upload("m", model_file)
    local_shelf.download("m", tmp_path / "out", keep_cache=True)
    assert local_shelf.verify() == []
    _rewrite_in_place(local_shelf.cache.blob_path(version.files[0].sha256))
    problems = local_shelf.verify()
    assert [(p.ref, p.path) for p in problems] == [("m:1", "model.bin")]
    assert "cache" in problems[0].what
    assert not local_shelf.cache.blob_path(version.files[0].sha256).exists()
    assert local_shelf.verify() == []
    assert isinstance(problems[0], Problem)


def test_private_copies_are_removed_when_their_process_exits(
    local_shelf: Shelf, model_file: Path, modelshelf_cache: Path
) -> None:
    import subprocess
    import sys

    local_shelf.upload("m", model_file)
    script = (
        "import modelshelf, sys; s = modelshelf.open(sys.argv[1], cache=sys.argv[2]); "
        "p = s.load('m'); assert p.read_bytes() == open(sys.argv[3], 'rb').read(); print(p)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, local_shelf.url, str(modelshelf_cache), str(model_file)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded = Path(done.stdout.strip())
    assert loaded.is_relative_to(modelshelf_cache / "private")
    assert not loaded.exists() and not loaded.parent.exists()
    # A process killed before it could clean up leaves its copy behind: the next private copy
    # on this host removes it.
    leftover = loaded.parent.with_name(loaded.parent.name.split("-")[0] + "-999999999-dead")
    (leftover / "x").mkdir(parents=True)
    local_shelf.load("m")
    assert not leftover.exists()
