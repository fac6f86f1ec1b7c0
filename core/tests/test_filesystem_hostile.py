"""A directory shelf whose tree was tampered with: symlinks planted inside it, directories where files
belong, a file that changes while it is stored.

Every write must stay inside the shelf root, every refusal is one line, nothing recurses or spins.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import warnings
from pathlib import Path

import modelshelf
import pytest
from modelshelf.default_plugins.filesystem import FileSystemStorage
from modelshelf.errors import (
    AlreadyExists,
    ChangedWhileUploading,
    KeyNotFound,
    ModelshelfError,
    StorageError,
)


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every entry below ``root`` (not following links) with its content, link target or a dir mark."""
    found: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = f"-> {os.readlink(path)}"
            elif path.is_dir():
                found[rel] = "<dir>"
            else:
                found[rel] = path.read_bytes()
    return found


def _one_line(error: BaseException) -> None:
    text = str(error)
    assert text and "\n" not in text, text


def _content_with_blob_prefix(prefix: str) -> bytes:
    """Bytes whose sha256 starts with ``prefix`` (two hex digits: a few hundred tries at most)."""
    for i in range(100_000):
        data = f"content {i}\n".encode()
        if hashlib.sha256(data).hexdigest().startswith(prefix):
            return data
    raise AssertionError("no content found")  # pragma: no cover


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """A shelf holding ``m:1`` aliased ``prod``, a source file, and an empty directory outside the shelf."""
    root = tmp_path / "shelf"
    outside = tmp_path / "outside"
    outside.mkdir()
    source = tmp_path / "weights.bin"
    source.write_bytes(b"weights v1\n")
    shelf = modelshelf.open(str(root), cache=tmp_path / "cache", fsync=False)
    shelf.upload("m", source)
    shelf.set_alias("m", "prod", 1)
    shelf.close()
    return {"root": root, "outside": outside, "source": source, "cache": tmp_path / "cache"}


def _plant_symlink(world: dict[str, Path], inside: str) -> Path:
    """Move the directory ``inside`` out of the shelf and leave a symlink to it in its place."""
    here = world["root"] / inside
    there = world["outside"] / "moved"
    shutil.move(str(here), str(there))
    here.symlink_to(there, target_is_directory=True)
    return there


BLOB_DIR = "blobs/sha256/<aa>"
PLANTED = ["models/m", "models/m/_aliases", "models/m/_versions", "models/m/_log", BLOB_DIR]
OPERATIONS = ["upload", "set_alias", "delete"]


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("inside", PLANTED)
def test_planted_directory_symlink_is_never_written_through(
    world: dict[str, Path], inside: str, operation: str
) -> None:
    source = world["source"]
    if inside == BLOB_DIR:
        # New content whose blob directory is the planted link, so the upload must write a blob there.
        blob_sha = hashlib.sha256(source.read_bytes()).hexdigest()
        inside = f"blobs/sha256/{blob_sha[:2]}"
        source.write_bytes(_content_with_blob_prefix(blob_sha[:2]))
    else:
        source.write_bytes(b"weights v2\n")
    _plant_symlink(world, inside)
    before = _tree(world["outside"])

    shelf = modelshelf.open(str(world["root"]), cache=world["cache"], fsync=False)
    warnings.simplefilter("ignore")  # a refused history entry warns; the tree check below decides
    try:
        if operation == "upload":
            shelf.upload("m", source)
        elif operation == "set_alias":
            shelf.set_alias("m", "prod", 1)
        else:
            shelf.delete("m:1", force=True)
    except ModelshelfError as exc:
        _one_line(exc)
        error: ModelshelfError | None = exc
    else:
        error = None
    finally:
        shelf.close()

    assert _tree(world["outside"]) == before, "something was written outside the shelf root"
    # The operations that must go through the planted link are refused, naming the symlink. (A
    # history entry is best effort, written after the operation happened: a refused one only warns.)
    touches = {
        "models/m": {"upload", "set_alias", "delete"},
        "models/m/_aliases": {"set_alias", "delete"},
        "models/m/_versions": {"upload", "set_alias", "delete"},
        "models/m/_log": set(),
    }.get(inside, {"upload"})
    if operation in touches:
        assert isinstance(error, StorageError), error
        assert "symlink" in str(error) and "inside" in str(error)


def test_symlink_at_a_final_key_is_refused_for_reads_and_writes(tmp_path: Path) -> None:
    root = tmp_path / "shelf"
    storage = FileSystemStorage(str(root), fsync=False)
    storage.put_if_absent("models/m/_aliases/prod.json", b"{}")
    target = tmp_path / "outside.json"
    target.write_bytes(b"outside")
    key = "models/m/_aliases/prod.json"
    link = root / key
    etag = storage.read(key).etag
    link.unlink()
    link.symlink_to(target)
    source = tmp_path / "payload"
    source.write_bytes(b"payload")

    attempts = [
        lambda: storage.read(key),
        lambda: b"".join(storage.read_stream(key)),
        lambda: storage.stat(key),
        lambda: storage.put_if_match(key, b"new", etag),
        lambda: storage.put_if_absent(key, b"new"),
        lambda: storage.put_file(key, source),
        lambda: storage.delete(key),
    ]
    for attempt in attempts:
        with pytest.raises(StorageError) as caught:
            attempt()
        assert not isinstance(caught.value, AlreadyExists)
        _one_line(caught.value)
        assert key in str(caught.value) and "symlink" in str(caught.value)
    assert target.read_bytes() == b"outside"
    assert link.is_symlink()
    # Listing skips it.
    assert [i.key for i in storage.list("models/")] == []


def test_the_shelf_root_itself_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "chosen").symlink_to(real, target_is_directory=True)
    source = tmp_path / "w.bin"
    source.write_bytes(b"w")
    shelf = modelshelf.open(str(tmp_path / "chosen"), cache=tmp_path / "cache", fsync=False)
    shelf.upload("m", source)
    shelf.set_alias("m", "prod", 1)
    assert shelf.get("m@prod").version == 1
    assert (real / "models" / "m" / "_aliases" / "prod.json").is_file()


@pytest.mark.parametrize("key", [".modelshelf.json", "models/x/_aliases/prod.json"])
def test_directory_where_a_file_key_belongs(tmp_path: Path, key: str) -> None:
    root = tmp_path / "shelf"
    storage = FileSystemStorage(str(root), fsync=False)
    (root / key).mkdir(parents=True)
    (root / key / "inner.json").write_bytes(b"{}")

    try:
        storage.read(key)
    except (KeyNotFound, StorageError) as exc:
        _one_line(exc)
    else:  # pragma: no cover
        raise AssertionError("a directory was read as an object")
    for write in (
        lambda: storage.put_if_absent(key, b"{}"),
        lambda: storage.put_if_match(key, b"{}", "1-2-3"),
    ):
        with pytest.raises(StorageError) as caught:
            write()
        assert not isinstance(caught.value, AlreadyExists), caught.value
        _one_line(caught.value)
    assert (root / key / "inner.json").read_bytes() == b"{}"


@pytest.mark.parametrize("planted", [".modelshelf.json", "models/m/_aliases/prod.json"])
def test_directory_at_a_record_key_fails_registry_operations_quickly(
    tmp_path: Path, planted: str
) -> None:
    source = tmp_path / "w.bin"
    source.write_bytes(b"w")
    root = tmp_path / "shelf"
    shelf = modelshelf.open(str(root), cache=tmp_path / "cache", fsync=False)
    if planted != ".modelshelf.json":
        shelf.upload("m", source)
    (root / planted).mkdir(parents=True)
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        if planted == ".modelshelf.json":
            shelf.upload("m", source)
        else:
            shelf.set_alias("m", "prod", 1)
    assert time.monotonic() - started < 5, "the operation retried instead of failing"
    _one_line(caught.value)
    assert planted in str(caught.value)


def test_file_where_a_directory_belongs(tmp_path: Path) -> None:
    root = tmp_path / "shelf"
    storage = FileSystemStorage(str(root), fsync=False)
    storage.put_if_absent("models/x", b"a file where a directory belongs")
    with pytest.raises(KeyNotFound):
        storage.read("models/x/_aliases/prod.json")
    assert storage.stat("models/x/_aliases/prod.json") is None
    assert list(storage.list("models/x/")) == []
    with pytest.raises(StorageError) as caught:
        storage.put_if_absent("models/x/_aliases/prod.json", b"{}")
    assert not isinstance(caught.value, AlreadyExists)
    _one_line(caught.value)


# --- verified blob writes ----------------------------------------------------------------------


def test_put_blob_stores_verified_content(tmp_path: Path) -> None:
    storage = FileSystemStorage(str(tmp_path / "shelf"), fsync=True)
    source = tmp_path / "w.bin"
    payload = os.urandom(3 * 1024 * 1024 + 5)
    source.write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    key = f"blobs/sha256/{sha[:2]}/{sha}"
    storage.put_blob(key, source, sha, len(payload))
    assert storage.read(key).data == payload
    assert sorted(
        p.name for p in (tmp_path / "shelf" / "blobs" / "sha256" / sha[:2]).iterdir()
    ) == [sha]


@pytest.mark.parametrize("existing", [False, True])
def test_put_blob_of_a_file_that_changed_after_hashing_leaves_nothing(
    tmp_path: Path, existing: bool
) -> None:
    root = tmp_path / "shelf"
    storage = FileSystemStorage(str(root), fsync=False)
    hashed = b"what the file held when it was hashed\n"
    sha = hashlib.sha256(hashed).hexdigest()
    key = f"blobs/sha256/{sha[:2]}/{sha}"
    if existing:
        kept = tmp_path / "kept"
        kept.write_bytes(hashed)
        storage.put_file(key, kept)
    source = tmp_path / "w.bin"
    source.write_bytes(b"what the file holds now, a training job still writing it\n")
    with pytest.raises(ChangedWhileUploading) as caught:
        storage.put_blob(key, source, sha, len(hashed))
    _one_line(caught.value)
    if existing:
        assert storage.read(key).data == hashed  # the existing object is left alone
        assert sorted(p.name for p in (root / "blobs" / "sha256" / sha[:2]).iterdir()) == [sha]
    else:
        assert storage.stat(key) is None
        leftovers = [p for p in root.rglob("*") if p.is_file()]
        assert leftovers == [], leftovers


def test_put_blob_reads_the_source_once_without_a_private_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelshelf.transfer

    def no_private_copy(*_: object, **__: object) -> None:
        raise AssertionError(
            "the filesystem backend hashes while writing beside the key, in one read"
        )

    monkeypatch.setattr(modelshelf.transfer, "stable_copy", no_private_copy)
    storage = FileSystemStorage(str(tmp_path / "shelf"), fsync=False)
    source = tmp_path / "w.bin"
    source.write_bytes(b"payload")
    sha = hashlib.sha256(b"payload").hexdigest()
    storage.put_blob(f"blobs/sha256/{sha[:2]}/{sha}", source, sha, 7)
    assert storage.read(f"blobs/sha256/{sha[:2]}/{sha}").data == b"payload"
