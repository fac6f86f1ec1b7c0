"""A shelf whose keys were written by someone else: a hostile or careless writer, or a stray tool.

Every record must match the key it was read from, and one damaged entry must never take down a
listing, ``verify``, ``gc``, ``export --all`` or ``copy --all`` of everything else.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
import modelshelf
import pytest
from modelshelf import convert
from modelshelf.cache import Cache
from modelshelf.copying import copy, export_bundle
from modelshelf.errors import (
    AlreadyExists,
    InvalidName,
    InvalidRecord,
    KeyNotFound,
    PreconditionFailed,
)
from modelshelf.records import Alias, FileEntry
from modelshelf.refs import check_alias, check_version, parse_ref
from modelshelf.shelf import Shelf
from modelshelf.storage import ObjectInfo, Storage, StoredBytes

T = TypeVar("T")


def _collect(action: Callable[[], T]) -> tuple[T, list[str]]:
    """Run ``action``; return its result and the messages of every warning it issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = action()
    return result, [str(w.message) for w in caught]


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text
    return text


class FlatStorage(Storage):
    """An object store in memory, flat like S3: any key is allowed, ``//`` included."""

    local = False

    def __init__(self, url: str = "mem://hostile") -> None:
        self.url = url
        self.objects: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}

    def _info(self, key: str) -> ObjectInfo:
        return ObjectInfo(
            key, len(self.objects[key]), self.etags[key], dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        )

    def _store(self, key: str, data: bytes) -> str:
        self.objects[key] = data
        self.etags[key] = hashlib.sha256(data).hexdigest()[:16]
        return self.etags[key]

    def read(self, key: str) -> StoredBytes:
        if key not in self.objects:
            raise KeyNotFound(f"{key} not found")
        return StoredBytes(self.objects[key], self.etags[key])

    def read_stream(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        return iter([self.read(key).data])

    def stat(self, key: str) -> ObjectInfo | None:
        return self._info(key) if key in self.objects else None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return iter([self._info(k) for k in sorted(self.objects) if k.startswith(prefix)])

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        found = {
            prefix + key[len(prefix) :].split("/", 1)[0] + "/"
            for key in self.objects
            if key.startswith(prefix) and "/" in key[len(prefix) :]
        }
        return iter(sorted(found))

    def put_file(self, key: str, path: Path) -> None:
        self._store(key, path.read_bytes())

    def put_if_absent(self, key: str, data: bytes) -> str:
        if key in self.objects:
            raise AlreadyExists(key)
        return self._store(key, data)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        if self.etags.get(key) != etag:
            raise PreconditionFailed(key)
        return self._store(key, data)

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)
        self.etags.pop(key, None)


def _models_dir(tmp_path: Path) -> Path:
    return tmp_path / "shelf" / "models"


def _manifest_path(tmp_path: Path, name: str, version: int) -> Path:
    return _models_dir(tmp_path) / name / "_versions" / f"{version:010d}.json"


# --- records must match their keys ------------------------------------------------------------


def test_alias_record_at_another_key_is_not_trusted(
    local_shelf: Shelf, model_file: Path, tmp_path: Path
) -> None:
    local_shelf.upload("m", model_file)
    local_shelf.upload("m", model_file)
    local_shelf.set_alias("m", "prod", 1)
    aliases = _models_dir(tmp_path) / "m" / "_aliases"
    planted = json.loads((aliases / "prod.json").read_text())
    planted["version"] = 2
    (aliases / "zzz.json").write_text(json.dumps(planted))

    found, messages = _collect(lambda: local_shelf.aliases("m"))
    assert {a: r.version for a, r in found.items()} == {"prod": 1}
    assert any("zzz.json" in m and "\n" not in m for m in messages)
    assert any("zzz.json" in p.what for p in local_shelf.verify())

    # The planted record must not make delete --force remove the real alias.
    _collect(lambda: local_shelf.delete("m:2", force=True))
    assert local_shelf.get("m@prod").version == 1


def test_alias_record_of_another_model_is_refused(
    local_shelf: Shelf, model_file: Path, tmp_path: Path
) -> None:
    local_shelf.upload("m", model_file)
    local_shelf.upload("n", model_file)
    local_shelf.set_alias("n", "prod", 1)
    n_alias = _models_dir(tmp_path) / "n" / "_aliases" / "prod.json"
    (_models_dir(tmp_path) / "m" / "_aliases").mkdir()
    (_models_dir(tmp_path) / "m" / "_aliases" / "prod.json").write_bytes(n_alias.read_bytes())

    with pytest.raises(InvalidRecord) as info:
        local_shelf.get("m@prod")
    assert "n@prod" in _one_line(info.value)
    found, messages = _collect(lambda: local_shelf.aliases("m"))
    assert found == {} and len(messages) == 1
    problems = local_shelf.verify()
    assert [p.ref for p in problems] == ["m"] and "n@prod" in problems[0].what


def test_event_of_another_model_is_not_in_its_history(
    local_shelf: Shelf, model_file: Path, tmp_path: Path
) -> None:
    local_shelf.upload("m", model_file)
    local_shelf.upload("n", model_file)
    local_shelf.set_alias("n", "prod", 1)
    n_log = sorted((_models_dir(tmp_path) / "n" / "_log").iterdir())
    (_models_dir(tmp_path) / "m" / "_log" / n_log[-1].name).write_bytes(n_log[-1].read_bytes())
    (_models_dir(tmp_path) / "m" / "_log" / "junk.json").write_text("{")

    events, messages = _collect(lambda: local_shelf.history("m"))
    assert [(e.name, e.action) for e in events] == [("m", "upload")]
    assert len(messages) == 2
    assert len([p for p in local_shelf.verify() if "_log" in p.what]) == 2


# --- aliases are one segment ----------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["prod.json/eu", "a/b", "prod/", "x" * 201])
def test_alias_is_one_segment_refused_before_any_io(alias: str, counting_shelf: Shelf) -> None:
    for operation in (
        lambda: counting_shelf.set_alias("m", alias, 1),
        lambda: counting_shelf.remove_alias("m", alias),
        lambda: counting_shelf.get(f"m@{alias}"),
        lambda: check_alias(alias),
        lambda: parse_ref(f"m@{alias}"),
    ):
        with pytest.raises(InvalidName) as info:
            operation()
        _one_line(info.value)
    assert counting_shelf.storage.calls == []  # type: ignore[attr-defined]


# --- stray keys never take down the whole shelf ------------------------------------------------


def _damaged_shelf(shelf: Shelf, model_file: Path, tmp_path: Path) -> Path:
    """m:1, m:2, m:3 (unreadable), team/n:1, m@prod -> 2, and stray keys all around."""
    for name in ("m", "m", "m", "team/n"):
        shelf.upload(name, model_file)
    shelf.set_alias("m", "prod", 2)
    models = _models_dir(tmp_path)
    good = _manifest_path(tmp_path, "m", 1).read_bytes()
    _manifest_path(tmp_path, "m", 3).write_text("{not json")
    (models / "Bad Name" / "_versions").mkdir(parents=True)
    (models / "Bad Name" / "_versions" / "0000000001.json").write_bytes(good)
    (models / "_top" / "_versions").mkdir(parents=True)
    (models / "ghost" / "_versions").mkdir(parents=True)
    (models / "ghost" / "_versions" / "1.json").write_bytes(good)  # only a stray key: no version
    versions = models / "m" / "_versions"
    (versions / "notes.txt").write_text("hello")
    (versions / ("\u0660" * 9 + "\u0667.json")).write_bytes(good)  # Arabic-Indic digits, not ASCII
    (versions / "99999999999.json").write_bytes(good)
    (versions / "0000000000.json").write_bytes(good)
    (versions / "0000000009.json").mkdir()  # a directory where a manifest is expected
    (versions / "0000000009.json" / "x").write_text("x")
    aliases = models / "m" / "_aliases"
    (aliases / "broken.json").write_text("{")
    (aliases / "qa.json").mkdir()
    (aliases / "qa.json" / "eu.json").write_bytes((aliases / "prod.json").read_bytes())
    return models


def test_stray_entries_are_skipped_and_reported(
    local_shelf: Shelf, model_file: Path, tmp_path: Path
) -> None:
    _damaged_shelf(local_shelf, model_file, tmp_path)

    names, messages = _collect(local_shelf.models)
    assert names == ["ghost", "m", "team/n"]
    assert any("Bad Name" in m for m in messages) and any("_top" in m for m in messages)
    assert all("\n" not in m for m in messages)
    names, problems = local_shelf.catalog.scan_models()
    assert names == ["ghost", "m", "team/n"] and len(problems) == 2

    versions, messages = _collect(lambda: local_shelf.versions("m"))
    assert [v.version for v in versions] == [1, 2]
    assert messages and all("\n" not in m for m in messages)
    summaries, _ = _collect(lambda: local_shelf.list_versions("m"))
    assert [s.version for s in summaries] == [1, 2, 3]
    found, messages = _collect(lambda: local_shelf.aliases("m"))
    assert {a: r.version for a, r in found.items()} == {"prod": 2}
    assert any("broken.json" in m for m in messages) and any(
        "qa.json/eu.json" in m for m in messages
    )

    scan: list[Any] = []
    local_shelf.catalog.scan_versions("m", scan)
    assert len(scan) == 5  # notes.txt, Arabic digits, 11 digits, version 0, the directory

    problems = local_shelf.verify()
    text = "\n".join(f"{p.ref} {p.what}" for p in problems)
    for expected in (
        "Bad Name",
        "_top",
        "notes.txt",
        "\u0667.json",
        "99999999999.json",
        "0000000000.json",
        "0000000009.json/x",
        "m:3",
        "broken.json",
        "qa.json/eu.json",
        "ghost/_versions/1.json",
    ):
        assert expected in text
    assert all("\n" not in p.what for p in problems)

    report, _ = _collect(lambda: local_shelf.gc(dry_run=True, grace=dt.timedelta(0)))
    assert report.removed == ()


def test_export_and_copy_all_skip_damaged_entries(
    local_shelf: Shelf, model_file: Path, tmp_path: Path
) -> None:
    _damaged_shelf(local_shelf, model_file, tmp_path)
    exported, _ = _collect(
        lambda: export_bundle(local_shelf, None, tmp_path / "all.tar", all_models=True)
    )
    assert sorted(v.ref for v in exported) == ["m:1", "m:2", "team/n:1"]
    target = modelshelf.open(str(tmp_path / "target"))
    report, _ = _collect(lambda: copy(local_shelf, target, all_models=True, aliases=True))
    assert sorted(report.copied) == ["m:1", "m:2", "team/n:1"]
    assert target.get("m@prod").version == 2


def test_object_store_keys_with_double_slashes(
    local_shelf: Shelf, model_file: Path, tmp_path: Path, modelshelf_cache: Path
) -> None:
    local_shelf.upload("m", model_file)
    local_shelf.set_alias("m", "prod", 1)
    storage = FlatStorage()
    root = tmp_path / "shelf"
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith(".~"):
            storage._store(path.relative_to(root).as_posix(), path.read_bytes())
    good = storage.objects["models/m/_versions/0000000001.json"]
    for key in (
        "models//_versions/0000000001.json",
        "models/m//_versions/0000000001.json",
        "models/m/_versions//0000000002.json",
        "models/m/_aliases//prod.json",
    ):
        storage._store(key, good)
    shelf = Shelf(storage, cache=Cache(modelshelf_cache))

    names, messages = _collect(shelf.models)
    assert names == ["m"] and len(messages) == 2
    versions, _ = _collect(lambda: shelf.versions("m"))
    assert [v.version for v in versions] == [1]
    found, _ = _collect(lambda: shelf.aliases("m"))
    assert list(found) == ["prod"]
    problems = shelf.verify()
    assert len(problems) == 4
    target = modelshelf.open(str(tmp_path / "target"))
    report, _ = _collect(lambda: copy(shelf, target, all_models=True))
    assert list(report.copied) == ["m:1"]


# --- manifests: one entry per path, no file inside a file ---------------------------------------


@pytest.mark.parametrize("second", ["model.bin", "model.bin/inner"])
def test_manifest_with_clashing_paths_is_refused_on_read(
    second: str, local_shelf: Shelf, model_file: Path, tmp_path: Path
) -> None:
    local_shelf.upload("m", model_file)
    path = _manifest_path(tmp_path, "m", 1)
    raw = json.loads(path.read_text())
    raw["files"] = [raw["files"][0], {**raw["files"][0], "path": second}]
    path.write_text(json.dumps(raw))
    with pytest.raises(InvalidRecord) as info:
        local_shelf.get("m:1")
    assert "model.bin" in _one_line(info.value)


def test_manifest_with_clashing_paths_is_never_written(local_shelf: Shelf, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "extra").write_bytes(os.urandom(100))  # a file where extra_files needs a directory
    notes = tmp_path / "notes.md"
    notes.write_text("notes")
    with pytest.raises(InvalidRecord) as info:
        local_shelf.upload("m", model, extra_files=[notes])
    assert "extra" in _one_line(info.value)
    assert not (tmp_path / "shelf" / "models").exists()

    version = local_shelf.upload("m", notes)
    entry = version.files[0]
    for files in (
        (entry, entry),
        (FileEntry("a", entry.sha256, 1), FileEntry("a/b", entry.sha256, 1)),
    ):
        with pytest.raises(InvalidRecord) as info:
            convert.to_json(attrs.evolve(version, files=files))
        _one_line(info.value)


# --- version numbers ------------------------------------------------------------------------------


def test_versions_are_bounded_to_ten_digits() -> None:
    assert check_version(1) == 1
    assert check_version(9_999_999_999) == 9_999_999_999
    for bad in (0, -1, 10_000_000_000, True, 1.5, "3"):
        with pytest.raises(InvalidName) as info:
            check_version(bad)
        _one_line(info.value)
    assert parse_ref("m:9999999999").version == 9_999_999_999
    for bad_ref in ("m:10000000000", "m:0", "m:\u0663"):
        with pytest.raises(InvalidName):
            parse_ref(bad_ref)


def test_records_with_invalid_identity_are_refused() -> None:
    golden = Path(__file__).parent / "golden"
    alias = json.loads((golden / "alias_v1.json").read_text())
    for field, value in (
        ("alias", "a/b"),
        ("alias", "latest"),
        ("name", "../x"),
        ("version", 10**10),
        ("version", 0),
    ):
        with pytest.raises(InvalidRecord) as info:
            convert.from_json(json.dumps({**alias, field: value}).encode(), Alias, source="k")
        _one_line(info.value)
    manifest = json.loads((golden / "manifest_v1.json").read_text())
    for field, value in (("name", "a//b"), ("version", 10**10)):
        with pytest.raises(InvalidRecord):
            convert.manifest_from_json(json.dumps({**manifest, field: value}).encode(), source="k")


def test_verify_reports_hidden_versions_and_aliases_to_deleted_ones(
    local_shelf: Shelf, model_file: Path, tmp_path: Path
) -> None:
    local_shelf.upload("m", model_file)
    local_shelf.upload("m", model_file)
    local_shelf.upload("m", model_file)
    local_shelf.set_alias("m", "prod", 3)
    aliases = _models_dir(tmp_path) / "m" / "_aliases"
    planted = json.loads((aliases / "prod.json").read_text())
    local_shelf.delete("m:2")
    (aliases / "old.json").write_text(json.dumps({**planted, "alias": "old", "version": 2}))
    # A planted deletion marker hides a live version from every listing.
    (_models_dir(tmp_path) / "m" / "_versions" / "0000000001.deleted").write_text("{}")
    assert [v.version for v in local_shelf.versions("m")] == [3]
    problems = {(p.ref, p.what) for p in local_shelf.verify()}
    assert problems == {
        ("m:1", "has a deletion flag but a live manifest: listings hide it"),
        ("m@old", "points to deleted version 2"),
    }
