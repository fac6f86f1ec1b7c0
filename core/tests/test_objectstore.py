"""The object-store algorithms, on an in-memory backend whose primitives can be made to fail.

``MemoryStore`` is a double of the primitive interface of :class:`ObjectStoreStorage` (not of any
SDK): every primitive call first consumes a scripted fault, if one is queued for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from modelshelf.errors import (
    AlreadyExists,
    BackendUnavailable,
    ChangedWhileUploading,
    InvalidName,
    KeyNotFound,
    ModelshelfError,
    PreconditionFailed,
    StorageError,
)
from modelshelf.objectstore import (
    ListPage,
    MalformedAnswer,
    ObjectRead,
    ObjectStoreStorage,
    Refused,
    Replaced,
    TryAgain,
    check_options,
    option_value,
)
from modelshelf.retry import Backoff, retrying
from modelshelf.storage import ObjectInfo, StoredBytes

QUICK = Backoff(attempts=4, first=0.0)


class SdkError(Exception):
    """What the pretend SDK raises for a missing object."""


class MemoryStore(ObjectStoreStorage):
    url = "mem://bucket/root"
    root = "root/"
    endpoint = "mem://endpoint"
    service = "MemoryStore"
    answer_retry = QUICK
    write_retry = Backoff(attempts=6, first=0.0)

    def __init__(self, page_size: int = 2, piece: int = 4) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.faults: dict[str, list[Callable[[], Any]]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.page_size = page_size
        self.piece = piece
        self.bucket = True
        self._etags = itertools.count(1)

    # test helpers
    def fail(self, primitive: str, *faults: Callable[[], Any]) -> None:
        self.faults.setdefault(primitive, []).extend(faults)

    def _fault(self, primitive: str, detail: Any = None) -> None:
        self.calls.append((primitive, detail))
        queue = self.faults.get(primitive)
        if queue:
            queue.pop(0)()

    def store(self, name: str, data: bytes) -> str:
        etag = f'"{next(self._etags)}"'
        self.objects[name] = (data, etag)
        return etag

    # primitives
    def _get(self, name: str) -> StoredBytes:
        self._fault("get", name)
        if name not in self.objects:
            raise SdkError(name)
        return StoredBytes(*self.objects[name])

    def _open_read(
        self, name: str, start: int, pin: ObjectRead | None, chunk_size: int
    ) -> ObjectRead:
        self._fault("open_read", start)
        if name not in self.objects:
            raise SdkError(name)
        data, etag = self.objects[name]
        if pin is not None and pin.etag != etag:
            raise Replaced()

        def pieces() -> Iterator[bytes]:
            for at in range(start, len(data), self.piece):
                self._fault("piece", at)
                yield data[at : at + self.piece]

        return ObjectRead(len(data), etag, pieces())

    def _head(self, name: str) -> ObjectInfo:
        self._fault("head", name)
        if name not in self.objects:
            raise SdkError(name)
        data, etag = self.objects[name]
        return ObjectInfo(name, len(data), etag)

    def _list_page(self, prefix: str, token: str | None, delimited: bool) -> ListPage:
        self._fault("list_page", token)
        names = sorted(n for n in self.objects if n.startswith(prefix))
        if delimited:
            names = sorted(
                {
                    prefix + n[len(prefix) :].split("/")[0] + "/"
                    for n in names
                    if "/" in n[len(prefix) :]
                }
            )
        start = int(token or 0)
        chunk = names[start : start + self.page_size]
        more = str(start + self.page_size) if start + self.page_size < len(names) else None
        if delimited:
            return ListPage(prefixes=chunk, token=more)
        infos = [ObjectInfo(n, len(self.objects[n][0]), self.objects[n][1]) for n in chunk]
        return ListPage(objects=infos, token=more)

    def _put(
        self, name: str, data: bytes, *, if_none_match: bool, if_match: str | None
    ) -> str | None:
        self._fault("put_before", name)
        if if_none_match and name in self.objects:
            raise Refused(create_only=True)
        if if_match is not None and self.objects.get(name, (b"", None))[1] != if_match:
            raise Refused(create_only=False)
        etag = self.store(name, data)
        self._fault("put_after", name)  # the write landed; its answer may still be lost
        return etag

    def _upload_file(self, name: str, path: Path) -> None:
        self._fault("upload", name)
        self.store(name, path.read_bytes())

    def _delete(self, name: str) -> None:
        self._fault("delete", name)
        if name not in self.objects:
            raise SdkError(name)
        del self.objects[name]

    def _bucket_exists(self) -> bool:
        self._fault("bucket_exists")
        return self.bucket

    def _map_error(
        self, exc: BaseException, action: str, key: str, write: bool
    ) -> ModelshelfError | None:
        if isinstance(exc, SdkError):
            return KeyNotFound(f"{key} not found")
        return None


def raising(exc: BaseException) -> Callable[[], None]:
    def fault() -> None:
        raise exc

    return fault


def cut() -> None:
    raise MalformedAnswer("no ETag header")


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


# --- retries of malformed answers ----------------------------------------------------------------


def test_a_malformed_answer_is_asked_again(store: MemoryStore) -> None:
    store.store("root/a", b"data")
    store.fail("get", cut, cut)
    assert store.read("a").data == b"data"
    assert [c for c, _ in store.calls] == ["get"] * 3


def test_answers_that_stay_malformed_are_backend_unavailable_in_one_line(
    store: MemoryStore,
) -> None:
    store.store("root/a", b"data")
    store.fail("head", *[cut] * 10)
    with pytest.raises(BackendUnavailable) as info:
        store.stat("a")
    message = str(info.value)
    assert "\n" not in message and "4 incomplete answers" in message and "no ETag header" in message
    assert "mem://endpoint" in message and "mem://bucket/root" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert len(store.calls) == QUICK.attempts


def test_other_errors_are_mapped_at_once_and_unknown_ones_kept(store: MemoryStore) -> None:
    with pytest.raises(KeyNotFound):
        store.read("missing")
    assert [c for c, _ in store.calls] == ["get", "bucket_exists"]
    store.fail("get", raising(ZeroDivisionError()))
    with pytest.raises(ZeroDivisionError):  # a bug is not a storage failure
        store.read("missing")


def test_missing_bucket_is_told_apart_once(store: MemoryStore) -> None:
    assert store.stat("a") is None
    assert store.stat("b") is None
    assert [c for c, _ in store.calls].count("bucket_exists") == 1
    other = MemoryStore()
    other.bucket = False
    with pytest.raises(StorageError, match="does not exist") as info:
        other.stat("a")
    assert not isinstance(info.value, KeyNotFound)


def test_unsafe_keys_are_refused_before_any_primitive(store: MemoryStore) -> None:
    for call in (
        lambda: store.read("../x"),
        lambda: store.put_if_absent("/a", b""),
        lambda: list(store.list("a//")),
    ):
        with pytest.raises(InvalidName):
            call()
    assert store.calls == []


# --- resumable reads ---------------------------------------------------------------------------


def test_read_stream_resumes_at_the_first_missing_byte(store: MemoryStore) -> None:
    store.store("root/blob", bytes(range(20)))
    store.fail("piece", lambda: None, cut)  # the second piece's answer is cut
    assert b"".join(store.read_stream("blob", chunk_size=3)) == bytes(range(20))
    assert [d for c, d in store.calls if c == "open_read"] == [0, 4]


def test_read_stream_yields_bounded_chunks(store: MemoryStore) -> None:
    store.piece = 10
    store.store("root/blob", b"x" * 25)
    assert [len(c) for c in store.read_stream("blob", chunk_size=4)] == [4, 4, 2, 4, 4, 2, 4, 1]


def test_read_stream_of_a_replaced_object_raises_rather_than_splice(store: MemoryStore) -> None:
    store.store("root/blob", b"A" * 12)

    def replace() -> None:
        store.store("root/blob", b"B" * 12)
        raise MalformedAnswer("cut")

    store.fail("piece", lambda: None, replace)
    received = b""
    with pytest.raises(BackendUnavailable, match="replaced or deleted while being read"):
        for chunk in store.read_stream("blob"):
            received += chunk
    assert received == b"A" * 4


def test_read_stream_gives_up_after_its_budget(store: MemoryStore) -> None:
    store.store("root/blob", b"x" * 40)
    store.fail("piece", *[cut] * 20)
    with pytest.raises(BackendUnavailable, match="incomplete answers"):
        list(store.read_stream("blob"))
    assert len([c for c, _ in store.calls if c == "open_read"]) == QUICK.attempts


def test_read_stream_of_a_missing_key_raises_at_the_call(store: MemoryStore) -> None:
    with pytest.raises(KeyNotFound):
        store.read_stream("nothing")


# --- listing -----------------------------------------------------------------------------------


class RangedStore(MemoryStore):
    """A store that also answers ranged reads; ``short`` cuts that many next answers by a byte."""

    short = 0

    def _read_range(self, name: str, start: int, end: int, pin: ObjectRead) -> bytes:
        self._fault("read_range", (start, end))
        data, etag = self.objects[name]
        if pin.etag != etag:
            raise Replaced()
        if self.short:
            self.short -= 1
            return data[start : end - 1]
        return data[start:end]


def test_read_range_is_one_pinned_ranged_request() -> None:
    store = RangedStore()
    store.store("root/pack", bytes(range(200)))
    assert store.read_range("pack", 150, 20) == bytes(range(150, 170))
    assert [c for c in store.calls if c[0] in ("open_read", "piece", "read_range")] == [
        ("read_range", (150, 170))
    ]
    assert store.read_range("pack", 190, 50) == bytes(range(190, 200))  # the object ends first
    assert store.read_range("pack", 200, 5) == b""


def test_read_range_asks_a_short_answer_again() -> None:
    store = RangedStore()
    store.store("root/pack", bytes(range(100)))
    store.short = 1
    assert store.read_range("pack", 10, 30) == bytes(range(10, 40))
    assert [c for c in store.calls if c[0] == "read_range"] == [("read_range", (10, 40))] * 2


def test_read_range_without_ranged_reads_streams_from_the_start(store: MemoryStore) -> None:
    store.store("root/pack", bytes(range(40)))
    assert store.read_range("pack", 8, 4) == bytes(range(8, 12))
    assert ("open_read", 0) in store.calls


def test_list_pages_and_retries_a_cut_page(store: MemoryStore) -> None:
    for name in ("a/1", "a/2", "b/1", "b/2", "c"):
        store.store(f"root/{name}", b"x")
    store.store("other/z", b"x")
    store.fail("list_page", lambda: None, cut)  # the second page is cut once
    assert [i.key for i in store.list("")] == ["a/1", "a/2", "b/1", "b/2", "c"]
    assert [d for c, d in store.calls if c == "list_page"] == [None, "2", "2", "4"]
    assert list(store.list_prefixes("")) == ["a/", "b/"]


# --- conditional writes ------------------------------------------------------------------------


def test_create_only_and_compare_and_swap(store: MemoryStore) -> None:
    first = store.put_if_absent("k", b"1")
    with pytest.raises(AlreadyExists):
        store.put_if_absent("k", b"2")
    second = store.put_if_match("k", b"2", first)
    with pytest.raises(PreconditionFailed):
        store.put_if_match("k", b"3", first)
    with pytest.raises(PreconditionFailed):
        store.put_if_match("k", b"3", "")
    assert store.read("k") == StoredBytes(b"2", second)


def test_a_lost_answer_of_a_winning_write_is_still_a_win(store: MemoryStore) -> None:
    store.fail("put_after", lambda: (_ for _ in ()).throw(TryAgain(None, maybe_applied=True)))
    etag = store.put_if_absent("k", b"mine")
    assert store.read("k") == StoredBytes(b"mine", etag)
    assert [c for c, _ in store.calls].count("get") == 2  # the check, then the read above


def test_a_lost_answer_before_another_writer_is_still_a_loss(store: MemoryStore) -> None:
    def theirs_then_lost() -> None:
        store.store("root/k", b"theirs")
        raise TryAgain(None, maybe_applied=True)

    store.fail("put_after", theirs_then_lost)
    with pytest.raises(AlreadyExists):
        store.put_if_absent("k", b"mine")


def test_a_refusal_after_a_certain_failure_is_not_checked(store: MemoryStore) -> None:
    store.store("root/k", b"theirs")
    store.fail("put_before", raising(TryAgain(None, maybe_applied=False)))
    with pytest.raises(AlreadyExists):
        store.put_if_absent("k", b"theirs")  # same bytes, but our attempt never landed
    assert "get" not in [c for c, _ in store.calls]


def test_a_malformed_answer_makes_the_write_uncertain(store: MemoryStore) -> None:
    etag = store.store("root/k", b"1")
    store.fail("put_after", cut)  # swapped, but the answer was cut
    new = store.put_if_match("k", b"2", etag)
    assert store.read("k") == StoredBytes(b"2", new)


def test_a_write_that_cannot_be_confirmed_says_so(store: MemoryStore) -> None:
    store.fail("put_after", raising(TryAgain(None, maybe_applied=True)))
    store.fail("get", *[cut] * 10)
    with pytest.raises(BackendUnavailable, match="could not be confirmed"):
        store.put_if_absent("k", b"mine")


def test_try_again_is_bounded_and_then_maps_its_cause(store: MemoryStore) -> None:
    store.fail(
        "put_before", *[raising(TryAgain(SdkError("busy"), maybe_applied=False, attempts=2))] * 5
    )
    with pytest.raises(KeyNotFound):  # the cause, as the backend maps it
        store.put_if_absent("k", b"x")
    assert [c for c, _ in store.calls].count("put_before") == 2


# --- blobs and housekeeping --------------------------------------------------------------------


def test_put_blob_sends_verified_bytes_in_one_request(store: MemoryStore, tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "w"
    path.write_bytes(b"weights")
    store.put_blob("blobs/w", path, hashlib.sha256(b"weights").hexdigest(), 7)
    assert store.read("blobs/w").data == b"weights"
    assert [c for c, _ in store.calls][:2] == ["put_before", "put_after"]
    with pytest.raises(ChangedWhileUploading):
        store.put_blob("blobs/v", path, hashlib.sha256(b"other").hexdigest(), 7)
    assert "root/blobs/v" not in store.objects


def test_put_blob_above_the_limit_uses_the_stable_copy(store: MemoryStore, tmp_path: Path) -> None:
    import hashlib

    store.small_blob_limit = 3
    path = tmp_path / "w"
    path.write_bytes(b"weights")
    store.put_blob("blobs/w", path, hashlib.sha256(b"weights").hexdigest(), 7)
    assert [c for c, _ in store.calls] == ["upload"]
    assert store.read("blobs/w").data == b"weights"


def test_delete_and_touch_ignore_missing_keys(store: MemoryStore) -> None:
    store.store("root/k", b"x")
    store.delete("k")
    store.delete("k")
    store.touch("k")
    assert store.stat("k") is None


def test_read_only_refuses_writes_before_any_request(store: MemoryStore, tmp_path: Path) -> None:
    store.read_only_reason = "is read-only here"
    with pytest.raises(ModelshelfError, match="is read-only here"):
        store.put_if_absent("k", b"x")
    with pytest.raises(ModelshelfError):
        store.delete("k")
    assert store.calls == []


# --- retry and options helpers -----------------------------------------------------------------


def test_retrying_stops_at_the_budget_and_reraises() -> None:
    tries: list[int] = []

    def flaky() -> int:
        tries.append(1)
        raise OSError("again")

    with pytest.raises(OSError):
        retrying(flaky, Backoff(attempts=3, first=0.0), lambda exc, attempt: True)
    assert len(tries) == 3
    assert Backoff(attempts=5, first=1.0, cap=3.0, jitter=False).delay(4) == 3.0


def test_options_are_checked_in_one_line() -> None:
    with pytest.raises(StorageError, match="unknown option 'colour' for x; known options: a, b"):
        check_options({"colour": 1}, ["a", "b"], "x")
    assert option_value("n", "3", "count", "x") == 3
    for value, kind in (
        ("many", "count"),
        (True, "count"),
        (1.5, "count"),
        (0, "seconds"),
        ("no", "flag"),
    ):
        with pytest.raises(StorageError, match="must be"):
            option_value("n", value, kind, "x")
    with pytest.raises(StorageError) as info:
        option_value("endpoint", "http://user:secret@host/", "count", "x")
    assert "secret" not in str(info.value)
