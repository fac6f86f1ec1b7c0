"""Several models in one version: each entry saved by its own serializer, loaded back as a mapping."""

from __future__ import annotations

from pathlib import Path

import modelshelf
import pytest
from modelshelf.errors import ModelshelfError, NoSerializer


def test_a_mapping_of_entries_round_trips(tmp_path: Path) -> None:
    shelf = modelshelf.open(str(tmp_path / "shelf"), cache=tmp_path / "cache")
    (tmp_path / "vocab.txt").write_text("a\nb\n")
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "w.bin").write_bytes(b"\x00\x01")
    version = shelf.upload("pipeline", {"vocab": tmp_path / "vocab.txt", "weights": weights})
    assert version.serializer.name == "several"
    assert sorted(f.path for f in version.files) == ["vocab/vocab.txt", "weights/w.bin"]
    entries = version.serializer.details["entries"]
    assert entries["vocab"]["serializer"] == "files" and entries["vocab"]["safe"] is True
    loaded = modelshelf.open(str(tmp_path / "shelf"), cache=tmp_path / "other").load("pipeline")
    assert set(loaded) == {"vocab", "weights"}
    assert loaded["vocab"].read_text() == "a\nb\n"
    assert (loaded["weights"] / "w.bin").read_bytes() == b"\x00\x01"
    # Loaded files are a private copy: editing them cannot reach the cache.
    loaded["vocab"].write_text("edited")
    again = shelf.load("pipeline")
    assert again["vocab"].read_text() == "a\nb\n"


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden"])
def test_entry_names_must_be_one_folder_name(tmp_path: Path, bad: str) -> None:
    shelf = modelshelf.open(str(tmp_path / "shelf"), cache=tmp_path / "cache")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ModelshelfError, match="entry name"):
        shelf.upload("m", {bad: tmp_path / "f.txt"})
    assert shelf.models() == []


def test_an_entry_nothing_claims_is_named(tmp_path: Path) -> None:
    shelf = modelshelf.open(str(tmp_path / "shelf"), cache=tmp_path / "cache")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(NoSerializer, match="entry 'thing'"):
        shelf.upload("m", {"ok": tmp_path / "f.txt", "thing": object()})
