"""Small files stored as packs, on a directory shelf: the round trip, what a damaged pack or a
lying index does, copies, gc, and what a release from before packs makes of a packed version.

``StorageContract.test_small_files_are_packed_and_verified`` runs the core of this on every backend.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import modelshelf
import pytest
from modelshelf import convert, packing
from modelshelf.copying import copy, export_bundle, import_bundle
from modelshelf.drafting import hash_files
from modelshelf.errors import ChangedWhileUploading, IntegrityError, SchemaTooNew
from modelshelf.lineage import collect_lineage
from modelshelf.records import FileEntry, ModelVersion, SerializerInfo


def _tree(root: Path, count: int, *, size: int = 4096, large: int = 0) -> Path:
    for index in range(count):
        path = root / f"part{index // 100:03d}" / f"f{index:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
    if large:
        (root / "weights.bin").write_bytes(os.urandom(large))
    return root


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def _stored_blobs(shelf: modelshelf.Shelf) -> set[str]:
    return {info.key.rsplit("/", 1)[-1] for info in shelf.storage.list("blobs/")}


def _rewrite_manifest(shelf: modelshelf.Shelf, ref: str, change: dict[str, object]) -> None:
    """Replace a stored manifest by hand (what a damaged or hostile shelf holds)."""
    name, number = ref.split(":")
    path = Path(shelf.storage.root) / "models" / name / "_versions" / f"{int(number):010d}.json"
    raw = json.loads(path.read_bytes())
    raw.update(change)
    path.chmod(0o644)
    path.write_text(json.dumps(raw))


@pytest.fixture
def shelf(tmp_path: Path) -> modelshelf.Shelf:
    return modelshelf.open(tmp_path / "shelf", cache=tmp_path / "cache")


def test_two_thousand_small_files_and_a_large_one_round_trip(
    shelf: modelshelf.Shelf, tmp_path: Path
) -> None:
    tree = _tree(tmp_path / "tree", 2000, large=packing.SMALL_FILE_BYTES * 4)
    version = shelf.upload("tree", tree)
    assert version.schema == 2 and len(version.packs) == 1
    assert [f.path for f in version.files if f.pack is None] == ["weights.bin"]
    # Two blobs in all: the pack, and the large file on its own (deduplicated across versions).
    assert _stored_blobs(shelf) == {b.sha256 for b in version.blobs()}
    assert len(_stored_blobs(shelf)) == 2
    again = shelf.upload("tree", tree)
    assert again.blobs() == version.blobs()  # same files, same pack: nothing new stored

    with modelshelf.open(shelf.url, cache=tmp_path / "cold-cache") as reader:
        reader.download("tree:1", tmp_path / "dest")
        assert _digests(tmp_path / "dest") == _digests(tree)
        loaded = reader.load("tree:2")  # the built-in files serializer returns a private copy
        assert _digests(Path(loaded)) == _digests(tree)
    assert shelf.verify() == []


def test_a_few_small_files_keep_their_own_blobs_and_the_old_schema(
    shelf: modelshelf.Shelf, tmp_path: Path
) -> None:
    tree = _tree(tmp_path / "tree", packing.MIN_PACKED_FILES - 1, size=100)
    version = shelf.upload("few", tree)
    assert version.packs == () and version.schema == 1
    assert json.loads(convert.to_json(version))["schema"] == 1


def test_identical_small_files_are_packed_once(shelf: modelshelf.Shelf, tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", packing.MIN_PACKED_FILES, size=10)
    (tree / "copy-a.bin").write_bytes(b"same")
    (tree / "copy-b.bin").write_bytes(b"same")
    version = shelf.upload("dupes", tree)
    a, b = (next(f for f in version.files if f.path == p) for p in ("copy-a.bin", "copy-b.bin"))
    assert (a.pack, a.offset) == (b.pack, b.offset)
    assert version.packs[0].size == packing.MIN_PACKED_FILES * 10 + 4
    shelf.download("dupes:1", tmp_path / "dest")
    assert (tmp_path / "dest" / "copy-b.bin").read_bytes() == b"same"


def test_a_file_that_changes_before_it_is_packed_is_refused(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", packing.MIN_PACKED_FILES, size=64)
    local = {p.relative_to(tree).as_posix(): p for p in tree.rglob("*") if p.is_file()}
    files, blobs = hash_files(local)
    local[sorted(local)[3]].write_bytes(b"changed" * 9)  # after hashing, before packing
    shelf = modelshelf.open(tmp_path / "shelf", cache=tmp_path / "cache")
    with pytest.raises(ChangedWhileUploading):
        shelf.publish(_draft(files), blobs)
    assert list(shelf.storage.list("blobs/")) == [] and shelf.models() == []


def test_a_lying_index_is_detected(shelf: modelshelf.Shelf, tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", 40, size=300)
    version = shelf.upload("lies", tree)
    raw = json.loads(convert.to_json(version))
    raw["files"][7]["offset"] = raw["files"][8]["offset"]  # another file's bytes
    raw["files"][9]["size"] = 299  # one byte short
    _rewrite_manifest(shelf, "lies:1", raw)
    liar = shelf.get("lies:1")
    with pytest.raises(IntegrityError, match="index of the pack is wrong"):
        shelf.download("lies:1", tmp_path / "dest")
    assert not (tmp_path / "dest").exists() or not any((tmp_path / "dest").rglob("*"))
    problems = shelf.verify("lies:1")
    assert {(p.path, "index of the pack is wrong" in p.what) for p in problems} == {
        (liar.files[7].path, True),
        (liar.files[9].path, True),
    }
    with pytest.raises(IntegrityError):  # one file alone, by a ranged read
        shelf.fetch(liar, [liar.files[7]])


def test_a_missing_pack_is_an_integrity_error(shelf: modelshelf.Shelf, tmp_path: Path) -> None:
    version = shelf.upload("gone", _tree(tmp_path / "tree", 20, size=50))
    pack = version.packs[0].sha256
    shelf.storage.delete(f"blobs/sha256/{pack[:2]}/{pack}")
    with modelshelf.open(shelf.url, cache=tmp_path / "cold") as reader:
        with pytest.raises(IntegrityError, match="is missing"):
            reader.download("gone:1", tmp_path / "dest")
        assert {p.what for p in reader.verify("gone:1")} == {"blob is missing"}


def test_gc_keeps_a_pack_until_no_version_needs_it(shelf: modelshelf.Shelf, tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", 30, size=200)
    first = shelf.upload("kept", tree)
    shelf.upload("kept", tree)  # the same pack, referenced twice
    assert shelf.gc(grace=dt.timedelta(0)).removed == ()
    shelf.delete("kept:1")
    assert shelf.gc(grace=dt.timedelta(0)).removed == ()
    shelf.delete("kept:2")
    removed = shelf.gc(grace=dt.timedelta(0)).removed
    assert {k.rsplit("/", 1)[-1] for k in removed} == {first.packs[0].sha256}


def test_copies_and_bundles_pack_again(shelf: modelshelf.Shelf, tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", 50, size=500, large=100_000)
    version = shelf.upload("copied", tree)
    target = modelshelf.open(tmp_path / "target", cache=tmp_path / "cache")
    report = copy(shelf, target, "copied")
    copied = target.get(report.copied["copied:1"])
    assert copied.blobs() == version.blobs() and copied.files == version.files
    assert target.verify() == []
    bundle = tmp_path / "copied.tar"
    export_bundle(shelf, "copied", bundle)
    imported = modelshelf.open(tmp_path / "imported", cache=tmp_path / "cache-imported")
    import_bundle(imported, bundle)
    imported.download("copied:1", tmp_path / "dest")
    assert _digests(tmp_path / "dest") == _digests(tree)
    assert imported.get("copied:1").packs == version.packs


def test_a_card_in_a_pack_is_read_alone(shelf: modelshelf.Shelf, tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text("---\nowner: ana\n---\n# Tree\n\nSmall files.\n")
    version = shelf.upload("carded", _tree(tmp_path / "tree", 20, size=50), card=card)
    entry = next(f for f in version.files if f.path == "card/README.md")
    assert entry.pack is not None
    with modelshelf.open(shelf.url, cache=tmp_path / "cold") as reader:
        found = reader.card("carded:1")
    assert found is not None and "Small files." in found.text


def test_a_release_before_packs_skips_a_packed_version_and_gc_keeps_its_pack(
    shelf: modelshelf.Shelf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = shelf.upload("mixed", _tree(tmp_path / "few", 3, size=50))
    packed = shelf.upload("mixed", _tree(tmp_path / "many", 30, size=50))
    monkeypatch.setattr(convert, "SCHEMA", 1)  # what releases before packs read
    with modelshelf.open(shelf.url, cache=tmp_path / "old-cache") as old:
        with pytest.warns(UserWarning, match="upgrade"):
            listed = old.versions("mixed")
        assert [v.version for v in listed] == [plain.version]
        with pytest.raises(SchemaTooNew, match="pip install -U modelshelf"):
            old.download("mixed:2", tmp_path / "dest")
        assert not (tmp_path / "dest").exists()
        report = old.gc(grace=dt.timedelta(0))
    assert report.removed == () and report.unreadable
    assert packed.packs[0].sha256 in _stored_blobs(shelf)


# --- helpers ------------------------------------------------------------------------------------


def _draft(files: list[FileEntry]) -> ModelVersion:
    """A manifest of ``files`` as drafting makes it, not yet published."""
    return ModelVersion(
        name="changed",
        version=1,
        created_at=dt.datetime.now(dt.UTC),
        created_by="test",
        serializer=SerializerInfo("files", "modelshelf", "0", "files", True),
        framework=None,
        files=tuple(sorted(files, key=lambda f: f.path)),
        total_size=sum(f.size for f in files),
        lineage=collect_lineage({}),
    )
