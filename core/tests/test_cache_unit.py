"""The download cache on its own, without a shelf: insert, check, evict, prune, records, temp files.

The shelf-level promises (a cached blob is re-hashed on every use, private copies, snapshots) are
in ``test_cache_trust.py`` and ``test_shelf.py``; these pin the building blocks they rely on.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelshelf.cache import Cache
from modelshelf.errors import IntegrityError, ModelshelfError
from modelshelf.records import FileEntry


def entry_for(data: bytes, path: str = "w.bin") -> FileEntry:
    return FileEntry(path, hashlib.sha256(data).hexdigest(), len(data))


def pieces(data: bytes, size: int = 7) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache")


def leftovers(cache: Cache) -> list[str]:
    base = cache.root / "blobs" / "sha256"
    return sorted(p.name for p in base.rglob("*") if p.is_file()) if base.exists() else []


def test_insert_verifies_and_stores_read_only_at_the_content_address(cache: Cache) -> None:
    data = os.urandom(1000)
    entry = entry_for(data)
    path = cache.insert(entry, pieces(data), "w.bin")
    assert path == cache.blob_path(entry.sha256)
    assert path.parent.name == entry.sha256[:2]
    assert path.read_bytes() == data
    assert not os.access(path, os.W_OK) or os.geteuid() == 0  # read-only for its owner
    assert cache.has(entry)
    assert cache.check(entry) is None


@pytest.mark.parametrize("damage", ["other bytes", "short", "long"])
def test_insert_of_wrong_bytes_leaves_nothing(cache: Cache, damage: str) -> None:
    data = b"x" * 100
    entry = entry_for(data)
    sent = {"other bytes": b"y" * 100, "short": b"x" * 99, "long": b"x" * 101}[damage]
    with pytest.raises(IntegrityError) as caught:
        cache.insert(entry, pieces(sent), "w.bin")
    assert "w.bin" in str(caught.value) and "\n" not in str(caught.value)
    assert not cache.has(entry)
    assert leftovers(cache) == []


def test_a_transport_failure_mid_stream_leaves_nothing(cache: Cache) -> None:
    data = b"z" * 50

    def broken() -> Iterator[bytes]:
        yield data[:10]
        raise ConnectionError("cut")

    with pytest.raises(ConnectionError):
        cache.insert(entry_for(data), broken(), "w.bin")
    assert leftovers(cache) == []


def test_has_looks_at_the_size_only_check_rehashes_and_evicts(cache: Cache) -> None:
    data = b"a" * 64
    entry = entry_for(data)
    path = cache.insert(entry, [data], "w.bin")
    os.chmod(path, 0o644)
    path.write_bytes(b"b" * 64)  # same size, other bytes: has() cannot tell, check() can
    assert cache.has(entry)
    problem = cache.check(entry)
    assert problem is not None and "evicted" in problem
    assert not path.exists() and not cache.has(entry)
    assert cache.check(entry) is None  # nothing cached: nothing wrong


def test_evict_of_a_missing_blob_is_fine(cache: Cache) -> None:
    cache.evict("0" * 64)


def test_verify_removes_and_reports_corrupt_blobs_only(cache: Cache) -> None:
    good, bad = b"good" * 10, b"bad!" * 10
    cache.insert(entry_for(good), [good], "good")
    path = cache.insert(entry_for(bad), [bad], "bad")
    os.chmod(path, 0o644)
    path.write_bytes(b"rot!" * 10)
    found = cache.verify()
    assert [c.sha256 for c in found] == [entry_for(bad).sha256]
    assert [b.sha256 for b in cache.blobs()] == [entry_for(good).sha256]
    assert cache.verify() == []


def test_prune_evicts_least_recently_used_first(cache: Cache) -> None:
    entries = [entry_for(bytes([n]) * 1000) for n in range(4)]
    for number, entry in enumerate(entries):
        cache.insert(entry, [bytes([number]) * 1000], f"f{number}")
        stamp = time.time() - 1000 + number * 10
        os.utime(cache.blob_path(entry.sha256), (stamp, stamp))
    cache.touch(entries[0].sha256)  # used just now: the oldest becomes the newest
    assert cache.size() == 4000
    planned = cache.prune(2000, dry_run=True)
    assert [b.sha256 for b in planned] == [entries[1].sha256, entries[2].sha256]
    assert cache.size() == 4000  # a dry run removes nothing
    assert [b.sha256 for b in cache.prune(2000)] == [entries[1].sha256, entries[2].sha256]
    assert sorted(b.sha256 for b in cache.blobs()) == sorted([entries[0].sha256, entries[3].sha256])
    assert cache.prune(10_000) == []
    with pytest.raises(ModelshelfError, match="zero or more"):
        cache.prune(-1)


def test_records_are_keyed_by_storage_key_and_etag(cache: Cache) -> None:
    assert cache.get_record("s3://b/p", "models/m/_versions/1.json", '"e1"') is None
    cache.put_record("s3://b/p", "models/m/_versions/1.json", '"e1"', b'{"v": 1}')
    assert cache.get_record("s3://b/p", "models/m/_versions/1.json", '"e1"') == b'{"v": 1}'
    # Another etag, key or shelf is another record: a changed object is never served stale.
    assert cache.get_record("s3://b/p", "models/m/_versions/1.json", '"e2"') is None
    assert cache.get_record("s3://b/other", "models/m/_versions/1.json", '"e1"') is None
    assert cache.get_record("s3://b/p", "models/m/_versions/2.json", '"e1"') is None


def test_clear_temp_removes_only_old_temporary_files(cache: Cache) -> None:
    data = b"kept" * 4
    kept = cache.insert(entry_for(data), [data], "kept")
    # Named as insert names its temporary files (".~" and the digest).
    fresh_temp, old_temp = kept.parent / f".~{kept.name}.fresh", kept.parent / f".~{kept.name}.old"
    fresh_temp.write_bytes(b"1")
    old_temp.write_bytes(b"2")
    past = time.time() - 7200
    os.utime(old_temp, (past, past))
    cache.clear_temp(older_than=3600)
    assert kept.exists() and fresh_temp.exists() and not old_temp.exists()
    assert [b.sha256 for b in cache.blobs()] == [entry_for(data).sha256]  # temp files are no blobs
