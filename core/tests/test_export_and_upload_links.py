"""Symbolic links planted where export writes, and links inside a directory being uploaded."""

from __future__ import annotations

import tarfile
from pathlib import Path

import modelshelf
import pytest
from modelshelf.copying import export_bundle, import_bundle
from modelshelf.errors import ModelshelfError


@pytest.fixture
def shelf(tmp_path: Path) -> modelshelf.Shelf:
    model = tmp_path / "m.bin"
    model.write_bytes(b"model bytes")
    opened = modelshelf.open(str(tmp_path / "shelf"), cache=tmp_path / "cache")
    opened.upload("m", model)
    return opened


@pytest.mark.parametrize("bundle", ["b.tar", "b.tar.gz"])
def test_export_never_writes_through_a_planted_symlink(
    shelf: modelshelf.Shelf, tmp_path: Path, bundle: str
) -> None:
    """Links planted at the fixed temporary name earlier versions used (``.~<name>.partial``) and at
    the bundle's own name: neither victim changes, the bundle is a new regular file."""
    out = tmp_path / "shared"
    out.mkdir()
    victims = {}
    for planted in (f".~{bundle}.partial", bundle):
        victim = tmp_path / f"victim-{planted.lstrip('.~')}"
        victim.write_bytes(b"precious")
        (out / planted).symlink_to(victim)
        victims[planted] = victim
    export_bundle(shelf, "m:1", out / bundle)
    for victim in victims.values():
        assert victim.read_bytes() == b"precious"
    assert not (out / bundle).is_symlink() and tarfile.is_tarfile(out / bundle)
    assert (out / f".~{bundle}.partial").is_symlink()  # left alone, not used
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [bundle, f".~{bundle}.partial"]
    )  # no temp left
    other = modelshelf.open(str(tmp_path / "other"), cache=tmp_path / "cache2")
    assert import_bundle(other, out / bundle).copied == {"m:1": "m:1"}


def test_a_failed_export_leaves_nothing_behind(
    shelf: modelshelf.Shelf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(tarfile.TarFile, "addfile", full)
    with pytest.raises(
        ModelshelfError, match=r"cannot write .*b\.tar: No space left on device; free some space"
    ):
        export_bundle(shelf, "m:1", out / "b.tar")
    assert list(out.iterdir()) == []


def test_export_checks_its_destination_before_fetching(
    shelf: modelshelf.Shelf, tmp_path: Path
) -> None:
    (tmp_path / "adir").mkdir()
    with pytest.raises(ModelshelfError, match="it is a directory"):
        export_bundle(shelf, "m:1", tmp_path / "adir")
    with pytest.raises(ModelshelfError, match="does not exist; create it first"):
        export_bundle(shelf, "m:1", tmp_path / "no" / "b.tar")
    assert not (tmp_path / "cache" / "blobs").exists()  # nothing was downloaded for nothing


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.bin").write_bytes(b"a")
    (tree / "sub" / "b.bin").write_bytes(b"b")
    return tree


def test_upload_refuses_a_symlinked_directory_inside_a_directory(
    shelf: modelshelf.Shelf, tmp_path: Path
) -> None:
    tree = _tree(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "c.bin").write_bytes(b"c")
    (tree / "sub" / "linked").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ModelshelfError) as caught:
        shelf.upload("t", tree)
    message = str(caught.value)
    assert "tree/sub/linked" in message and "symbolic link to the directory" in message
    assert "pass its target as another path" in message and "\n" not in message
    with pytest.raises(ModelshelfError):
        shelf.versions("t")  # nothing was published
    # What the message advises works: the target passed as another path.
    (tree / "sub" / "linked").unlink()
    version = shelf.upload("t", [tree, elsewhere])
    assert sorted(f.path for f in version.files) == [
        "elsewhere/c.bin",
        "tree/a.bin",
        "tree/sub/b.bin",
    ]


def test_upload_follows_links_to_files(shelf: modelshelf.Shelf, tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"linked weights")
    (tree / "weights.bin").symlink_to(tmp_path / "weights.bin")
    version = shelf.upload("t", tree)
    assert sorted(f.path for f in version.files) == ["a.bin", "sub/b.bin", "weights.bin"]
    assert (
        shelf.download("t:1", tmp_path / "out") / "weights.bin"
    ).read_bytes() == b"linked weights"


def test_upload_refuses_a_broken_link_rather_than_skip_it(
    shelf: modelshelf.Shelf, tmp_path: Path
) -> None:
    tree = _tree(tmp_path)
    (tree / "gone.bin").symlink_to(tmp_path / "never-existed.bin")
    with pytest.raises(ModelshelfError, match=r"tree/gone\.bin.*does not exist"):
        shelf.upload("t", tree)


def test_a_directory_link_named_explicitly_is_uploaded(
    shelf: modelshelf.Shelf, tmp_path: Path
) -> None:
    tree = _tree(tmp_path)
    (tmp_path / "link").symlink_to(tree, target_is_directory=True)
    version = shelf.upload("t", tmp_path / "link")
    assert sorted(f.path for f in version.files) == ["a.bin", "sub/b.bin"]
