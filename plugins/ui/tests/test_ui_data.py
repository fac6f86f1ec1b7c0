"""The documents behind the pages, and the static build: no browser needed."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import shelf_maker
from modelshelf import ModelshelfError
from modelshelf_ui import pages
from modelshelf_ui.data import ShelfView
from modelshelf_ui.static_site import MARKER, build_site


@pytest.fixture
def small_shelf(tmp_path: Path) -> Any:
    return shelf_maker.make_shelf(tmp_path / "shelf", tmp_path / "work", cache=tmp_path / "cache")


def test_model_document_holds_versions_aliases_timeline_and_deletions(ui_shelf: Any) -> None:
    doc = ShelfView(ui_shelf).model_document("churn")
    numbers = [row["version"] for row in doc["versions"]]
    assert numbers == [
        n for n in range(1, shelf_maker.CHURN_VERSIONS + 1) if n != shelf_maker.CHURN_DELETED
    ]
    assert doc["metrics"] == ["auc", "f1", "loss"]
    assert doc["versions"][0]["metrics"] == shelf_maker.churn_metrics(1)
    assert [d["version"] for d in doc["deleted"]] == [shelf_maker.CHURN_DELETED]
    assert doc["deleted"][0]["deleted_by"] and doc["deleted"][0]["deleted_at"]
    assert {alias: a["version"] for alias, a in doc["aliases"].items()} == {
        "prod": 7,
        "staging": 10,
    }
    assert [(e["alias"], e["action"], e["from"], e["to"]) for e in doc["timeline"]] == [
        ("prod", "set", None, 3),
        ("prod", "set", 3, 7),
        ("canary", "set", None, 8),
        ("staging", "set", None, 10),
        ("canary", "removed", 8, None),
    ]
    row7 = next(row for row in doc["versions"] if row["version"] == 7)
    assert row7["aliases"] == ["prod"] and row7["safe"] is True


def test_shelf_document_lists_every_model(ui_shelf: Any) -> None:
    doc = ShelfView(ui_shelf).shelf_document()
    models = {m["name"]: m for m in doc["models"]}
    assert sorted(models) == ["big", "churn", "hostile", "team/fraud"]
    assert models["churn"]["latest"]["version"] == 12
    assert models["churn"]["aliases"] == {"prod": 7, "staging": 10}
    assert models["churn"]["versions"] == 11
    assert models["team/fraud"]["latest"]["framework"].startswith("sklearn ")


def test_version_document_shows_files_shared_with_other_versions(ui_shelf: Any) -> None:
    doc = ShelfView(ui_shelf).version_document("churn", 2)
    assert doc is not None
    files = {f["path"]: f for f in doc["files"]}
    assert files["weights.bin"]["shared_with"] == [1, 3, 4]  # identical weights stored once
    assert files["config.json"]["shared_with"] == []
    assert doc["ref"] == "churn:2" and doc["serializer"]["safe"] is True
    assert ShelfView(ui_shelf).version_document("churn", shelf_maker.CHURN_DELETED) is None


def test_showing_a_model_again_reads_only_new_manifests(small_shelf: Any, tmp_path: Path) -> None:
    view = ShelfView(small_shelf)
    view.model_document("churn")
    storage = small_shelf.storage
    read = storage.read
    manifests_read: list[str] = []

    def counting(key: str) -> Any:
        if "/_versions/" in key:
            manifests_read.append(key)
        return read(key)

    storage.read = counting  # the catalog reads through this same storage object
    try:
        view.model_document("churn")
        assert manifests_read == []
        small_shelf.upload("churn", tmp_path / "work" / "churn1", metrics={"auc": 0.99})
        small_shelf.delete("churn:2")
        manifests_read.clear()  # what the upload and the deletion read themselves
        doc = view.model_document("churn")
    finally:
        del storage.read
    assert manifests_read == ["models/churn/_versions/0000000013.json"]
    assert doc["versions"][-1]["version"] == 13
    assert 2 not in [row["version"] for row in doc["versions"]]
    assert [d["version"] for d in doc["deleted"]] == [2, shelf_maker.CHURN_DELETED]


def test_static_build_writes_only_what_changed(small_shelf: Any, tmp_path: Path) -> None:
    site = tmp_path / "site"
    first = build_site(ShelfView(small_shelf), site)
    assert first.written > 0 and first.unchanged == 0 and first.removed == 0
    assert (site / "index.html").is_file() and (site / MARKER).is_file()
    assert (site / "data" / "models" / "team" / "fraud" / "_versions" / "3.json").is_file()
    before = {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()}

    again = build_site(ShelfView(small_shelf), site)
    assert again.written == 0 and again.removed == 0
    assert {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()} == before

    small_shelf.delete("churn:12")
    changed = build_site(ShelfView(small_shelf), site)
    # The shelf and churn documents change (latest, deletions), v12's two files go.
    assert changed.written == 4 and changed.removed == 2
    assert not (site / "data" / "models" / "churn" / "_versions" / "12.json").exists()


def test_static_build_refuses_a_folder_it_did_not_build(small_shelf: Any, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ModelshelfError, match="not empty and was not built"):
        build_site(ShelfView(small_shelf), folder)
    assert (folder / "notes.txt").read_text() == "keep me"


def test_static_data_is_the_servers_data(ui_shelf: Any, static_site: Path) -> None:
    view = ShelfView(ui_shelf)
    assert (static_site / "data" / "shelf.json").read_bytes() == pages.to_json(
        view.shelf_document()
    )
    assert (static_site / "data/models/churn/_model.json").read_bytes() == pages.to_json(
        view.model_document("churn")
    )
    assert (static_site / "data/models/hostile/_versions/1.json").read_bytes() == pages.to_json(
        view.version_document("hostile", 1)
    )
    script = (static_site / "data/models/hostile/_versions/1.js").read_bytes()
    assert (
        script.startswith(b'modelshelfData("data/models/hostile/_versions/1",')
        and b"<script>" not in script
    )
    assert all(ord(c) < 128 for c in script.decode())  # no raw U+2028 or other text to misparse


@pytest.mark.parametrize(
    "path, parsed",
    [
        ("data/shelf", ("shelf", None, None)),
        ("data/models/churn/_model", ("model", "churn", None)),
        ("data/models/team/fraud/_versions/3", ("version", "team/fraud", 3)),
        ("data/models/../../etc/_model", None),
        ("data/models/churn/../../x/_model", None),
        ("data/models/.git/_model", None),
        ("data/models/_x/_model", None),
        ("data/models/churn/_versions/1/../2", None),
        ("data/models/churn/_versions/-1", None),
        ("data/models/churn/_versions/12345678901", None),
        ("data/models//_model", None),
        ("data/models/_model", None),
        ("data/blobs", None),
        ("../data/shelf", None),
    ],
)
def test_only_paths_the_pages_make_are_data_paths(path: str, parsed: Any) -> None:
    assert pages.parse_data_path(path) == parsed


def test_every_asset_is_packaged() -> None:
    for path in pages.ASSETS:
        assert pages.asset(path)
    html = pages.asset("index.html").decode()
    assert pages.CONTENT_SECURITY_POLICY in html  # the static site carries the same policy
    assert "<script>" not in html and "style=" not in html and "onload" not in html
    script = pages.asset("assets/app.js").decode()
    assert not re.search(
        r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function", script
    )
    assert "http" not in pages.asset("assets/style.css").decode().replace("http://www.w3.org", "")


def test_fsync_is_off_for_the_test_shelves() -> None:
    assert os.environ.get("MODELSHELF_FSYNC") in ("0", None)
