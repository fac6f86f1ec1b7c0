"""Every GCSStorage primitive, over HTTP against a real fake-gcs-server."""

from __future__ import annotations

import hashlib
import os
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from modelshelf.errors import AlreadyExists, InvalidName, KeyNotFound, PreconditionFailed

if TYPE_CHECKING:
    from modelshelf_gcs.storage import GCSStorage

# google-cloud-storage is imported inside tests, never at collection (see conftest.py).


def _open(url: str, **options: Any) -> GCSStorage:
    from modelshelf_gcs import open_storage

    return open_storage(url, **options)


def _race(count: int, attempt: Any) -> list[Any]:
    """Run ``attempt(i)`` in ``count`` threads released together; return results or exceptions."""
    barrier = threading.Barrier(count)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return attempt(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


# --- small objects ---------------------------------------------------------------------------


def test_put_if_absent_read_stat_roundtrip(gcs_storage: GCSStorage) -> None:
    etag = gcs_storage.put_if_absent("models/churn/_versions/0000000001.json", b'{"v": 1}')
    assert etag.isdigit()  # the etag is the object generation
    stored = gcs_storage.read("models/churn/_versions/0000000001.json")
    assert stored.data == b'{"v": 1}'
    assert stored.etag == etag
    info = gcs_storage.stat("models/churn/_versions/0000000001.json")
    assert info is not None
    assert (info.key, info.size, info.etag) == ("models/churn/_versions/0000000001.json", 8, etag)
    assert info.modified is not None and info.modified.tzinfo is not None


def test_small_records_are_json_and_never_edge_cached(gcs_storage: GCSStorage) -> None:
    gcs_storage.put_if_absent("models/m/_aliases/prod.json", b"{}")
    blob = gcs_storage.bucket.get_blob("shelf/models/m/_aliases/prod.json")
    assert blob.content_type == "application/json"
    assert blob.cache_control == "no-cache"


def test_put_if_absent_refuses_existing_key(gcs_storage: GCSStorage) -> None:
    gcs_storage.put_if_absent("k.json", b"first")
    with pytest.raises(AlreadyExists, match=r"k\.json already exists in shelf gs://"):
        gcs_storage.put_if_absent("k.json", b"second")
    assert gcs_storage.read("k.json").data == b"first"


def test_create_only_race_has_exactly_one_winner(gcs_storage: GCSStorage) -> None:
    results = _race(12, lambda i: gcs_storage.put_if_absent("race.json", f"writer {i}".encode()))
    winners = [i for i, r in enumerate(results) if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, AlreadyExists)]
    assert len(winners) == 1, results
    assert len(losers) == 11, results
    assert gcs_storage.read("race.json").data == f"writer {winners[0]}".encode()


def test_put_if_match_swaps_on_current_generation(gcs_storage: GCSStorage) -> None:
    first = gcs_storage.put_if_absent("alias.json", b"v1")
    second = gcs_storage.put_if_match("alias.json", b"v2", first)
    assert second != first
    stored = gcs_storage.read("alias.json")
    assert (stored.data, stored.etag) == (b"v2", second)


@pytest.mark.parametrize("etag", ["12345", "0", "not-a-generation", ""])
def test_put_if_match_refuses_missing_key_and_foreign_etags(
    gcs_storage: GCSStorage, etag: str
) -> None:
    with pytest.raises(PreconditionFailed):
        gcs_storage.put_if_match("missing.json", b"x", etag)
    assert gcs_storage.stat("missing.json") is None


def test_compare_and_swap_race_has_exactly_one_winner(gcs_storage: GCSStorage) -> None:
    etag = gcs_storage.put_if_absent("alias.json", b"start")
    results = _race(8, lambda i: gcs_storage.put_if_match("alias.json", f"{i}".encode(), etag))
    winners = [i for i, r in enumerate(results) if isinstance(r, str)]
    assert len(winners) == 1, results
    assert all(isinstance(r, PreconditionFailed) for r in results if not isinstance(r, str))
    assert gcs_storage.read("alias.json").data == str(winners[0]).encode()


def test_missing_keys(gcs_storage: GCSStorage) -> None:
    assert gcs_storage.stat("nope") is None
    with pytest.raises(KeyNotFound, match="nope not found in shelf gs://"):
        gcs_storage.read("nope")
    # read_stream raises at the call, before any iteration.
    with pytest.raises(KeyNotFound):
        gcs_storage.read_stream("nope")


def test_delete(gcs_storage: GCSStorage) -> None:
    gcs_storage.put_if_absent("gone.json", b"x")
    gcs_storage.delete("gone.json")
    assert gcs_storage.stat("gone.json") is None
    gcs_storage.delete("gone.json")  # deleting a missing key is not an error
    # A deleted key can be created again (create-only means "no live object").
    gcs_storage.put_if_absent("gone.json", b"y")
    assert gcs_storage.read("gone.json").data == b"y"


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a\\b"])
def test_unsafe_keys_are_refused_before_io(gcs_storage: GCSStorage, key: str) -> None:
    with pytest.raises(InvalidName):
        gcs_storage.put_if_absent(key, b"x")
    with pytest.raises(InvalidName):
        gcs_storage.read(key)


# --- listing ---------------------------------------------------------------------------------


def test_list_pages_through_more_than_a_thousand_objects(gcs_storage: GCSStorage) -> None:
    count = 1_050  # the GCS page size is 1,000: this needs a second page
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: gcs_storage.put_if_absent(f"blobs/{i:05d}", b"."), range(count)))
    gcs_storage.put_if_absent("other/outside", b".")
    keys = [info.key for info in gcs_storage.list("blobs/")]
    assert sorted(keys) == [f"blobs/{i:05d}" for i in range(count)]
    assert all(info.size == 1 and info.etag.isdigit() for info in gcs_storage.list("blobs/000"))
    assert len(list(gcs_storage.list(""))) == count + 1


def test_list_stays_inside_the_shelf_prefix(bucket: str) -> None:
    inner = _open(f"gs://{bucket}/team")
    sibling = _open(f"gs://{bucket}/team2")  # shares the string prefix "team"
    inner.put_if_absent("a.json", b"1")
    sibling.put_if_absent("b.json", b"2")
    assert [i.key for i in inner.list("")] == ["a.json"]
    assert [i.key for i in sibling.list("")] == ["b.json"]
    root = _open(f"gs://{bucket}")
    assert sorted(i.key for i in root.list("")) == ["team/a.json", "team2/b.json"]


def test_list_prefixes_across_pages(
    gcs_storage: GCSStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelshelf_gcs.storage as module

    monkeypatch.setattr(module, "PAGE_SIZE", 3)
    names = [f"m{i:02d}" for i in range(10)]
    for name in names:
        gcs_storage.put_if_absent(f"models/{name}/_versions/0000000001.json", b"{}")
        gcs_storage.put_if_absent(f"models/{name}/_aliases/prod.json", b"{}")
    gcs_storage.put_if_absent("models/loose-object.json", b"{}")  # an object, not a prefix
    found = list(gcs_storage.list_prefixes("models/"))
    assert sorted(found) == [f"models/{n}/" for n in names]
    assert sorted(gcs_storage.list_prefixes("models/m03/")) == [
        "models/m03/_aliases/",
        "models/m03/_versions/",
    ]
    assert list(gcs_storage.list_prefixes("nothing-here/")) == []
    assert sorted(gcs_storage.list_prefixes("")) == ["models/"]


# --- large objects ---------------------------------------------------------------------------


@pytest.fixture
def big_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "weights.bin"
    data = os.urandom(20 * 1024 * 1024 + 12345)  # ~20 MB, not a multiple of any chunk size
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_put_file_and_read_stream_20mb_in_constant_memory(
    storage_url: str, big_file: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelshelf_gcs.storage as module

    path, digest = big_file
    size = path.stat().st_size
    # 4 MiB pieces both ways: a whole-object buffer (20 MB) would blow the bound below.
    monkeypatch.setattr(module, "DOWNLOAD_RANGE_SIZE", 4 << 20)
    storage = _open(storage_url, chunk_size=4 << 20)
    key = f"blobs/sha256/{digest[:2]}/{digest}"

    tracemalloc.start()
    try:
        storage.put_file(key, path)
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        sha, total, sizes = hashlib.sha256(), 0, []
        for chunk in storage.read_stream(key, chunk_size=1 << 20):
            sha.update(chunk)
            total += len(chunk)
            sizes.append(len(chunk))
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (total, sha.hexdigest()) == (size, digest)
    assert max(sizes) == 1 << 20 and len(sizes) == -(-size // (1 << 20))
    assert storage.stat(key).size == size  # type: ignore[union-attr]
    assert upload_peak < 12 << 20, upload_peak
    assert download_peak < 12 << 20, download_peak


def test_put_file_replaces_and_read_stream_of_empty_object(
    gcs_storage: GCSStorage, tmp_path: Path
) -> None:
    small = tmp_path / "small.bin"
    small.write_bytes(b"abc")
    gcs_storage.put_file("blobs/x", small)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    gcs_storage.put_file("blobs/x", empty)  # replacing is allowed for put_file
    assert list(gcs_storage.read_stream("blobs/x")) == []
    assert gcs_storage.stat("blobs/x").size == 0  # type: ignore[union-attr]


def test_read_stream_is_pinned_to_the_generation_it_started_with(
    gcs_storage: GCSStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelshelf_gcs.storage as module
    from modelshelf.errors import StorageError

    monkeypatch.setattr(module, "DOWNLOAD_RANGE_SIZE", 1 << 20)
    first = tmp_path / "first.bin"
    first.write_bytes(b"a" * (3 << 20))
    gcs_storage.put_file("blobs/y", first)
    stream = gcs_storage.read_stream("blobs/y", chunk_size=1 << 20)
    assert next(stream) == b"a" * (1 << 20)
    second = tmp_path / "second.bin"
    second.write_bytes(b"b" * (3 << 20))
    gcs_storage.put_file("blobs/y", second)
    # Never a mix of two contents: the rest of the old generation is gone, so the read fails.
    with pytest.raises(StorageError, match="replaced or deleted while being read"):
        list(stream)


def test_touch_refreshes_metadata_and_ignores_vanished_keys(
    gcs_storage: GCSStorage, tmp_path: Path
) -> None:
    local = tmp_path / "w.bin"
    local.write_bytes(b"w")
    gcs_storage.put_file("blobs/w", local)
    before = gcs_storage.bucket.get_blob("shelf/blobs/w")
    assert not (before.metadata or {}).get("modelshelf-touched")
    gcs_storage.touch("blobs/w")
    after = gcs_storage.bucket.get_blob("shelf/blobs/w")
    # On GCS the patch also moves `updated` (what gc compares); fake-gcs-server keeps the old
    # `updated` on metadata patches, so only the patch itself can be checked here.
    assert after.metadata["modelshelf-touched"]
    assert after.generation == before.generation  # content untouched
    gcs_storage.touch("blobs/vanished")  # deleted by a concurrent gc: not an error
