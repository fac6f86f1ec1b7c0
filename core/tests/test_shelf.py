"""The registry protocol on the filesystem backend: uploads, files, errors, gc, verify, cache."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

import modelshelf
import pytest
from modelshelf import convert
from modelshelf.errors import (
    AliasNotFound,
    IntegrityError,
    InvalidName,
    InvalidRecord,
    ModelNotFound,
    ModelshelfError,
    NoSerializer,
    SchemaTooNew,
    UnknownScheme,
    UntrustedFormat,
    VersionNotFound,
)
from modelshelf.plugins import get_registry
from modelshelf.serializers import SavedModel, Serializer


def test_directory_upload_keeps_structure_and_extra_files(local_shelf, tmp_path: Path) -> None:
    model = tmp_path / "tokenizer"
    (model / "nested" / "deeper").mkdir(parents=True)
    (model / "vocab.txt").write_text("a\nb\n")
    (model / "nested" / "deeper" / "merges.txt").write_text("x y\n")
    notes = tmp_path / "notes.md"
    notes.write_text("trained on march data")
    version = local_shelf.upload("tok", model, extra_files=[notes], description="tiny")
    assert [f.path for f in version.files] == [
        "extra/notes.md",
        "nested/deeper/merges.txt",
        "vocab.txt",
    ]
    out = local_shelf.download("tok", tmp_path / "out")
    assert (out / "nested" / "deeper" / "merges.txt").read_text() == "x y\n"
    assert (out / "extra" / "notes.md").read_text() == "trained on march data"
    assert local_shelf.load("tok") == local_shelf.load("tok:1")
    assert (local_shelf.load("tok") / "vocab.txt").read_text() == "a\nb\n"


def test_several_paths_and_single_file_load(local_shelf, tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "a.json").write_text("{}")
    (tmp_path / "w.bin").write_bytes(b"\x00" * 10)
    version = local_shelf.upload("multi", [tmp_path / "w.bin", tmp_path / "cfg"])
    assert sorted(f.path for f in version.files) == ["cfg/a.json", "w.bin"]
    single = local_shelf.upload("single", tmp_path / "w.bin")
    loaded = local_shelf.load(single.ref)
    assert loaded.name == "w.bin" and loaded.read_bytes() == b"\x00" * 10


def test_identical_content_is_stored_once(counting_shelf, model_file: Path) -> None:
    counting_shelf.upload("a", model_file)
    counting_shelf.storage.calls.clear()
    counting_shelf.upload("b", model_file)
    assert [c for c in counting_shelf.storage.calls if c[0] == "put_file"] == []
    assert len(list(counting_shelf.storage.list("blobs/"))) == 1


def test_metadata_is_validated(local_shelf, model_file: Path) -> None:
    with pytest.raises(ModelshelfError, match="JSON"):
        local_shelf.upload("m", model_file, metadata={"f": object()})
    with pytest.raises(ModelshelfError, match="finite number"):
        local_shelf.upload("m", model_file, metrics={"auc": float("nan")})
    with pytest.raises(ModelshelfError, match="no such file"):
        local_shelf.upload("m", model_file.parent / "missing.bin")
    assert local_shelf.models() == []


def test_missing_things_give_helpful_errors(local_shelf, model_file: Path) -> None:
    local_shelf.upload("churn", model_file)
    local_shelf.upload("churn", model_file)
    with pytest.raises(VersionNotFound, match="existing versions are 1-2"):
        local_shelf.get("churn:5")
    with pytest.raises(ModelNotFound, match="did you mean churn"):
        local_shelf.get("chrun")
    with pytest.raises(AliasNotFound, match="no alias 'prod'"):
        local_shelf.get("churn@prod")
    with pytest.raises(VersionNotFound):
        local_shelf.set_alias("churn", "prod", 9)
    with pytest.raises(InvalidName, match="churn:3"):
        local_shelf.delete("churn")


def test_alias_lifecycle_and_history(local_shelf, model_file: Path) -> None:
    for _ in range(3):
        local_shelf.upload("m", model_file)
    local_shelf.set_alias("m", "prod", 1)
    moved = local_shelf.set_alias("m", "prod", 3)
    assert moved.previous == 1
    local_shelf.set_alias("m", "staging", 2)
    assert {a: r.version for a, r in local_shelf.aliases("m").items()} == {"prod": 3, "staging": 2}
    local_shelf.remove_alias("m", "staging")
    with pytest.raises(AliasNotFound):
        local_shelf.remove_alias("m", "staging")
    assert list(local_shelf.aliases("m")) == ["prod"]
    with pytest.raises(ModelshelfError, match="target of alias prod"):
        local_shelf.delete("m:3")
    local_shelf.delete("m:3", force=True)
    assert local_shelf.aliases("m") == {}
    history = [(e.action, e.version, e.alias, e.previous) for e in local_shelf.history("m")]
    assert history == [
        ("upload", 1, None, None),
        ("upload", 2, None, None),
        ("upload", 3, None, None),
        ("alias_set", 1, "prod", None),
        ("alias_set", 3, "prod", 1),
        ("alias_set", 2, "staging", None),
        ("alias_removed", None, "staging", 2),
        ("alias_removed", None, "prod", 3),
        ("delete", 3, None, None),
    ]
    assert local_shelf.get("m").version == 2  # latest skips the deleted version


def test_latest_when_everything_is_deleted(local_shelf, model_file: Path) -> None:
    local_shelf.upload("m", model_file)
    local_shelf.delete("m:1")
    with pytest.raises(VersionNotFound, match="every version"):
        local_shelf.get("m")
    assert local_shelf.upload("m", model_file).version == 2


def test_shelf_can_be_moved(local_shelf, model_file: Path, tmp_path: Path) -> None:
    local_shelf.upload("m", model_file)
    local_shelf.set_alias("m", "prod", 1)
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "shelf", moved)
    shutil.rmtree(tmp_path / "shelf")
    other = modelshelf.open(f"file://{moved}", cache=tmp_path / "other-cache")
    assert other.load("m@prod").read_bytes() == model_file.read_bytes()
    text = "".join(p.read_text(errors="replace") for p in moved.rglob("*.json"))
    assert str(tmp_path) not in text  # no absolute path is stored


def _manifest_path(root: Path, name: str, version: int) -> Path:
    return root / "models" / name / "_versions" / f"{version:010d}.json"


def test_manifest_with_escaping_path_is_refused_on_download(
    local_shelf, model_file: Path, tmp_path: Path
) -> None:
    version = local_shelf.upload("m", model_file)
    path = _manifest_path(tmp_path / "shelf", "m", 1)
    raw = json.loads(path.read_bytes())
    raw["files"][0]["path"] = "../../escaped.bin"
    os.chmod(path, 0o644)
    path.write_text(json.dumps(raw))
    dest = tmp_path / "dest" / "inner"
    with pytest.raises(InvalidRecord, match="escaped.bin"):
        local_shelf.download("m:1", dest)
    assert not (tmp_path / "escaped.bin").exists() and not (tmp_path / "dest").exists()
    assert not local_shelf.cache.has(version.files[0])


def test_symlink_in_destination_cannot_redirect_writes(local_shelf, tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "f.txt").write_text("payload")
    local_shelf.upload("m", model)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    with pytest.raises(IntegrityError, match="outside"):
        local_shelf.download("m", dest)
    assert list(outside.iterdir()) == []


def test_newer_shelf_format_is_refused(local_shelf, model_file: Path, tmp_path: Path) -> None:
    local_shelf.upload("m", model_file)
    marker = tmp_path / "shelf" / ".modelshelf.json"
    raw = json.loads(marker.read_text())
    raw["schema"] = 9
    marker.write_text(json.dumps(raw))
    with pytest.raises(SchemaTooNew, match="pip install -U modelshelf"):
        modelshelf.open(str(tmp_path / "shelf")).models()


def test_corrupted_manifest_and_alias_are_reported_by_verify(
    local_shelf, model_file: Path, tmp_path: Path
) -> None:
    local_shelf.upload("m", model_file)
    local_shelf.upload("m", model_file)
    local_shelf.set_alias("m", "prod", 2)
    _manifest_path(tmp_path / "shelf", "m", 1).write_text("{broken")
    (tmp_path / "shelf" / "models" / "m" / "_aliases" / "prod.json").write_text('{"alias": 3}')
    problems = {(p.ref, p.what.split(":")[0]) for p in local_shelf.verify()}
    assert problems == {
        ("m:1", "unreadable manifest"),
        ("m", "unreadable alias models/m/_aliases/prod.json"),
    }
    assert local_shelf.get("m:2").version == 2  # the other version stays usable


def test_truncated_and_missing_blobs(local_shelf, tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(os.urandom(1000))
    (tmp_path / "b.bin").write_bytes(os.urandom(1000))
    a = local_shelf.upload("a", tmp_path / "a.bin").files[0]
    b = local_shelf.upload("b", tmp_path / "b.bin").files[0]
    blob = lambda sha: tmp_path / "shelf" / "blobs" / "sha256" / sha[:2] / sha  # noqa: E731
    os.chmod(blob(a.sha256), 0o644)
    blob(a.sha256).write_bytes(blob(a.sha256).read_bytes()[:500])
    os.unlink(blob(b.sha256))
    problems = {(p.ref, p.what) for p in local_shelf.verify()}
    assert problems == {("a:1", "blob has 500 bytes, expected 1000"), ("b:1", "blob is missing")}
    with pytest.raises(IntegrityError, match="truncated"):
        local_shelf.load("a")
    with pytest.raises(IntegrityError, match="missing"):
        local_shelf.load("b")
    assert list(local_shelf.cache.blobs()) == []


def test_gc_respects_grace_and_dry_run(local_shelf, tmp_path: Path) -> None:
    (tmp_path / "keep.bin").write_bytes(b"keep")
    (tmp_path / "drop.bin").write_bytes(b"drop")
    local_shelf.upload("keep", tmp_path / "keep.bin")
    local_shelf.upload("drop", tmp_path / "drop.bin")
    local_shelf.delete("drop:1")
    assert local_shelf.gc().removed == ()  # younger than the default grace period
    assert local_shelf.gc().kept_recent == 1
    dry = local_shelf.gc(dry_run=True, grace=dt.timedelta(0))
    assert len(dry.removed) == 1 and dry.removed_bytes == 4
    assert len(list(local_shelf.storage.list("blobs/"))) == 2
    real = local_shelf.gc(grace=dt.timedelta(0))
    assert real.removed == dry.removed
    assert [i.key for i in local_shelf.storage.list("blobs/")] == [
        f"blobs/sha256/{local_shelf.get('keep').files[0].sha256[:2]}/{local_shelf.get('keep').files[0].sha256}"
    ]
    assert local_shelf.verify() == []


def test_second_load_reads_no_blob_and_cache_is_shared(
    counting_shelf, model_file: Path, tmp_path: Path
) -> None:
    counting_shelf.upload("m", model_file)
    counting_shelf.load("m")
    counting_shelf.storage.calls.clear()
    counting_shelf.load("m")
    assert [c for c in counting_shelf.storage.calls if c[0] in ("read_stream", "local_path")] == []
    # Another shelf holding the same content shares the cache.
    shutil.copytree(tmp_path / "shelf", tmp_path / "copy")
    from modelshelf.cache import Cache
    from modelshelf.shelf import Shelf

    from .conftest import CountingStorage  # type: ignore[import-not-found]

    other = Shelf(CountingStorage(str(tmp_path / "copy")), cache=Cache(counting_shelf.cache.root))
    other.load("m")
    assert [c for c in other.storage.calls if c[0] in ("read_stream", "local_path")] == []


def test_cache_prune_evicts_least_recently_used(local_shelf, tmp_path: Path) -> None:
    for name, size in (("old", 3000), ("new", 2000)):
        (tmp_path / f"{name}.bin").write_bytes(os.urandom(size))
        local_shelf.upload(name, tmp_path / f"{name}.bin")
        local_shelf.load(name)
        entry = local_shelf.get(name).files[0]
        stamp = 1_000_000 if name == "old" else 2_000_000
        os.utime(local_shelf.cache.blob_path(entry.sha256), (stamp, stamp))
    assert local_shelf.cache.size() == 5000
    evicted = local_shelf.cache.prune(2500)
    assert [b.size for b in evicted] == [3000]
    assert local_shelf.cache.size() == 2000
    assert local_shelf.load("old").read_bytes() == (tmp_path / "old.bin").read_bytes()


def test_unknown_scheme_names_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    storages = dict(get_registry().storages())
    storages.pop("s3", None)
    monkeypatch.setattr(get_registry(), "storages", lambda: storages)
    with pytest.raises(UnknownScheme, match="pip install modelshelf-s3"):
        modelshelf.open("s3://bucket/prefix")
    with pytest.raises(UnknownScheme, match="installed: "):
        modelshelf.open("weird://x")


class _Opaque:
    pass


def test_unclaimed_object_lists_installed_serializers(local_shelf) -> None:
    with pytest.raises(NoSerializer, match="installed serializers: .*files"):
        local_shelf.upload("m", _Opaque())


class _PickleLike(Serializer):
    """A test serializer that is unsafe, like joblib: it must never load without trust."""

    name = "test-unsafe"
    framework = "testing"
    format = "raw"
    safe = False
    claims = (f"{__name__}._Opaque",)

    def save(self, obj: Any, directory: Path, **options: Any) -> SavedModel:
        (directory / "obj.txt").write_text("opaque")
        return SavedModel("testing", "1.0")

    def load(self, directory: Path, *, details: Any, trust: bool = False, **options: Any) -> Any:
        return (directory / "obj.txt").read_text()


class _Plugin:
    @modelshelf.hookimpl
    def modelshelf_register_serializers(self, register):  # type: ignore[no-untyped-def]
        register(_PickleLike())


@pytest.fixture
def unsafe_plugin():  # type: ignore[no-untyped-def]
    registry = get_registry()
    registry.register(_Plugin(), "test-unsafe-plugin", "modelshelf-test-unsafe")
    try:
        yield
    finally:
        registry.unregister("test-unsafe-plugin")


def test_unsafe_format_needs_trust_and_is_refused_before_download(
    unsafe_plugin, local_shelf, tmp_path: Path
) -> None:
    version = local_shelf.upload("m", _Opaque())
    assert version.serializer.name == "test-unsafe" and not version.serializer.safe
    fresh = modelshelf.open(local_shelf.url, cache=tmp_path / "fresh")
    with pytest.raises(UntrustedFormat, match="trust=True"):
        fresh.load("m")
    assert not (tmp_path / "fresh" / "blobs").exists()  # no file content was downloaded
    assert fresh.load("m", trust=True) == "opaque"


def test_missing_plugin_is_named_before_any_download(local_shelf, tmp_path: Path) -> None:
    registry = get_registry()
    registry.register(_Plugin(), "test-unsafe-plugin", "modelshelf-test-unsafe")
    try:
        local_shelf.upload("m", _Opaque())
    finally:
        registry.unregister("test-unsafe-plugin")
    fresh = modelshelf.open(local_shelf.url, cache=tmp_path / "fresh")
    with pytest.raises(NoSerializer, match="pip install modelshelf-test-unsafe"):
        fresh.load("m", trust=True)
    assert not (tmp_path / "fresh" / "blobs").exists()  # no file content was downloaded


def test_records_on_disk_are_valid_json_with_schema(
    local_shelf, model_file: Path, tmp_path: Path
) -> None:
    version = local_shelf.upload("m", model_file, metrics={"auc": 0.5}, params={"lr": 0.1})
    data = _manifest_path(tmp_path / "shelf", "m", 1).read_bytes()
    assert convert.manifest_from_json(data, source="m") == version
    raw = json.loads(data)
    assert raw["schema"] == 1 and raw["kind"] == "version"
    assert raw["lineage"]["python"] and raw["lineage"]["packages"]["modelshelf"]


def test_object_of_a_framework_without_its_plugin_names_the_package(local_shelf) -> None:
    # A class from a framework's module that no installed serializer claims, as when
    # modelshelf-lightgbm is not installed: the message says what to install.
    orphan = type("LGBMClassifier", (), {"__module__": "lightgbm.sklearn"})()
    with pytest.raises(NoSerializer, match="pip install modelshelf-lightgbm"):
        local_shelf.upload("m", orphan)
    assert local_shelf.models() == []


def test_listing_versions_reads_no_manifest(counting_shelf, model_file: Path) -> None:
    for _ in range(5):
        counting_shelf.upload("m", model_file)
    counting_shelf.delete("m:2")
    counting_shelf.storage.calls.clear()
    listed = counting_shelf.list_versions("m")
    assert [v.version for v in listed] == [1, 3, 4, 5]
    assert all(v.created_at is not None for v in listed)
    assert [c[0] for c in counting_shelf.storage.calls] == ["list"]  # one listing, no read
    counting_shelf.storage.calls.clear()
    assert [v.version for v in counting_shelf.versions("m")] == [1, 3, 4, 5]
    assert ("read", "models/m/_versions/0000000002.json") not in counting_shelf.storage.calls


def test_latest_skips_deleted_versions_without_reading_them(
    counting_shelf, model_file: Path
) -> None:
    for _ in range(3):
        counting_shelf.upload("m", model_file)
    counting_shelf.delete("m:3")
    fresh = modelshelf.shelf.Shelf(
        counting_shelf.storage,
        cache=counting_shelf.cache.__class__(counting_shelf.cache.root / "other"),
    )
    counting_shelf.storage.calls.clear()
    assert fresh.get("m").version == 2
    reads = [
        c for c in counting_shelf.storage.calls if c[0] == "read" and c[1].startswith("models/")
    ]
    assert reads == [("read", "models/m/_versions/0000000002.json")]  # not the deleted version 3


def test_a_lost_deletion_marker_only_costs_a_read(
    local_shelf, model_file: Path, tmp_path: Path
) -> None:
    for _ in range(2):
        local_shelf.upload("m", model_file)
    local_shelf.delete("m:2")
    (tmp_path / "shelf" / "models" / "m" / "_versions" / "0000000002.deleted").unlink()
    assert local_shelf.get("m").version == 1
    assert [v.version for v in local_shelf.versions("m")] == [1]


def test_repeated_uploads_do_not_list_versions(counting_shelf, model_file: Path) -> None:
    counting_shelf.upload("m", model_file)
    counting_shelf.storage.calls.clear()
    assert counting_shelf.upload("m", model_file).version == 2
    assert ("list", "models/m/_versions/") not in counting_shelf.storage.calls
    # Another writer took number 3: the stale guess fails create-only, then a listing finds 4.
    other = modelshelf.shelf.Shelf(counting_shelf.storage, cache=counting_shelf.cache)
    assert other.upload("m", model_file).version == 3
    assert counting_shelf.upload("m", model_file).version == 4
