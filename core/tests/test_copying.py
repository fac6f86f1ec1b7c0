"""Copying between shelves and export/import of bundles, on filesystem shelves."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import modelshelf
import pytest
from modelshelf.copying import copy, export_bundle, import_bundle
from modelshelf.default_plugins.filesystem import FileSystemStorage
from modelshelf.errors import IntegrityError, ModelshelfError, StorageError
from modelshelf.shelf import Shelf


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def source(tmp_path: Path, modelshelf_cache: Path) -> Shelf:
    shelf = modelshelf.open(str(tmp_path / "source"), cache=modelshelf_cache)
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(300_000))
    for i in range(3):
        (model / "config.json").write_text(json.dumps({"i": i}))
        shelf.upload("team/churn", model, metrics={"auc": 0.8 + i / 100})
    shelf.upload("other", model / "config.json")
    shelf.set_alias("team/churn", "prod", 2)
    return shelf


def open_target(tmp_path: Path, name: str = "target") -> Shelf:
    return modelshelf.open(str(tmp_path / name), cache=tmp_path / f"{name}-cache")


def test_copy_one_version_preserves_bytes_and_records_source(source: Shelf, tmp_path: Path) -> None:
    target = open_target(tmp_path)
    report = copy(source, target, "team/churn:2")
    assert report.copied == {"team/churn:2": "team/churn:1"}
    copied = target.get("team/churn:1")
    original = source.get("team/churn:2")
    assert copied.files == original.files and copied.metrics == original.metrics
    assert copied.lineage.source["shelf"] == source.url and copied.lineage.source["version"] == 2
    out = target.download("team/churn:1", tmp_path / "out")
    for entry in copied.files:
        assert sha(out / entry.path) == entry.sha256
    again = copy(source, target, "team/churn:2")
    assert (
        again.copied == {}
        and again.present == {"team/churn:2": "team/churn:1"}
        and again.bytes_sent == 0
    )


def test_copy_every_version_with_aliases_then_back(source: Shelf, tmp_path: Path) -> None:
    target = open_target(tmp_path)
    report = copy(source, target, "team/churn", aliases=True)
    assert list(report.copied.values()) == ["team/churn:1", "team/churn:2", "team/churn:3"]
    assert report.aliases == {"team/churn@prod": 2}
    assert target.get("team/churn@prod").files == source.get("team/churn@prod").files
    # Only the small configs were sent once each, and the shared weights once.
    assert report.bytes_sent == 300_000 + sum(len(json.dumps({"i": i})) for i in range(3))
    back = copy(target, source, "team/churn", aliases=True)
    assert back.copied == {} and len(back.present) == 3  # the source already holds their origins
    assert [v.version for v in source.versions("team/churn")] == [1, 2, 3]


def test_copy_whole_shelf(source: Shelf, tmp_path: Path) -> None:
    target = open_target(tmp_path)
    report = copy(source, target, all_models=True)
    assert len(report.copied) == 4
    assert target.models() == ["other", "team/churn"]
    assert target.verify() == []
    with pytest.raises(ModelshelfError, match="either a reference or --all"):
        copy(source, target, "other", all_models=True)


class FailingStorage(FileSystemStorage):
    """A real filesystem storage that dies after a number of blob uploads, like a lost connection."""

    def __init__(self, url: str, fail_after: int) -> None:
        super().__init__(url, fsync=False)
        self.remaining = fail_after

    def put_blob(self, key: str, path: Path, sha256: str, size: int) -> None:
        if self.remaining == 0:
            raise StorageError("connection lost (simulated)")
        self.remaining -= 1
        super().put_blob(key, path, sha256, size)


def test_interrupted_copy_resumes_without_resending(source: Shelf, tmp_path: Path) -> None:
    from modelshelf.cache import Cache

    cache = Cache(tmp_path / "target-cache")
    broken = Shelf(FailingStorage(str(tmp_path / "target"), fail_after=1), cache=cache)
    os.environ["MODELSHELF_WORKERS"] = "1"
    try:
        with pytest.raises(StorageError, match="connection lost"):
            copy(source, broken, "team/churn:1")
    finally:
        del os.environ["MODELSHELF_WORKERS"]
    target = Shelf(FileSystemStorage(str(tmp_path / "target")), cache=cache)
    assert target.models() == []  # no half version is visible
    arrived = {i.key.rsplit("/", 1)[-1]: i.size for i in target.storage.list("blobs/")}
    assert len(arrived) == 1  # one blob made it before the connection was lost
    report = copy(source, target, "team/churn:1")
    total = source.get("team/churn:1").total_size
    assert report.bytes_sent == total - sum(arrived.values())
    assert target.verify() == []


def test_bundle_round_trip(source: Shelf, tmp_path: Path) -> None:
    bundle = tmp_path / "churn.tar"
    exported = export_bundle(source, "team/churn", bundle)
    assert len(exported) == 3
    target = open_target(tmp_path)
    report = import_bundle(target, bundle)
    assert list(report.copied.values()) == ["team/churn:1", "team/churn:2", "team/churn:3"]
    assert report.aliases == {"team/churn@prod": 2}
    for v in source.versions("team/churn"):
        assert target.get(f"team/churn:{v.version}").files == v.files
    assert target.verify() == []
    assert import_bundle(target, bundle).copied == {}


def build_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


@pytest.fixture
def good_members(source: Shelf, tmp_path: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    bundle = tmp_path / "good.tar"
    export_bundle(source, "other:1", bundle)
    members = []
    with tarfile.open(bundle) as tar:
        for member in tar.getmembers():
            members.append((member, tar.extractfile(member).read()))  # type: ignore[union-attr]
    return members


@pytest.mark.parametrize(
    "attack", ["dotdot", "absolute", "symlink", "hardlink", "unexpected", "corrupt", "missing"]
)
def test_hostile_bundles_write_nothing(attack: str, good_members, tmp_path: Path) -> None:
    members = list(good_members)
    if attack == "dotdot":
        members.insert(1, regular("../escaped.txt", b"pwned"))
    elif attack == "absolute":
        members.insert(1, regular(str(tmp_path / "escaped.txt"), b"pwned"))
    elif attack == "symlink":
        link = tarfile.TarInfo("blobs/link")
        link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path)
        members.insert(1, (link, None))
        members.insert(2, regular("blobs/link/escaped.txt", b"pwned"))
    elif attack == "hardlink":
        link = tarfile.TarInfo("manifests/9.json")
        link.type, link.linkname = tarfile.LNKTYPE, "/etc/passwd"
        members.insert(1, (link, None))
    elif attack == "unexpected":
        members.append(regular("notes.txt", b"hello"))
    elif attack == "corrupt":
        info, data = members[-1]
        members[-1] = (info, b"X" + data[1:])
    elif attack == "missing":
        members = members[:-1]
    bundle = tmp_path / "hostile.tar"
    build_tar(bundle, members)
    target = open_target(tmp_path, "victim")
    with pytest.raises(ModelshelfError) as info:
        import_bundle(target, bundle)
    assert "\n" not in str(info.value)
    if attack == "corrupt":
        assert isinstance(info.value, IntegrityError)
    assert (
        not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()
    )
    assert target.models() == []
    assert list(target.cache.blobs()) == []


def test_cli_copy_export_import(source: Shelf, tmp_path: Path, run_cli) -> None:
    env = {"MODELSHELF_URL": source.url, "MODELSHELF_CACHE": str(source.cache.root)}
    result = run_cli("copy", "team/churn@prod", "--to", str(tmp_path / "cli-target"), env=env)
    assert result.returncode == 0, result.stderr
    assert "team/churn:2 -> team/churn:1" in result.stdout
    again = run_cli("copy", "team/churn@prod", "--to", str(tmp_path / "cli-target"), env=env)
    assert "0 copied, 1 already present, 0 B sent" in again.stdout
    assert run_cli("export", "--all", str(tmp_path / "all.tar.gz"), env=env).returncode == 0
    imported = run_cli(
        "--shelf", str(tmp_path / "from-bundle"), "import", str(tmp_path / "all.tar.gz"), env=env
    )
    assert imported.returncode == 0, imported.stderr
    assert "4 copied" in imported.stdout


# --- copies between shelves on this machine read each blob once, in place -------------------------


def _written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts bytes written through /proc")
def test_copy_between_local_shelves_writes_each_byte_once_and_skips_the_cache(
    tmp_path: Path,
) -> None:
    source = modelshelf.open(str(tmp_path / "source"), cache=tmp_path / "source-cache")
    model = tmp_path / "big"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(16 << 20))
    (model / "config.json").write_text("{}")
    source.upload("big", model)
    target = open_target(tmp_path)
    before = _written_bytes()
    report = copy(source, target, "big:1")
    written = _written_bytes() - before
    assert report.bytes_sent == (16 << 20) + 2
    assert written < 1.1 * (16 << 20), f"{written} bytes written to copy 16 MiB"
    assert not (tmp_path / "source-cache" / "blobs").exists() or not any(
        (tmp_path / "source-cache" / "blobs").rglob("*.*")
    )
    out = target.download("big:1", tmp_path / "out")
    assert (out / "weights.bin").read_bytes() == (model / "weights.bin").read_bytes()
    assert target.verify() == []


def test_a_damaged_local_source_blob_is_refused_and_nothing_is_copied(
    source: Shelf, tmp_path: Path
) -> None:
    version = source.get("team/churn:1")
    weights = next(f for f in version.files if f.path == "weights.bin")
    stored = tmp_path / "source" / "blobs" / "sha256" / weights.sha256[:2] / weights.sha256
    os.chmod(stored, 0o644)
    with open(stored, "r+b") as handle:  # same size, one byte flipped, in place
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0xFF]))
    target = open_target(tmp_path)
    with pytest.raises(IntegrityError, match=r"team/churn:1 in .*does not match its sha256"):
        copy(source, target, "team/churn:1")
    assert target.models() == []
    assert weights.sha256 not in {i.key.rsplit("/", 1)[-1] for i in target.storage.list("blobs/")}


def test_local_path_names_a_file_holding_exactly_the_stored_bytes(tmp_path: Path) -> None:
    storage = FileSystemStorage(str(tmp_path / "shelf"))
    (tmp_path / "a").write_bytes(b"first")
    (tmp_path / "b").write_bytes(b"second")
    storage.put_file("blobs/x", tmp_path / "a")
    assert storage.local_path("blobs/x") == tmp_path / "shelf" / "blobs" / "x"
    storage.put_file("blobs/x", tmp_path / "b")
    path = storage.local_path("blobs/x")
    assert path is not None and path.read_bytes() == b"".join(storage.read_stream("blobs/x"))
    tag = storage.put_if_absent("records/y", b"one")
    storage.put_if_match("records/y", b"two", tag)
    path = storage.local_path("records/y")
    assert path is None or path.read_bytes() == storage.read("records/y").data == b"two"
    assert storage.local_path("blobs/missing") is None
