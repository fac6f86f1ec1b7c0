"""Every S3Storage primitive against a real moto S3 server over HTTP."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from modelshelf.errors import AlreadyExists, InvalidName, KeyNotFound, PreconditionFailed
from modelshelf.storage import ObjectInfo
from modelshelf_s3 import open_storage
from modelshelf_s3.storage import S3Storage

MiB = 1 << 20


def race(count: int, action: Any) -> list[Any]:
    """Run ``action(i)`` in ``count`` threads released together; return results or exceptions."""
    barrier = threading.Barrier(count)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return action(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


# --- create-only --------------------------------------------------------------------------------


def test_put_if_absent_creates_then_refuses(
    s3_storage: S3Storage, s3_client: Any, bucket: str
) -> None:
    etag = s3_storage.put_if_absent("models/churn/_versions/1.json", b'{"v": 1}')
    stored = s3_storage.read("models/churn/_versions/1.json")
    assert stored.data == b'{"v": 1}'
    assert stored.etag == etag
    # The object lives below the shelf prefix in the bucket, not at the bucket root.
    raw = s3_client.get_object(Bucket=bucket, Key="team/models/models/churn/_versions/1.json")
    assert raw["Body"].read() == b'{"v": 1}'
    assert raw["ETag"] == etag

    with pytest.raises(AlreadyExists, match=r"already exists on shelf s3://"):
        s3_storage.put_if_absent("models/churn/_versions/1.json", b'{"v": "other"}')
    assert s3_storage.read("models/churn/_versions/1.json").data == b'{"v": 1}'


def test_put_if_absent_race_has_exactly_one_winner(s3_storage: S3Storage) -> None:
    key = "models/churn/_versions/0000000001.json"
    results = race(16, lambda i: s3_storage.put_if_absent(key, f"writer {i}".encode()))
    winners = [i for i, r in enumerate(results) if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, AlreadyExists)]
    assert len(winners) == 1, results
    assert len(losers) == 15, results
    stored = s3_storage.read(key)
    assert stored.data == f"writer {winners[0]}".encode()
    assert stored.etag == results[winners[0]]


# --- compare-and-swap ---------------------------------------------------------------------------


def test_put_if_match_swaps_on_current_etag_only(s3_storage: S3Storage) -> None:
    key = "models/churn/_aliases/prod.json"
    first = s3_storage.put_if_absent(key, b"1")
    second = s3_storage.put_if_match(key, b"2", first)
    assert second != first
    assert s3_storage.read(key) == s3_storage.read(key)  # stable
    assert s3_storage.read(key).data == b"2"

    with pytest.raises(PreconditionFailed, match="changed or vanished"):
        s3_storage.put_if_match(key, b"stale write", first)
    assert s3_storage.read(key).data == b"2"
    assert s3_storage.read(key).etag == second
    # The etag from stat works as well as the one from a write.
    info = s3_storage.stat(key)
    assert info is not None
    third = s3_storage.put_if_match(key, b"3", info.etag)
    assert s3_storage.read(key).etag == third


def test_put_if_match_on_missing_key_is_refused(s3_storage: S3Storage) -> None:
    etag = s3_storage.put_if_absent("a.json", b"x")
    s3_storage.delete("a.json")
    with pytest.raises(PreconditionFailed):
        s3_storage.put_if_match("a.json", b"y", etag)
    assert s3_storage.stat("a.json") is None


def test_put_if_match_race_has_exactly_one_winner(s3_storage: S3Storage) -> None:
    key = "models/churn/_aliases/prod.json"
    etag = s3_storage.put_if_absent(key, b"start")
    results = race(12, lambda i: s3_storage.put_if_match(key, f"writer {i}".encode(), etag))
    winners = [i for i, r in enumerate(results) if isinstance(r, str)]
    assert len(winners) == 1, results
    assert all(isinstance(r, PreconditionFailed) for i, r in enumerate(results) if i != winners[0])
    assert s3_storage.read(key).data == f"writer {winners[0]}".encode()


# --- reads --------------------------------------------------------------------------------------


def test_missing_keys(s3_storage: S3Storage) -> None:
    assert s3_storage.stat("nope.json") is None
    with pytest.raises(KeyNotFound, match=r"nope\.json"):
        s3_storage.read("nope.json")
    with pytest.raises(KeyNotFound):
        list(s3_storage.read_stream("nope.json"))


def test_stat_reports_size_etag_and_time(s3_storage: S3Storage) -> None:
    etag = s3_storage.put_if_absent("x/y.bin", b"12345")
    info = s3_storage.stat("x/y.bin")
    assert info is not None
    assert (info.key, info.size, info.etag) == ("x/y.bin", 5, etag)
    assert info.modified is not None and info.modified.tzinfo is not None


def test_read_stream_yields_bounded_chunks_in_order(
    s3_storage: S3Storage, random_file: Any
) -> None:
    path = random_file(3 * MiB + 123)
    s3_storage.put_file("blobs/big", path)
    chunks = list(s3_storage.read_stream("blobs/big", chunk_size=64 * 1024))
    assert len(chunks) >= (3 * MiB) // (64 * 1024)
    assert max(len(c) for c in chunks) <= 64 * 1024
    assert b"".join(chunks) == path.read_bytes()


def test_read_stream_can_be_abandoned(s3_storage: S3Storage) -> None:
    s3_storage.put_if_absent("k", b"a" * 300_000)
    stream = s3_storage.read_stream("k", chunk_size=1000)
    assert next(stream) == b"a" * 1000
    stream.close()  # type: ignore[attr-defined]  # releases the connection
    # The client still works afterwards (the pool was not left with a half-read connection).
    assert s3_storage.read("k").data == b"a" * 300_000


# --- listing ------------------------------------------------------------------------------------


def test_list_and_list_prefixes_page_past_1000(bucket: str, s3_client: Any) -> None:
    storage = open_storage(f"s3://{bucket}/root")
    count = 1_050  # ListObjectsV2 returns at most 1,000 keys per page
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: storage.put_if_absent(f"many/{i:05d}/x", b""), range(count)))
    storage.put_if_absent("manyother", b"")  # shares the string prefix "many", not "many/"
    s3_client.put_object(Bucket=bucket, Key="outside/many/1/x", Body=b"")  # outside the shelf

    pages: list[int] = []
    storage.client.meta.events.register("after-call.s3.ListObjectsV2", lambda **kw: pages.append(1))
    keys = [info.key for info in storage.list("many/")]
    assert sorted(keys) == [f"many/{i:05d}/x" for i in range(count)]
    assert len(pages) >= 2

    pages.clear()
    prefixes = list(storage.list_prefixes("many/"))
    assert sorted(prefixes) == [f"many/{i:05d}/" for i in range(count)]
    assert len(pages) >= 2

    everything = {info.key for info in storage.list("")}
    assert len(everything) == count + 1
    assert "manyother" in everything
    assert set(storage.list_prefixes("")) == {"many/"}
    assert all(isinstance(i, ObjectInfo) and i.size == 0 for i in storage.list("many/0000"))
    storage.close()


def test_list_is_confined_to_the_shelf_prefix(bucket: str) -> None:
    one = open_storage(f"s3://{bucket}/one")
    two = open_storage(f"s3://{bucket}/one-two")  # string-prefix neighbour of "one"
    one.put_if_absent("models/a/_versions/1.json", b"1")
    two.put_if_absent("models/b/_versions/1.json", b"2")
    assert [i.key for i in one.list("models/")] == ["models/a/_versions/1.json"]
    assert list(one.list_prefixes("models/")) == ["models/a/"]
    assert list(two.list_prefixes("models/")) == ["models/b/"]
    assert one.stat("models/b/_versions/1.json") is None


def test_bucket_root_shelf(bucket: str, s3_client: Any) -> None:
    storage = open_storage(f"s3://{bucket}")
    storage.put_if_absent(".modelshelf.json", b"{}")
    assert s3_client.head_object(Bucket=bucket, Key=".modelshelf.json")["ContentLength"] == 2
    assert [i.key for i in storage.list("")] == [".modelshelf.json"]
    assert storage.url == f"s3://{bucket}"


# --- uploads ------------------------------------------------------------------------------------


def test_put_file_multipart_20mb(bucket: str, random_file: Any, s3_client: Any) -> None:
    storage = open_storage(
        f"s3://{bucket}/p",
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
        max_concurrency=4,
    )
    path = random_file(20 * MiB + 17)
    storage.put_file("blobs/sha256/ab/abc", path)
    info = storage.stat("blobs/sha256/ab/abc")
    assert info is not None and info.size == path.stat().st_size
    # A multipart object's ETag is "<md5 of part md5s>-<part count>": 5 parts of 5 MiB.
    assert info.etag.strip('"').endswith("-5")
    digest = hashlib.sha256()
    for chunk in storage.read_stream("blobs/sha256/ab/abc"):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    # No multipart upload is left open (S3 would bill its parts).
    assert not s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_put_file_small_and_replace(s3_storage: S3Storage, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"first")
    s3_storage.put_file("blobs/x", path)
    path.write_bytes(b"second content")
    s3_storage.put_file("blobs/x", path)
    assert s3_storage.read("blobs/x").data == b"second content"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    s3_storage.put_file("blobs/empty", empty)
    assert s3_storage.read("blobs/empty").data == b""


def test_delete(s3_storage: S3Storage) -> None:
    s3_storage.put_if_absent("gone", b"x")
    s3_storage.delete("gone")
    assert s3_storage.stat("gone") is None
    s3_storage.delete("gone")  # deleting a missing key is not an error
    s3_storage.put_if_absent("gone", b"again")  # and create-only works again afterwards
    assert s3_storage.read("gone").data == b"again"


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "..", "a/./b", "back\\slash"])
def test_unsafe_keys_are_refused_before_io(s3_storage: S3Storage, key: str) -> None:
    calls: list[str] = []
    s3_storage.client.meta.events.register("before-call.s3", lambda **kw: calls.append("call"))
    for attempt in (
        lambda: s3_storage.read(key),
        lambda: s3_storage.stat(key),
        lambda: s3_storage.put_if_absent(key, b""),
        lambda: s3_storage.put_if_match(key, b"", '"x"'),
        lambda: s3_storage.delete(key),
    ):
        with pytest.raises(InvalidName):
            attempt()
    assert calls == []


# --- optional hooks used by core: touch (upload re-using a blob) and cleanup (gc) ---------------


def test_touch_refreshes_old_blobs_only(
    s3_storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from modelshelf_s3 import storage as storage_module

    copies: list[int] = []
    s3_storage.client.meta.events.register(
        "before-call.s3.CopyObject", lambda **kw: copies.append(1)
    )
    s3_storage.put_if_absent("blobs/sha256/aa/aa11", b"weights")
    before = s3_storage.stat("blobs/sha256/aa/aa11")
    assert before is not None and before.modified is not None

    s3_storage.touch("blobs/sha256/aa/aa11")  # modified just now: nothing to do
    assert copies == []

    monkeypatch.setattr(storage_module, "TOUCH_AFTER", __import__("datetime").timedelta(0))
    time.sleep(1.1)  # LastModified has one-second resolution
    s3_storage.touch("blobs/sha256/aa/aa11")
    after = s3_storage.stat("blobs/sha256/aa/aa11")
    assert copies == [1]
    assert after is not None and after.modified is not None and after.modified > before.modified
    assert s3_storage.read("blobs/sha256/aa/aa11").data == b"weights"
    s3_storage.touch("blobs/sha256/aa/missing")  # a vanished blob is not an error


def test_cleanup_aborts_multipart_uploads_below_the_shelf_only(
    s3_storage: S3Storage, s3_client: Any, bucket: str
) -> None:
    import datetime as dt

    s3_client.create_multipart_upload(Bucket=bucket, Key="team/models/blobs/sha256/ab/x")
    outside = s3_client.create_multipart_upload(Bucket=bucket, Key="elsewhere/x")

    def open_uploads() -> set[str]:
        return {
            u["UploadId"]
            for u in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        }

    # moto 5.2 reports every upload as initiated on 2010-11-10, so only the prefix filter (not
    # the age filter) can be observed here.
    s3_storage.cleanup(dt.timedelta(hours=1))
    assert open_uploads() == {outside["UploadId"]}
    s3_storage.cleanup(dt.timedelta(0))  # nothing left to abort is not an error
    assert open_uploads() == {outside["UploadId"]}
