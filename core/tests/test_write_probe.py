"""The conditional-write probe on in-memory storages that honour, or ignore, the conditions.

``MemoryStorage`` is a test double of the :class:`~modelshelf.storage.Storage` interface (not of
any SDK): a dict of objects whose ``put_if_absent`` / ``put_if_match`` either enforce their
condition or, like a server that drops ``If-None-Match`` / ``If-Match``, write unconditionally.
The same checks against real servers behind a header-stripping proxy are in the S3 and Azure
plugins' ``test_*_conditional_probe.py``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from modelshelf import write_probe
from modelshelf.cache import Cache
from modelshelf.errors import (
    AccessDenied,
    AlreadyExists,
    ConditionalWritesUnsupported,
    KeyNotFound,
    PreconditionFailed,
    StorageError,
    VersionNotFound,
)
from modelshelf.shelf import Shelf
from modelshelf.storage import CHUNK_SIZE, ObjectInfo, Storage, StoredBytes, check_key
from modelshelf.write_probe import PROBE_PREFIX, PROBE_REQUESTS, check_conditional_writes

_urls = itertools.count()


class MemoryStorage(Storage):
    """Objects in a dict. ``honour_if_none_match`` / ``honour_if_match`` False makes the
    corresponding conditional write unconditional, as a server that drops the header does."""

    def __init__(
        self,
        *,
        honour_if_none_match: bool = True,
        honour_if_match: bool = True,
        writable: bool = True,
    ) -> None:
        self.url = f"mem://shelf-{next(_urls)}"
        self.honour_if_none_match = honour_if_none_match
        self.honour_if_match = honour_if_match
        self.writable = writable
        self.objects: dict[str, tuple[bytes, str, dt.datetime]] = {}
        #: (method, key) of every call, to count requests.
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._writes = itertools.count(1)

    def _call(self, method: str, key: str) -> None:
        with self._lock:
            self.calls.append((method, key))

    def _store(self, key: str, data: bytes) -> str:
        if not self.writable:
            raise AccessDenied(f"{self.url} is read-only in this test")
        etag = f'"{hashlib.md5(data).hexdigest()}-{next(self._writes)}"'
        self.objects[check_key(key)] = (bytes(data), etag, dt.datetime.now(dt.UTC))
        return etag

    def read(self, key: str) -> StoredBytes:
        self._call("read", key)
        with self._lock:
            if key not in self.objects:
                raise KeyNotFound(f"{key} not found in {self.url}")
            data, etag, _ = self.objects[key]
        return StoredBytes(data, etag)

    def read_stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        data = self.read(key).data
        return iter([data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""])

    def stat(self, key: str) -> ObjectInfo | None:
        self._call("stat", key)
        with self._lock:
            if key not in self.objects:
                return None
            data, etag, modified = self.objects[key]
        return ObjectInfo(key, len(data), etag, modified)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        self._call("list", prefix)
        with self._lock:
            items = [(k, v) for k, v in self.objects.items() if k.startswith(prefix)]
        return iter([ObjectInfo(k, len(d), e, m) for k, (d, e, m) in items])

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        self._call("list_prefixes", prefix)
        with self._lock:
            keys = [k for k in self.objects if k.startswith(prefix) and "/" in k[len(prefix) :]]
        return iter(sorted({prefix + k[len(prefix) :].split("/", 1)[0] + "/" for k in keys}))

    def put_file(self, key: str, path: Path) -> None:
        self._call("put_file", key)
        with self._lock:
            self._store(key, path.read_bytes())

    def put_if_absent(self, key: str, data: bytes) -> str:
        self._call("put_if_absent", key)
        with self._lock:
            if self.honour_if_none_match and key in self.objects:
                raise AlreadyExists(f"{key} exists in {self.url}")
            return self._store(key, data)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        self._call("put_if_match", key)
        with self._lock:
            current = self.objects.get(key)
            if self.honour_if_match and (current is None or current[1] != etag):
                raise PreconditionFailed(f"{key} changed in {self.url}")
            return self._store(key, data)

    def delete(self, key: str) -> None:
        self._call("delete", key)
        with self._lock:
            if not self.writable:
                raise AccessDenied(f"{self.url} is read-only in this test")
            self.objects.pop(key, None)


@pytest.fixture(autouse=True)
def _forget_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts as a fresh process would: no storage proven yet."""
    monkeypatch.setattr(write_probe, "_verified", set())


def _shelf(storage: Storage, tmp_path: Path) -> Shelf:
    return Shelf(storage, cache=Cache(tmp_path / "cache"))


def _probe_calls(storage: MemoryStorage) -> list[tuple[str, str]]:
    return [call for call in storage.calls if call[1].startswith(PROBE_PREFIX)]


# --- the probe itself ----------------------------------------------------------------------------


def test_honouring_storage_passes_with_the_documented_number_of_requests() -> None:
    storage = MemoryStorage()
    check_conditional_writes(storage)
    assert [method for method, _ in storage.calls] == [
        "put_if_absent",
        "put_if_absent",
        "put_if_match",
        "put_if_match",
        "delete",
    ]
    assert len(storage.calls) == PROBE_REQUESTS == 5
    assert len({key for _, key in storage.calls}) == 1
    assert storage.calls[0][1].startswith(PROBE_PREFIX) and storage.calls[0][1].endswith(".json")
    assert storage.objects == {}, "the probe object must be deleted"


def test_a_proven_storage_is_not_probed_again_in_this_process() -> None:
    storage = MemoryStorage()
    check_conditional_writes(storage)
    storage.calls.clear()
    check_conditional_writes(storage)
    # Another object for the same storage (same type and description) counts as proven too.
    twin = MemoryStorage()
    twin.url = storage.url
    check_conditional_writes(twin)
    assert storage.calls == [] and twin.calls == []


def test_each_probe_uses_a_fresh_random_key() -> None:
    first, second = MemoryStorage(), MemoryStorage()
    check_conditional_writes(first)
    check_conditional_writes(second)
    assert first.calls[0][1] != second.calls[0][1]


@pytest.mark.parametrize(
    ("none_match", "match", "named"),
    [
        (False, False, "If-None-Match and If-Match"),
        (False, True, "If-None-Match"),
        (True, False, "If-Match"),
    ],
)
def test_ignored_conditions_are_refused_in_one_line(
    none_match: bool, match: bool, named: str
) -> None:
    storage = MemoryStorage(honour_if_none_match=none_match, honour_if_match=match)
    with pytest.raises(ConditionalWritesUnsupported) as info:
        check_conditional_writes(storage)
    message = str(info.value)
    assert isinstance(info.value, StorageError)
    assert "\n" not in message
    assert storage.url in message
    assert f"({named} accepted but not enforced)" in message
    assert "concurrent writers could overwrite each other's versions" in message
    assert "refuses to write" in message and "upgrade the server" in message
    assert storage.objects == {}, "the probe object must be deleted even when the probe fails"


def test_a_refusal_is_not_remembered() -> None:
    storage = MemoryStorage(honour_if_none_match=False, honour_if_match=False)
    with pytest.raises(ConditionalWritesUnsupported):
        check_conditional_writes(storage)
    # The server is upgraded while the process runs: the next write probes again and passes.
    storage.honour_if_none_match = storage.honour_if_match = True
    storage.calls.clear()
    check_conditional_writes(storage)
    assert len(storage.calls) == PROBE_REQUESTS


def test_no_write_permission_skips_the_probe_without_remembering() -> None:
    storage = MemoryStorage(writable=False)
    check_conditional_writes(storage)  # the caller's own write reports the permission problem
    assert storage.calls == [("put_if_absent", storage.calls[0][1])]
    storage.writable = True
    check_conditional_writes(storage)
    assert len(_probe_calls(storage)) == 1 + PROBE_REQUESTS


def test_an_etag_that_never_changes_is_refused() -> None:
    storage = MemoryStorage()
    storage._store = lambda key, data: (  # type: ignore[method-assign]
        storage.objects.__setitem__(key, (data, '"same"', dt.datetime.now(dt.UTC))) or '"same"'
    )
    with pytest.raises(StorageError, match="kept its etag") as info:
        check_conditional_writes(storage)
    assert not isinstance(info.value, (AlreadyExists, PreconditionFailed))


def test_local_storages_are_not_probed(counting_shelf: Shelf, model_file: Path) -> None:
    counting_shelf.upload("m", model_file)
    counting_shelf.set_alias("m", "prod", 1)
    assert not [c for c in counting_shelf.storage.calls if c[1].startswith(PROBE_PREFIX)]  # type: ignore[attr-defined]
    assert not (Path(counting_shelf.storage.root) / "probes").exists()  # type: ignore[attr-defined]


# --- the probe in front of a shelf's writes --------------------------------------------------------


def test_without_the_probe_two_writers_both_claim_version_1() -> None:
    # What the probe prevents: each writer is told it created the manifest of version 1.
    storage = MemoryStorage(honour_if_none_match=False, honour_if_match=False)
    key = "models/churn/_versions/0000000001.json"
    storage.put_if_absent(key, b'{"writer": "a"}')
    storage.put_if_absent(key, b'{"writer": "b"}')  # no AlreadyExists: "a" is silently lost
    assert storage.read(key).data == b'{"writer": "b"}'
    # And a compare-and-swap on a stale etag overwrites a newer alias.
    first = storage.put_if_absent("models/churn/_aliases/prod.json", b"1")
    storage.put_if_match("models/churn/_aliases/prod.json", b"2", first)
    storage.put_if_match("models/churn/_aliases/prod.json", b"3", first)
    assert storage.read("models/churn/_aliases/prod.json").data == b"3"


def test_writes_are_refused_and_reads_work_on_an_ignoring_storage(
    tmp_path: Path, model_file: Path
) -> None:
    storage = MemoryStorage()
    with _shelf(storage, tmp_path) as shelf:
        published = shelf.upload("churn", model_file)
    # The same objects, now behind a server that drops the conditions (a fresh process).
    write_probe._verified.clear()
    storage.honour_if_none_match = storage.honour_if_match = False
    before = dict(storage.objects)
    storage.calls.clear()
    shelf = _shelf(storage, tmp_path)
    assert shelf.models() == ["churn"]
    assert [v.version for v in shelf.versions("churn")] == [1]
    assert shelf.load("churn:1").read_bytes() == model_file.read_bytes()
    assert not _probe_calls(storage), "reads must never probe"
    for write in (
        lambda: shelf.upload("churn", model_file),
        lambda: shelf.upload("other", model_file),
        lambda: shelf.set_alias("churn", "prod", published.version),
        lambda: shelf.remove_alias("churn", "prod"),
        lambda: shelf.delete("churn:1"),
    ):
        with pytest.raises(ConditionalWritesUnsupported) as info:
            write()
        assert "\n" not in str(info.value) and storage.url in str(info.value)
    assert storage.objects == before, "a refused write must leave the shelf as it was"
    with pytest.raises(VersionNotFound):
        shelf.get("churn:2")


def test_the_first_write_probes_once_and_later_writes_do_not(
    tmp_path: Path, model_file: Path
) -> None:
    storage = MemoryStorage()
    with _shelf(storage, tmp_path) as shelf:
        shelf.models()
        assert not _probe_calls(storage)
        shelf.upload("churn", model_file)
        assert len(_probe_calls(storage)) == PROBE_REQUESTS
        shelf.upload("churn", model_file)
        shelf.set_alias("churn", "prod", 2)
    with _shelf(storage, tmp_path) as again:  # a second Shelf in the same process
        again.set_alias("churn", "prod", 1)
    assert len(_probe_calls(storage)) == PROBE_REQUESTS
    assert not [key for key in storage.objects if key.startswith(PROBE_PREFIX)]
