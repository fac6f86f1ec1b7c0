"""The second performance round: one read per uploaded byte on local shelves (staging), one write
per downloaded byte (straight into the destination, or a tee into it and the cache), parallel
ranged reads on object stores, and version indexes for cold listings. Each test would fail if its
correctness claim were false."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import warnings
from pathlib import Path

import pytest
from modelshelf import indexes, layout
from modelshelf.cache import Cache
from modelshelf.default_plugins.filesystem import HIDDEN_PREFIX, FileSystemStorage
from modelshelf.errors import BackendUnavailable, IntegrityError
from modelshelf.objectstore import MalformedAnswer, ObjectRead, Replaced
from modelshelf.shelf import Shelf
from modelshelf.transfer import hash_file, hashing_with

GOLDEN = Path(__file__).parent / "golden"


def _memory_store_class() -> type:
    """The in-memory object store double of test_objectstore.py (tests are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_objectstore_double", Path(__file__).parent / "test_objectstore.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MemoryStore  # type: ignore[no-any-return]


MemoryStore = _memory_store_class()


def _hidden_files(root: Path) -> list[Path]:
    return [
        p for p in root.rglob("*") if p.name.startswith(HIDDEN_PREFIX) and p.name.endswith(".tmp")
    ]


def _blobs_in_cache(cache: Path) -> list[Path]:
    base = cache / "blobs"
    return [p for p in base.rglob("*") if p.is_file()] if base.exists() else []


# --- target 1: local uploads read every byte once -----------------------------------------------


def _proc_io(counter: str) -> int:
    """This process's ``rchar`` (bytes read) or ``wchar`` (bytes written) so far."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith(f"{counter}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {counter}")


def _bytes_read() -> int:
    return _proc_io("rchar")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts bytes read through /proc")
@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "user-space"])
def test_local_upload_copies_while_hashing_and_leaves_no_staged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: bool
) -> None:
    if not kernel_copy:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    elif not hasattr(os, "copy_file_range"):
        pytest.skip("no copy_file_range on this system")
    data = os.urandom(32 << 20)
    source = tmp_path / "weights.bin"
    source.write_bytes(data)
    shelf = Shelf(FileSystemStorage(str(tmp_path / "shelf")), cache=Cache(tmp_path / "cache"))
    (tmp_path / "small.txt").write_text("warm")
    shelf.upload("warm", tmp_path / "small.txt")  # imports, the format record
    before = _bytes_read()
    version = shelf.upload("m", source)
    read = _bytes_read() - before
    # Copied into the shelf while hashed, not hashed and then copied again: in user space the
    # source is read once; with the kernel's copy, the kernel reads it and the hash reads the copy.
    passes = 2 if kernel_copy else 1
    assert passes * len(data) <= read < (passes + 0.25) * len(data)
    sha = hashlib.sha256(data).hexdigest()
    assert version.files[0].sha256 == sha
    assert (tmp_path / "shelf" / layout.blob_key(sha)).read_bytes() == data
    assert _hidden_files(tmp_path / "shelf") == []
    # The same content again: the staged copy is not needed and is removed.
    shelf.upload("m", source)
    assert _hidden_files(tmp_path / "shelf") == []


def test_staged_copy_is_exactly_what_was_hashed(tmp_path: Path) -> None:
    storage = FileSystemStorage(str(tmp_path / "shelf"))
    source = tmp_path / "f.bin"
    source.write_bytes(b"a" * (2 << 20))  # staged: at least STAGE_MIN_BYTES
    with storage.upload_staging() as stage, hashing_with(stage):
        sha, size = hash_file(source)
        source.write_bytes(b"b" * (2 << 20))  # changed after hashing: the staged bytes are stored
        storage.put_blob(layout.blob_key(sha), source, sha, size)
    assert (tmp_path / "shelf" / layout.blob_key(sha)).read_bytes() == b"a" * (2 << 20)
    assert _hidden_files(tmp_path / "shelf") == []


def test_a_lost_staged_copy_falls_back_to_a_verified_copy(tmp_path: Path) -> None:
    from modelshelf.errors import ChangedWhileUploading

    storage = FileSystemStorage(str(tmp_path / "shelf"))
    source = tmp_path / "f.bin"
    source.write_bytes(b"a" * (2 << 20))  # staged: at least STAGE_MIN_BYTES
    with storage.upload_staging() as stage, hashing_with(stage):
        sha, size = hash_file(source)
        for temp in _hidden_files(tmp_path / "shelf"):
            temp.unlink()  # e.g. removed by a cleanup
        source.write_bytes(b"b" * (2 << 20))
        with pytest.raises(ChangedWhileUploading):
            storage.put_blob(layout.blob_key(sha), source, sha, size)
    assert not (tmp_path / "shelf" / layout.blob_key(sha)).exists()


def test_small_files_are_hashed_only_and_many_files_hold_few_descriptors(tmp_path: Path) -> None:
    from modelshelf.default_plugins import filesystem

    storage = FileSystemStorage(str(tmp_path / "shelf"))
    small = tmp_path / "small.bin"
    small.write_bytes(b"s" * 100)
    with storage.upload_staging() as stage, hashing_with(stage):
        hash_file(small)
        assert _hidden_files(tmp_path / "shelf") == []
        big = []
        for index in range(filesystem.STAGE_MAX_HELD + 3):
            path = tmp_path / f"big{index}.bin"
            path.write_bytes(index.to_bytes(4, "big") * (1 << 18))
            big.append(hash_file(path))
        assert len(_hidden_files(tmp_path / "shelf")) == filesystem.STAGE_MAX_HELD
    assert _hidden_files(tmp_path / "shelf") == [] and storage._staging.held == 0


def test_a_swapped_staged_file_is_never_renamed_into_place(tmp_path: Path) -> None:
    storage = FileSystemStorage(str(tmp_path / "shelf"))
    source = tmp_path / "f.bin"
    source.write_bytes(b"a" * (2 << 20))  # staged: at least STAGE_MIN_BYTES
    with storage.upload_staging() as stage, hashing_with(stage):
        sha, size = hash_file(source)
        (temp,) = _hidden_files(tmp_path / "shelf")
        temp.unlink()
        temp.write_bytes(
            b"x" * (2 << 20)
        )  # another file under the staged name (maybe its inode number)
        storage.put_blob(layout.blob_key(sha), source, sha, size)  # copies the source, verified
    assert (tmp_path / "shelf" / layout.blob_key(sha)).read_bytes() == b"a" * (2 << 20)
    assert _hidden_files(tmp_path / "shelf") == []


# --- target 2: downloads write each byte once: into the destination, and the cache if kept ------


def _local_shelf_with(tmp_path: Path, data: bytes, *, copies: int = 1) -> tuple[Shelf, str]:
    source = tmp_path / "src"
    source.mkdir()
    for index in range(copies):
        (source / f"weights{index or ''}.bin").write_bytes(data)
    shelf = Shelf(FileSystemStorage(str(tmp_path / "shelf")), cache=Cache(tmp_path / "cache"))
    version = shelf.upload("m", source)
    return shelf, version.files[0].sha256


def _no_copy_out_of_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_second_read(*_: object) -> None:
        raise AssertionError("a cold download must not copy out of the cache")

    monkeypatch.setattr(Cache, "_copy_verified", no_second_read)


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts bytes written through /proc")
def test_download_writes_each_byte_once_into_the_destination_and_leaves_the_cache_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(8 << 20)
    shelf, _ = _local_shelf_with(tmp_path, data)
    _no_copy_out_of_the_cache(monkeypatch)
    before = _proc_io("wchar")
    shelf.download("m:1", tmp_path / "dest")
    written = _proc_io("wchar") - before
    assert (tmp_path / "dest" / "weights.bin").read_bytes() == data
    assert _blobs_in_cache(tmp_path / "cache") == []
    assert len(data) <= written < 1.1 * len(data), f"{written} bytes written for {len(data)}"


def test_download_keep_cache_tees_into_cache_and_destination_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(2 << 20)
    shelf, sha = _local_shelf_with(tmp_path, data)
    _no_copy_out_of_the_cache(monkeypatch)
    shelf.download("m:1", tmp_path / "dest", keep_cache=True)
    assert (tmp_path / "dest" / "weights.bin").read_bytes() == data
    assert shelf.cache.blob_path(sha).read_bytes() == data
    assert not os.access(shelf.cache.blob_path(sha), os.W_OK) or os.geteuid() == 0


@pytest.mark.parametrize("keep_cache", [False, True])
def test_files_with_the_same_content_are_read_from_the_shelf_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_cache: bool
) -> None:
    data = os.urandom(2 << 20)
    shelf, sha = _local_shelf_with(tmp_path, data, copies=3)
    reads = []  # streams of the blob, and its file asked for (for the kernel to copy)
    for method in ("read_stream", "local_path"):
        real = getattr(FileSystemStorage, method)

        def counting(
            self: FileSystemStorage, key: str, *args: object, real: object = real
        ) -> object:
            reads.append(key)
            return real(self, key, *args)  # type: ignore[operator]

        monkeypatch.setattr(FileSystemStorage, method, counting)
    shelf.download("m:1", tmp_path / "dest", keep_cache=keep_cache)
    assert reads == [layout.blob_key(sha)]
    for name in ("weights.bin", "weights1.bin", "weights2.bin"):
        assert (tmp_path / "dest" / name).read_bytes() == data
    assert shelf.cache.has(shelf.get("m:1").files[0]) is keep_cache


@pytest.mark.parametrize("keep_cache", [False, True])
def test_a_corrupted_blob_leaves_nothing_in_destination_or_cache(
    tmp_path: Path, keep_cache: bool
) -> None:
    data = os.urandom(1 << 20)
    shelf, sha = _local_shelf_with(tmp_path, data, copies=2)
    stored = tmp_path / "shelf" / layout.blob_key(sha)
    os.chmod(stored, 0o644)
    stored.write_bytes(b"\0" * len(data))  # same size, wrong bytes
    dest = tmp_path / "dest"
    with pytest.raises(IntegrityError):
        shelf.download("m:1", dest, keep_cache=keep_cache)
    assert not dest.exists() or list(dest.rglob("*")) == []
    assert _blobs_in_cache(tmp_path / "cache") == []  # neither the blob nor a temporary file


def test_a_cached_blob_is_still_copied_verified(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    shelf, sha = _local_shelf_with(tmp_path, data)
    shelf.download("m:1", tmp_path / "a", keep_cache=True)
    blob = shelf.cache.blob_path(sha)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"\1" * len(data))  # the cache is not trusted
    shelf.download("m:1", tmp_path / "b")
    assert (tmp_path / "b" / "weights.bin").read_bytes() == data


# --- target 5: parallel ranged reads ------------------------------------------------------------


class RangedStore(MemoryStore):
    parallel_read_min = 64
    range_size = 16

    def _read_range(self, name: str, start: int, end: int, pin: ObjectRead) -> bytes:
        self._fault("range", start)
        data, etag = self.objects[name]
        if etag != pin.etag:
            raise Replaced()
        return data[start:end]


def test_large_objects_are_read_in_parallel_ranges_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELSHELF_RANGE_WORKERS", "3")
    store = RangedStore()
    data = os.urandom(1000)
    store.store("root/blob", data)
    assert b"".join(store.read_stream("blob", chunk_size=7)) == data
    assert sum(1 for call in store.calls if call[0] == "range") == -(-1000 // 16)


def test_a_short_range_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHELF_RANGE_WORKERS", "2")
    store = RangedStore()
    data = os.urandom(200)
    store.store("root/blob", data)
    store.fail("range", lambda: (_ for _ in ()).throw(MalformedAnswer("cut")))
    assert b"".join(store.read_stream("blob")) == data


def test_a_replaced_object_is_never_spliced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHELF_RANGE_WORKERS", "2")
    store = RangedStore()
    store.store("root/blob", os.urandom(200))
    chunks = store.read_stream("blob", chunk_size=16)
    store.store("root/blob", os.urandom(200))  # replaced after the first answer
    with pytest.raises(BackendUnavailable, match="replaced"):
        b"".join(chunks)


def test_one_worker_reads_one_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHELF_RANGE_WORKERS", "1")
    store = RangedStore()
    data = os.urandom(1000)
    store.store("root/blob", data)
    assert b"".join(store.read_stream("blob")) == data
    assert not any(call[0] == "range" for call in store.calls)


# --- target 3: version indexes -----------------------------------------------------------------


class Md5Store(MemoryStore):
    """Etags are the content MD5, as S3 gives them for single-request writes."""

    def store(self, name: str, data: bytes) -> str:
        etag = f'"{hashlib.md5(data).hexdigest()}"'
        self.objects[name] = (data, etag)
        return etag


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexes, "BLOCK", 10)
    monkeypatch.setattr(indexes, "SMALL_BLOCK", 5)


def _object_shelf(tmp_path: Path, store: MemoryStore, count: int, cache: str = "c0") -> Shelf:
    shelf = Shelf(store, cache=Cache(tmp_path / cache))
    source = tmp_path / "model.json"
    for number in range(count):
        source.write_text(json.dumps({"n": number}))
        shelf.upload("m", source, metrics={"n": number})
    return shelf


def _manifest_reads(store: MemoryStore) -> list[str]:
    return [name for kind, name in store.calls if kind == "get" and "/_versions/" in str(name)]


def _fresh(store: MemoryStore, tmp_path: Path, cache: str) -> Shelf:
    store.calls.clear()
    return Shelf(store, cache=Cache(tmp_path / cache))


@pytest.mark.usefixtures("small_blocks")
def test_a_cold_listing_reads_indexes_and_only_uncovered_manifests(tmp_path: Path) -> None:
    store = Md5Store(page_size=1000)
    _object_shelf(tmp_path, store, 27)
    first = _fresh(store, tmp_path, "c1").versions("m")  # no index yet: reads all, writes them
    assert [v.version for v in first] == list(range(1, 28))
    assert len(_manifest_reads(store)) == 27
    keys = sorted(k for k in store.objects if "/_index/" in k)
    assert keys == [
        "root/" + layout.version_index_key("m", 1, 10),
        "root/" + layout.version_index_key("m", 11, 20),
        "root/" + layout.version_index_key("m", 21, 25),
    ]
    cold = _fresh(store, tmp_path, "c2").versions("m")
    assert cold == first
    assert sorted(_manifest_reads(store)) == [
        "root/" + layout.version_key("m", 26),
        "root/" + layout.version_key("m", 27),
    ]
    warm = _fresh(store, tmp_path, "c2").versions("m")  # the record cache, as before
    assert warm == first and _manifest_reads(store) == []
    assert not [name for kind, name in store.calls if kind == "get" and "/_index/" in str(name)]
    for path in (tmp_path / "c2" / "records").rglob("*"):  # a damaged local copy is fetched again
        if path.is_file():
            path.write_bytes(b"{damaged")
    assert _fresh(store, tmp_path, "c2").versions("m") == first


@pytest.mark.usefixtures("small_blocks")
def test_deletions_and_new_versions_show_up_at_once(tmp_path: Path) -> None:
    store = Md5Store(page_size=1000)
    shelf = _object_shelf(tmp_path, store, 20)
    _fresh(store, tmp_path, "c1").versions("m")  # writes the indexes
    shelf.delete("m:5")
    source = tmp_path / "model.json"
    source.write_text("{}")
    shelf.upload("m", source)
    listed = [v.version for v in _fresh(store, tmp_path, "c2").versions("m")]
    assert listed == [*range(1, 5), *range(6, 22)]


@pytest.mark.usefixtures("small_blocks")
def test_a_lying_index_entry_is_detected_and_the_manifest_read(tmp_path: Path) -> None:
    store = Md5Store(page_size=1000)
    _object_shelf(tmp_path, store, 10)
    _fresh(store, tmp_path, "c1").versions("m")
    key = "root/" + layout.version_index_key("m", 1, 10)
    document = json.loads(store.objects[key][0])
    entry = document["entries"][2]  # version 3, listed etag kept
    manifest = json.loads(entry["manifest"])
    manifest["metrics"] = {"n": 999.0}
    entry["manifest"] = json.dumps(manifest)
    document["entries_sha256"] = indexes._entries_digest(document["entries"])  # a careful liar
    store.store(key, json.dumps(document).encode())
    listed = _fresh(store, tmp_path, "c2").versions("m")
    assert listed[2].metrics == {"n": 2.0}
    assert _manifest_reads(store) == ["root/" + layout.version_key("m", 3)]


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("damage", ["garbage", "entries", "schema", "other_block"])
def test_a_damaged_or_unknown_index_is_ignored(tmp_path: Path, damage: str) -> None:
    store = MemoryStore(page_size=1000)
    _object_shelf(tmp_path, store, 10)
    expected = _fresh(store, tmp_path, "c1").versions("m")
    key = "root/" + layout.version_index_key("m", 1, 10)
    document = json.loads(store.objects[key][0])
    if damage == "garbage":
        data = store.objects[key][0][:-40]
    else:
        if damage == "entries":
            document["entries"][0]["manifest"] = document["entries"][1][
                "manifest"
            ]  # sha256 now wrong
        elif damage == "schema":
            document["schema"] = indexes.INDEX_SCHEMA + 1
        else:
            document["first"], document["last"] = 11, 20
        data = json.dumps(document).encode()
    store.store(key, data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an ignored index is not a problem worth a warning
        assert _fresh(store, tmp_path, "c2").versions("m") == expected
    assert len(_manifest_reads(store)) == 10


@pytest.mark.usefixtures("small_blocks")
def test_an_entry_for_another_version_is_never_used(tmp_path: Path) -> None:
    store = MemoryStore(page_size=1000)
    _object_shelf(tmp_path, store, 10)
    _fresh(store, tmp_path, "c1").versions("m")
    key = "root/" + layout.version_index_key("m", 1, 10)
    document = json.loads(store.objects[key][0])
    # Entry 4 claims to be version 4 (its listed etag) but holds version 5's manifest.
    document["entries"][3]["manifest"] = document["entries"][4]["manifest"]
    document["entries_sha256"] = indexes._entries_digest(document["entries"])
    store.store(key, json.dumps(document).encode())
    listed = _fresh(store, tmp_path, "c2").versions("m")
    assert [v.version for v in listed] == list(range(1, 11))
    assert listed[3].metrics == {"n": 3.0}


@pytest.mark.usefixtures("small_blocks")
def test_indexes_are_disposable_and_never_keep_or_free_blobs(tmp_path: Path) -> None:
    store = MemoryStore(page_size=1000)
    shelf = _object_shelf(tmp_path, store, 10)
    _fresh(store, tmp_path, "c1").versions("m")
    shelf.delete("m:2")
    report = shelf.gc(grace=dt.timedelta(0))
    assert len(report.removed) == 1  # the index mentions version 2's blob: it is still freed
    for key in [k for k in store.objects if "/_index/" in k]:
        del store.objects[key]
    listed = _fresh(store, tmp_path, "c2").versions("m")
    assert [v.version for v in listed] == [1, *range(3, 11)]
    assert shelf.models() == ["m"]  # _index is never taken for a model folder
    assert shelf.verify() == []


def test_local_shelves_neither_read_nor_write_indexes(tmp_path: Path, small_blocks: None) -> None:
    shelf = Shelf(FileSystemStorage(str(tmp_path / "shelf")), cache=Cache(tmp_path / "c"))
    source = tmp_path / "model.json"
    for number in range(10):
        source.write_text(str(number))
        shelf.upload("m", source)
    assert len(shelf.versions("m")) == 10
    assert not (tmp_path / "shelf" / "models" / "m" / "_index").exists()


def test_golden_version_index() -> None:
    golden = (GOLDEN / "version_index_v1.json").read_bytes()
    index = indexes.decode(golden, "churn", 1, 250, "golden")
    assert index.schema == 1 and [e.version for e in index.entries] == [1, 2]
    assert indexes.encode(index) == golden


# --- the kernel's copy (copy_file_range), hashed by reading the copy back -----------------------


def test_kernel_copy_hashes_exactly_the_copy(tmp_path: Path) -> None:
    from modelshelf.kernel_copy import copy_hashing_in_kernel

    if not hasattr(os, "copy_file_range"):
        pytest.skip("no copy_file_range on this system")
    data = os.urandom((40 << 20) + 123)  # several copy chunks and a ragged end
    (tmp_path / "src").write_bytes(data)
    with open(tmp_path / "src", "rb") as src, open(tmp_path / "dst", "w+b") as dst:
        done = copy_hashing_in_kernel(src.fileno(), dst.fileno())
    assert done == (hashlib.sha256(data).hexdigest(), len(data))
    assert (tmp_path / "dst").read_bytes() == data


@pytest.mark.parametrize("errno_name", ["EXDEV", "EIO"])
def test_kernel_copy_falls_back_or_fails_leaving_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, errno_name: str
) -> None:
    """Refused at once (another filesystem): ``False`` and the caller copies in user space. Failing
    midway (an I/O error): the error, and no file left. The hashing thread ends either way."""
    import errno
    import threading

    from modelshelf.records import FileEntry
    from modelshelf.verified_files import copy_in_kernel_verified

    data = os.urandom(40 << 20)
    (tmp_path / "src").write_bytes(data)
    entry = FileEntry(path="w.bin", sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    real = getattr(os, "copy_file_range", None)
    calls = []

    def failing(source: int, target: int, count: int) -> int:
        calls.append(count)
        if errno_name == "EXDEV" or len(calls) > 1:
            raise OSError(getattr(errno, errno_name), errno_name)
        return real(source, target, count) if real else os.write(target, os.read(source, count))

    monkeypatch.setattr(os, "copy_file_range", failing, raising=False)
    threads = threading.active_count()
    target = tmp_path / "dst"
    if errno_name == "EXDEV":
        assert copy_in_kernel_verified(tmp_path / "src", entry, target, "w.bin") is False
    else:
        with pytest.raises(OSError, match="EIO"):
            copy_in_kernel_verified(tmp_path / "src", entry, target, "w.bin")
    assert not target.exists()
    assert threading.active_count() == threads


def test_download_without_the_kernel_copy_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "copy_file_range", raising=False)
    data = os.urandom(3 << 20)
    shelf, sha = _local_shelf_with(tmp_path, data, copies=2)
    shelf.download("m:1", tmp_path / "dest")
    for name in ("weights.bin", "weights1.bin"):
        assert (tmp_path / "dest" / name).read_bytes() == data
    stored = tmp_path / "shelf" / layout.blob_key(sha)
    os.chmod(stored, 0o644)
    stored.write_bytes(b"\1" * len(data))
    with pytest.raises(IntegrityError):
        shelf.download("m:1", tmp_path / "bad")
    assert not (tmp_path / "bad").exists() or list((tmp_path / "bad").rglob("*")) == []
