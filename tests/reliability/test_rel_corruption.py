"""Corruption at rest: damaged blobs, manifests and aliases on every backend.

Each case damages one stored object through the storage primitives (as a failing disk, a buggy
tool or an attacker with bucket access would), then checks that ``verify`` names exactly what is
damaged, that ``download``/``load`` raise an integrity error and write nothing (neither in the
destination nor in the cache), that the other versions still load, and that once the object is
repaired the same cache serves correct content: the cache was never poisoned.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from modelshelf.errors import IntegrityError, InvalidRecord, ModelshelfError
from rel_backends import one_line_error, tree_digests

BACKENDS = ["file", "s3", "azure", "gcs"]
DAMAGES = ["flip", "truncate", "extend", "delete", "manifest", "alias"]


def _blob_key(sha: str) -> str:
    return f"blobs/sha256/{sha[:2]}/{sha}"


def _cache_files(cache: Path) -> dict[str, str]:
    """Every file in the cache's blob store, temporary ones included."""
    return tree_digests(cache / "blobs") if (cache / "blobs").exists() else {}


@pytest.fixture
def populated(make_backend: Any, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    backend = make_backend(request.param)
    shelf = backend.open(tmp_path / "cache-writer")
    trees: dict[int, dict[str, str]] = {}
    shared = os.urandom(3000)
    for number, files in enumerate(
        [
            {"model.bin": os.urandom(70_000), "shared.bin": shared},
            {"model.bin": os.urandom(50_000), "cfg/config.json": b'{"layers": 3}'},
            {"weights.bin": os.urandom(20_000), "shared.bin": shared},
        ],
        start=1,
    ):
        folder = tmp_path / f"v{number}"
        for relative, data in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(data)
        version = shelf.upload("team/m", folder)
        assert version.version == number
        trees[number] = tree_digests(folder)
    shelf.set_alias("team/m", "prod", 1)
    yield {
        "backend": backend,
        "shelf": shelf,
        "trees": trees,
        "shared": hashlib.sha256(shared).hexdigest(),
    }
    shelf.close()


@pytest.mark.parametrize("populated", BACKENDS, indirect=True)
@pytest.mark.parametrize("damage", DAMAGES)
def test_damage_is_reported_and_contained(
    populated: dict[str, Any], damage: str, tmp_path: Path
) -> None:
    backend, shelf, trees = populated["backend"], populated["shelf"], populated["trees"]
    storage = shelf.storage
    target = shelf.get("team/m:2")
    entry = next(f for f in target.files if f.path == "model.bin")
    blob = _blob_key(entry.sha256)
    original = storage.read(blob).data

    # --- damage -------------------------------------------------------------------------------
    manifest_key = "models/team/m/_versions/0000000002.json"
    alias_key = "models/team/m/_aliases/prod.json"
    saved_manifest = storage.read(manifest_key)
    saved_alias = storage.read(alias_key)

    def put_blob(data: bytes) -> None:
        scratch = tmp_path / "scratch.bin"
        scratch.write_bytes(data)
        storage.put_file(blob, scratch)

    if damage == "flip":
        position = len(original) // 3
        put_blob(
            original[:position] + bytes([original[position] ^ 0x40]) + original[position + 1 :]
        )
    elif damage == "truncate":
        put_blob(original[: len(original) // 2])
    elif damage == "extend":
        put_blob(original + b"\0trailing garbage")
    elif damage == "delete":
        storage.delete(blob)
    elif damage == "manifest":
        storage.put_if_match(
            manifest_key, saved_manifest.data[: len(saved_manifest.data) // 2], saved_manifest.etag
        )
    elif damage == "alias":
        storage.put_if_match(
            alias_key,
            b'{"schema": 1, "name": "team/m", "alias": "prod", "version": "one"}',
            saved_alias.etag,
        )

    # --- verify names exactly the damage ------------------------------------------------------
    problems = shelf.verify()
    expected_what = {
        "flip": "blob content does not match its sha256",
        "truncate": f"blob has {len(original) // 2} bytes, expected {len(original)}",
        "extend": f"blob has {len(original) + 17} bytes, expected {len(original)}",
        "delete": "blob is missing",
    }
    if damage in expected_what:
        assert [(p.ref, p.path, p.what) for p in problems] == [
            ("team/m:2", "model.bin", expected_what[damage])
        ]
    elif damage == "manifest":
        assert [(p.ref, p.path) for p in problems] == [("team/m:2", None)]
        assert problems[0].what.startswith("unreadable manifest")
    else:
        assert [(p.ref, p.path) for p in problems] == [("team/m", None)]
        assert "unreadable alias" in problems[0].what and "prod" in problems[0].what

    # --- download and load refuse, write nothing ----------------------------------------------
    fresh = backend.open(tmp_path / "cache-reader")
    dest = tmp_path / "dest"
    if damage in ("manifest", "alias"):
        ref = "team/m:2" if damage == "manifest" else "team/m@prod"
        for call in (lambda: fresh.download(ref, dest), lambda: fresh.load(ref)):
            with pytest.raises(InvalidRecord) as caught:
                call()
            one_line_error(caught.value)
    else:
        for call in (lambda: fresh.download("team/m:2", dest), lambda: fresh.load("team/m:2")):
            with pytest.raises(IntegrityError) as caught:
                call()
            one_line_error(caught.value)
        assert entry.sha256 not in _cache_files(tmp_path / "cache-reader"), (
            "damaged blob entered the cache"
        )
        assert not any(
            name.rsplit("/", 1)[-1].startswith(".~")
            for name in _cache_files(tmp_path / "cache-reader")
        )
    assert not dest.exists() or tree_digests(dest) == {}, "download wrote files despite the damage"

    # --- the other versions are untouched -----------------------------------------------------
    for number in (1, 3):
        out = tmp_path / f"ok{number}"
        fresh.download(f"team/m:{number}", out)
        assert tree_digests(out) == trees[number]
    if damage != "alias":
        assert fresh.get("team/m@prod").version == 1

    # --- repaired, the same cache serves the right bytes: it was never poisoned --------------
    if damage in expected_what:
        put_blob(original)
    elif damage == "manifest":
        storage.put_if_match(manifest_key, saved_manifest.data, storage.stat(manifest_key).etag)
    else:
        storage.put_if_match(alias_key, saved_alias.data, storage.stat(alias_key).etag)
    fresh.download("team/m:2", tmp_path / "repaired")
    assert tree_digests(tmp_path / "repaired") == trees[2]
    assert shelf.verify() == []
    fresh.close()


@pytest.mark.parametrize("populated", ["file"], indirect=True)
def test_damaged_shared_blob_is_reported_for_every_version_using_it(
    populated: dict[str, Any], tmp_path: Path
) -> None:
    shelf, shared = populated["shelf"], populated["shared"]
    shelf.storage.delete(_blob_key(shared))
    problems = sorted((p.ref, p.path, p.what) for p in shelf.verify())
    assert problems == [
        ("team/m:1", "shared.bin", "blob is missing"),
        ("team/m:3", "shared.bin", "blob is missing"),
    ]
    assert [(p.ref, p.path) for p in shelf.verify("team/m:3")] == [("team/m:3", "shared.bin")]
    with pytest.raises(IntegrityError):
        populated["backend"].open(tmp_path / "c2").download("team/m:1", tmp_path / "d")
    assert populated["backend"].open(tmp_path / "c3").load("team/m:2").is_dir()


@pytest.mark.parametrize("populated", ["file"], indirect=True)
def test_corrupt_marker_is_a_clear_error(populated: dict[str, Any], tmp_path: Path) -> None:
    storage = populated["shelf"].storage
    stored = storage.read(".modelshelf.json")
    storage.put_if_match(".modelshelf.json", b"{not json", stored.etag)
    with pytest.raises(ModelshelfError) as caught:
        populated["backend"].open(tmp_path / "c").versions("team/m")
    one_line_error(caught.value)


@pytest.mark.parametrize("populated", ["file"], indirect=True)
def test_editing_a_downloaded_file_never_poisons_the_cache(
    populated: dict[str, Any], tmp_path: Path
) -> None:
    backend, trees = populated["backend"], populated["trees"]
    reader = backend.open(tmp_path / "cache-user")
    dest = reader.download("team/m:1", tmp_path / "work")
    path = dest / "model.bin"
    os.chmod(path, 0o644)  # what a user (or any root process) can do to a file it owns
    with open(path, "r+b") as handle:  # e.g. a fine-tuning script saving weights in place
        handle.write(b"fine-tuned!")
    again = reader.download("team/m:1", tmp_path / "again")
    assert tree_digests(again) == trees[1], "the cache served edited bytes as version 1"


def test_manifest_claiming_another_name_is_refused(make_backend: Any, tmp_path: Path) -> None:
    backend = make_backend("file")
    shelf = backend.open(tmp_path / "c")
    (tmp_path / "a.bin").write_bytes(b"a")
    shelf.upload("a", tmp_path / "a.bin")
    shelf.upload("b", tmp_path / "a.bin")
    record = json.loads(shelf.storage.read("models/a/_versions/0000000001.json").data)
    stored = shelf.storage.read("models/b/_versions/0000000001.json")
    shelf.storage.put_if_match(
        "models/b/_versions/0000000001.json", json.dumps(record).encode(), stored.etag
    )
    fresh = backend.open(tmp_path / "c2")
    with pytest.raises(InvalidRecord, match="claims to be"):
        fresh.get("b:1")
    assert [p.ref for p in fresh.verify()] == ["b:1"]
