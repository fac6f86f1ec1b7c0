"""Deterministic interleavings of two shelf operations, on any storage backend.

:class:`PausingStorage` wraps a backend and numbers every primitive call; a test can pause one
side just before its k-th call. :func:`explore` does that for every k: it pauses one operation at
step k, runs the other until it finishes or is seen waiting, lets the first go on, and checks an
invariant on what both reported. Doing it for every step of both sides covers every point at which
one operation can be overtaken by the other, which random races only sample.

:class:`InterleavingContract` is part of :class:`~modelshelf.testing.StorageContract`, so every
backend proves with it that ``gc``, uploads, deletes and alias moves keep the shelf's invariants
(see :mod:`modelshelf.leases`): a version reported as published never loses a file, and no alias
is left pointing at a deleted version.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import modelshelf
from modelshelf.cache import Cache
from modelshelf.errors import BackendUnavailable, ModelshelfError
from modelshelf.storage import CHUNK_SIZE, ObjectInfo, Storage, StoredBytes

#: How long a paused side may wait for the test to let it go, at most.
_PAUSE_LIMIT = 120.0


class PausingStorage(Storage):
    """A storage that records every primitive call and can hold one of them back."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.url = inner.url
        self.local = inner.local
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._pause_at: int | None = None
        #: The call held back, once it has been reached.
        self.held_call: tuple[str, str] | None = None
        self.paused = threading.Event()
        self._go = threading.Event()

    # --- control ---------------------------------------------------------------------------

    def pause_before(self, step: int) -> None:
        """Hold back the call numbered ``step`` (0 = the first call from now on) until :meth:`resume`."""
        with self._lock:
            self._pause_at = len(self.calls) + step
        self.paused.clear()
        self._go.clear()

    def resume(self) -> None:
        with self._lock:
            self._pause_at = None
        self._go.set()

    def count(self, method: str, prefix: str = "") -> int:
        with self._lock:
            return sum(1 for m, key in self.calls if m == method and key.startswith(prefix))

    def _step(self, method: str, key: str) -> None:
        with self._lock:
            hold = len(self.calls) == self._pause_at
            self.calls.append((method, key))
        if hold:
            self.held_call = (method, key)
            self.paused.set()
            if not self._go.wait(_PAUSE_LIMIT):
                raise BackendUnavailable(f"test harness never resumed {method} {key}")

    # --- the primitives, each one numbered step ------------------------------------------------

    def read(self, key: str) -> StoredBytes:
        self._step("read", key)
        return self.inner.read(key)

    def read_stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        self._step("read_stream", key)
        return self.inner.read_stream(key, chunk_size)

    def stat(self, key: str) -> ObjectInfo | None:
        self._step("stat", key)
        return self.inner.stat(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        self._step("list", prefix)
        return iter(list(self.inner.list(prefix)))

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        self._step("list_prefixes", prefix)
        return iter(list(self.inner.list_prefixes(prefix)))

    def put_file(self, key: str, path: Path) -> None:
        self._step("put_file", key)
        self.inner.put_file(key, path)

    def put_blob(self, key: str, path: Path, sha256: str, size: int) -> None:
        self._step("put_blob", key)
        self.inner.put_blob(key, path, sha256, size)

    def put_if_absent(self, key: str, data: bytes) -> str:
        self._step("put_if_absent", key)
        return self.inner.put_if_absent(key, data)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        self._step("put_if_match", key)
        return self.inner.put_if_match(key, data, etag)

    def delete(self, key: str) -> None:
        self._step("delete", key)
        self.inner.delete(key)

    def touch(self, key: str) -> None:
        self._step("touch", key)
        self.inner.touch(key)

    def cleanup(self, older_than: dt.timedelta) -> None:
        self._step("cleanup", "")
        self.inner.cleanup(older_than)

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return self.inner.describe()


class Borrowed(PausingStorage):
    """A storage lent to a shelf: closing the shelf leaves it open for the next one."""

    def close(self) -> None:
        pass


@attrs.define
class Outcome:
    """What one side of an interleaving returned or raised."""

    result: Any = None
    error: BaseException | None = None
    done: threading.Event = attrs.Factory(threading.Event)


def _start(action: Callable[[], Any]) -> tuple[threading.Thread, Outcome]:
    outcome = Outcome()

    def run() -> None:
        try:
            outcome.result = action()
        except BaseException as exc:
            outcome.error = exc
        finally:
            outcome.done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _until(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.002)


#: A case: given a fresh shelf URL, prepare it and return the two sides and the check.
Case = Callable[
    [str],
    tuple[
        Callable[[modelshelf.Shelf], Any],
        Callable[[modelshelf.Shelf], Any],
        Callable[[Outcome, Outcome], None],
    ],
]


def explore(
    open_shelf: Callable[[str, Callable[[Storage], Storage]], modelshelf.Shelf],
    fresh_url: Callable[[], str],
    case: Case,
) -> int:
    """Run ``case`` with each side paused before each of its storage calls; return the runs made.

    ``open_shelf(url, wrap)`` opens a new shelf on ``url`` whose storage is ``wrap(storage)``;
    each side gets its own shelf (its own connection, like two processes). ``fresh_url()`` gives
    the URL of a new, empty shelf for every run.
    """
    runs = 0
    for paused_side in (0, 1):
        step = 0
        while True:
            reached = _run_once(open_shelf, fresh_url(), case, paused_side, step)
            runs += 1
            if not reached:
                break  # the paused side finished before reaching this step: all steps explored
            step += 1
    return runs


def _run_once(
    open_shelf: Callable[[str, Callable[[Storage], Storage]], modelshelf.Shelf],
    url: str,
    case: Case,
    paused_side: int,
    step: int,
) -> bool:
    """One run of ``case`` with one side held before its call ``step``; True if it got there."""
    first, second, check = case(url)
    stores: list[PausingStorage] = []

    def wrap(storage: Storage) -> Storage:
        stores.append(PausingStorage(storage))
        return stores[-1]

    shelves = [open_shelf(url, wrap), open_shelf(url, wrap)]
    for shelf in shelves:
        shelf.lease_poll = 0.005
    sides = [lambda: first(shelves[0]), lambda: second(shelves[1])]
    held, other = stores[paused_side], stores[1 - paused_side]
    held.pause_before(step)
    held_thread, held_outcome = _start(sides[paused_side])
    _until(lambda: held.paused.is_set() or held_outcome.done.is_set(), "the paused side stopped")
    reached = held.paused.is_set()
    other_thread, other_outcome = _start(sides[1 - paused_side])
    # The other side runs to its end, or until it is seen waiting for the held one.
    polls = other.count("list", "leases/gc/")
    _until(
        lambda: other_outcome.done.is_set() or other.count("list", "leases/gc/") >= polls + 3,
        "the other side finished or waited",
    )
    held.resume()
    held_thread.join(_PAUSE_LIMIT)
    other_thread.join(_PAUSE_LIMIT)
    outcomes = (held_outcome, other_outcome) if paused_side == 0 else (other_outcome, held_outcome)
    try:
        check(*outcomes)
    except AssertionError as exc:
        side = "first" if paused_side == 0 else "second"
        raise AssertionError(
            f"{side} side held before its call {step} {held.held_call}: {exc}"
        ) from exc
    finally:
        for shelf in shelves:
            shelf.close()
    return reached


def _raise_unexpected(outcome: Outcome) -> None:
    if outcome.error is not None and not isinstance(outcome.error, ModelshelfError):
        raise outcome.error


class InterleavingContract:
    """Every interleaving of gc, uploads, deletes and alias moves keeps the shelf's invariants."""

    # Provided by StorageContract.
    storage_url: Any
    storage_options: Any

    @pytest.fixture
    def interleave(
        self, storage_url: str, storage_options: dict[str, Any], tmp_path: Path
    ) -> Iterator[Callable[[Case], int]]:
        """``interleave(case)`` explores ``case`` on fresh shelves; returns the runs made.

        A local storage gets a new directory per run. A remote one is opened once per side (opening
        a cloud client costs more than a whole run) and emptied between runs.
        """
        counter = iter(range(1_000_000))
        opened: dict[int, Storage] = {}

        def storage_for(url: str, slot: int) -> Storage:
            if slot not in opened:
                opened[slot] = modelshelf.open(
                    url, cache=tmp_path / "cache", **storage_options
                ).storage
            return opened[slot]

        remote = not modelshelf.open(
            storage_url, cache=tmp_path / "cache", **storage_options
        ).storage.local
        shared_url = f"{storage_url.rstrip('/')}/interleave-{secrets.token_hex(3)}"

        def fresh_url() -> str:
            if not remote:
                return f"{storage_url.rstrip('/')}/i{next(counter)}-{secrets.token_hex(3)}"
            wiper = storage_for(shared_url, 0)
            for info in list(wiper.list("")):
                wiper.delete(info.key)
            return shared_url

        sides = iter(range(1_000_000))

        def open_shelf(
            url: str, wrap: Callable[[Storage], Storage], slot: int | None = None
        ) -> modelshelf.Shelf:
            cache = Cache(tmp_path / f"cache-{secrets.token_hex(4)}")
            if not remote:
                plain = modelshelf.open(url, cache=cache.root, **storage_options)
                return modelshelf.Shelf(wrap(plain.storage), cache=cache)
            # Two sides of one run use two clients, as two processes would.
            return modelshelf.Shelf(
                wrap(Borrowed(storage_for(url, 1 + (next(sides) % 2 if slot is None else slot)))),
                cache=cache,
            )

        def open_plain(url: str) -> modelshelf.Shelf:
            return open_shelf(url, lambda storage: storage, slot=0)

        self._open = open_plain

        def run(case: Case) -> int:
            runs = explore(open_shelf, fresh_url, case)
            print(
                f"interleavings explored: {runs}"
            )  # shown with -s; docs/reliability.md quotes them
            return runs

        yield run
        for storage in opened.values():
            storage.close()

    def _assert_published_intact(
        self, url: str, versions: list[Any], contents: dict[str, bytes], tmp: Path
    ) -> None:
        """Every version reported as published downloads, verified, with the bytes uploaded."""
        with self._open(url) as shelf:
            problems = shelf.verify()
            assert not problems, f"verify found {problems}"
            for version in versions:
                target = tmp / secrets.token_hex(4)
                shelf.download(version.ref, target)
                for name, data in contents.items():
                    assert (target / name).read_bytes() == data, f"{version.ref}/{name} changed"

    def test_gc_never_deletes_a_blob_an_upload_reuses(
        self, interleave: Callable[[Case], int], tmp_path: Path
    ) -> None:
        """An old orphan blob re-used by an upload survives gc at every interleaving."""

        def case(url: str) -> tuple[Any, Any, Any]:
            data = secrets.token_bytes(2048)
            source = tmp_path / f"{secrets.token_hex(4)}.bin"
            source.write_bytes(data)
            with self._open(url) as shelf:
                shelf.upload("m", source)
                shelf.delete("m:1")  # its blob is now an orphan, old enough for grace 0

            def check(gc: Outcome, upload: Outcome) -> None:
                _raise_unexpected(gc)
                assert upload.error is None, f"upload failed: {upload.error!r}"
                self._assert_published_intact(url, [upload.result], {source.name: data}, tmp_path)

            return (
                lambda shelf: shelf.gc(grace=dt.timedelta(0)),
                lambda shelf: shelf.upload("m", source),
                check,
            )

        assert interleave(case) > 4

    def test_gc_never_deletes_a_pack_an_upload_reuses(
        self, interleave: Callable[[Case], int], tmp_path: Path
    ) -> None:
        """The same for a pack: an upload of many small files whose pack a deleted version left as
        an old orphan keeps that pack at every interleaving (a pack is one of the blobs its lease
        names)."""
        from ..packing import MIN_PACKED_FILES

        def case(url: str) -> tuple[Any, Any, Any]:
            files = {
                f"small/f{i:02d}.json": secrets.token_bytes(100 + i)
                for i in range(MIN_PACKED_FILES)
            }
            folder = tmp_path / secrets.token_hex(4)
            (folder / "small").mkdir(parents=True)
            for name, data in files.items():
                (folder / name).write_bytes(data)
            with self._open(url) as shelf:
                assert shelf.upload("m", folder).packs, "the small files were not packed"
                shelf.delete("m:1")  # its pack is now an orphan, old enough for grace 0

            def check(gc: Outcome, upload: Outcome) -> None:
                _raise_unexpected(gc)
                assert upload.error is None, f"upload failed: {upload.error!r}"
                self._assert_published_intact(url, [upload.result], files, tmp_path)

            return (
                lambda shelf: shelf.gc(grace=dt.timedelta(0)),
                lambda shelf: shelf.upload("m", folder),
                check,
            )

        assert interleave(case) > 4

    def test_gc_never_deletes_a_blob_of_an_upload_in_flight(
        self, interleave: Callable[[Case], int], tmp_path: Path
    ) -> None:
        """Blobs an upload wrote itself survive gc even when the upload outlives the grace period."""

        def case(url: str) -> tuple[Any, Any, Any]:
            files = {f"f{i}.bin": secrets.token_bytes(1024 + i) for i in range(2)}
            folder = tmp_path / secrets.token_hex(4)
            folder.mkdir()
            for name, data in files.items():
                (folder / name).write_bytes(data)

            def check(upload: Outcome, gc: Outcome) -> None:
                _raise_unexpected(gc)
                assert upload.error is None, f"upload failed: {upload.error!r}"
                self._assert_published_intact(url, [upload.result], files, tmp_path)

            return (
                lambda shelf: shelf.upload("m", folder),
                lambda shelf: shelf.gc(grace=dt.timedelta(0)),
                check,
            )

        assert interleave(case) > 4

    def test_no_alias_is_left_on_a_deleted_version(
        self, interleave: Callable[[Case], int], tmp_path: Path
    ) -> None:
        """``set_alias`` racing ``delete`` of the same version: never an alias on a tombstone."""

        def case(url: str) -> tuple[Any, Any, Any]:
            source = tmp_path / f"{secrets.token_hex(4)}.bin"
            source.write_bytes(secrets.token_bytes(64))
            with self._open(url) as shelf:
                shelf.upload("m", source)
                shelf.upload("m", source)

            def check(delete: Outcome, alias: Outcome) -> None:
                _raise_unexpected(delete)
                _raise_unexpected(alias)
                with self._open(url) as shelf:
                    for name in shelf.aliases("m"):
                        shelf.get(f"m@{name}")  # raises if the alias points at a deleted version
                    deleted = delete.error is None
                    if deleted:
                        with pytest.raises(ModelshelfError):
                            shelf.get("m:1")
                    if alias.error is None and deleted:
                        raise AssertionError("both the delete and the alias move reported success")
                    assert not shelf.verify()

            return (
                lambda shelf: shelf.delete("m:1"),
                lambda shelf: shelf.set_alias("m", "prod", 1),
                check,
            )

        assert interleave(case) > 4

    def test_writes_whose_answer_was_lost_land_exactly_once(
        self, storage_url: str, storage_options: dict[str, Any], tmp_path: Path
    ) -> None:
        """Each conditional write lands but its first answer is lost (the caller sees a network
        error): the upload publishes one version, the alias moves once, the delete succeeds."""

        class LosesFirstAnswers(PausingStorage):
            lost: set[str] = set()

            def _maybe_lose(self, key: str) -> None:
                if (
                    not key.startswith(("leases/", ".modelshelf", "probes/"))
                    and "/_log/" not in key
                    and key not in self.lost
                ):
                    self.lost.add(key)
                    raise BackendUnavailable("connection reset while reading the answer")

            def put_if_absent(self, key: str, data: bytes) -> str:
                etag = self.inner.put_if_absent(key, data)
                self._maybe_lose(key)
                return etag

            def put_if_match(self, key: str, data: bytes, etag: str) -> str:
                new = self.inner.put_if_match(key, data, etag)
                self._maybe_lose(key)
                return new

        plain = modelshelf.open(storage_url, cache=tmp_path / "c1", **storage_options)
        shelf = modelshelf.Shelf(LosesFirstAnswers(plain.storage), cache=Cache(tmp_path / "c2"))
        source = tmp_path / "model.bin"
        source.write_bytes(b"weights")
        assert shelf.upload("m", source).version == 1
        assert shelf.upload("m", source).version == 2
        assert [v.version for v in shelf.list_versions("m")] == [1, 2]
        shelf.set_alias("m", "prod", 1)
        shelf.set_alias("m", "prod", 2)
        moves = [(e.version, e.previous) for e in shelf.history("m") if e.action == "alias_set"]
        assert moves == [(1, None), (2, 1)]
        assert shelf.aliases("m")["prod"].previous == 1
        shelf.delete("m:1")
        assert [v.version for v in shelf.list_versions("m")] == [2]
        shelf.close()

    def test_a_file_that_changes_while_uploading_is_never_published(
        self, storage_url: str, storage_options: dict[str, Any], tmp_path: Path
    ) -> None:
        """A checkpoint still being written when it is uploaded: the upload fails in one line,
        nothing is published, and an upload of the finished file works and downloads verified."""
        from modelshelf.errors import ChangedWhileUploading

        plain = modelshelf.open(storage_url, cache=tmp_path / "c1", **storage_options)
        store = PausingStorage(plain.storage)
        shelf = modelshelf.Shelf(store, cache=Cache(tmp_path / "c2"))
        source = tmp_path / "checkpoint.bin"
        source.write_bytes(b"epoch 1 " * 4096)
        hold = threading.Event()
        original = store.put_blob

        def put_blob_while_the_file_changes(key: str, path: Path, sha256: str, size: int) -> None:
            if not hold.is_set():
                hold.set()
                source.write_bytes(b"epoch 2 " * 4096)  # the training job writes on
            original(key, path, sha256, size)

        store.put_blob = put_blob_while_the_file_changes  # type: ignore[method-assign]
        with pytest.raises(ChangedWhileUploading) as raised:
            shelf.upload("m", source)
        assert "\n" not in str(raised.value)
        assert shelf.models() == []
        finished = shelf.upload("m", source)
        assert finished.version == 1
        assert (
            shelf.download(finished.ref, tmp_path / "out") / "checkpoint.bin"
        ).read_bytes() == b"epoch 2 " * 4096
        assert shelf.verify() == []
        shelf.close()
