"""The storage contract: what every backend must do, checked against a real service.

Subclass :class:`StorageContract` and override ``storage_url`` (a URL for a fresh, empty shelf that
``modelshelf.open`` accepts; create the bucket or container in the fixture). Override
``storage_options`` if ``modelshelf.open`` needs keyword options (they must be picklable: the
concurrency tests pass them to child processes). Raise ``race_processes``/``race_uploads`` for a
heavier concurrency check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import modelshelf
from modelshelf.errors import (
    AlreadyExists,
    IntegrityError,
    InvalidName,
    KeyNotFound,
    PreconditionFailed,
    VersionNotFound,
)
from modelshelf.storage import Storage

from . import workers
from .interleaving import InterleavingContract


class StorageContract(InterleavingContract):
    """Tests every :class:`~modelshelf.storage.Storage` backend must pass."""

    race_processes = 4
    race_uploads = 5
    alias_processes = 3
    alias_moves = 5

    # --- fixtures to override --------------------------------------------------------------

    @pytest.fixture
    def storage_url(self) -> str:
        raise NotImplementedError("override the storage_url fixture: a URL for a fresh, empty shelf")

    @pytest.fixture
    def storage_options(self) -> dict[str, Any]:
        return {}

    # --- derived fixtures ------------------------------------------------------------------

    @pytest.fixture
    def shelf(
        self, storage_url: str, storage_options: dict[str, Any], modelshelf_cache: Path
    ) -> Iterator[modelshelf.Shelf]:
        shelf = modelshelf.open(storage_url, cache=modelshelf_cache, **storage_options)
        try:
            yield shelf
        finally:
            shelf.close()

    @pytest.fixture
    def storage(self, shelf: modelshelf.Shelf) -> Storage:
        return shelf.storage

    # --- primitives ------------------------------------------------------------------------

    def test_missing_key(self, storage: Storage) -> None:
        assert storage.stat("nothing/here.json") is None
        with pytest.raises(KeyNotFound):
            storage.read("nothing/here.json")
        with pytest.raises(KeyNotFound):
            b"".join(storage.read_stream("nothing/here.json"))
        storage.delete("nothing/here.json")  # deleting a missing key is not an error

    def test_put_if_absent_creates_once(self, storage: Storage) -> None:
        etag = storage.put_if_absent("a/b.json", b"first")
        stored = storage.read("a/b.json")
        assert stored.data == b"first"
        assert stored.etag == etag
        with pytest.raises(AlreadyExists):
            storage.put_if_absent("a/b.json", b"second")
        assert storage.read("a/b.json").data == b"first"

    def test_put_if_absent_race_has_one_winner(self, storage: Storage) -> None:
        winners: list[int] = []
        losers: list[int] = []
        barrier = threading.Barrier(8)

        def attempt(i: int) -> None:
            barrier.wait()
            try:
                storage.put_if_absent("race/key.json", str(i).encode())
                winners.append(i)
            except AlreadyExists:
                losers.append(i)

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(winners) == 1 and len(losers) == 7
        assert storage.read("race/key.json").data == str(winners[0]).encode()

    def test_put_if_match_swaps_only_on_current_etag(self, storage: Storage) -> None:
        first = storage.put_if_absent("cas.json", b"v1")
        second = storage.put_if_match("cas.json", b"v2", first)
        assert second != first
        assert storage.read("cas.json").data == b"v2"
        with pytest.raises(PreconditionFailed):
            storage.put_if_match("cas.json", b"stale", first)
        assert storage.read("cas.json").data == b"v2"
        info = storage.stat("cas.json")
        assert info is not None and info.etag == second and info.size == 2

    def test_put_if_match_on_missing_key_fails(self, storage: Storage) -> None:
        etag = storage.put_if_absent("gone.json", b"x")
        storage.delete("gone.json")
        with pytest.raises(PreconditionFailed):
            storage.put_if_match("gone.json", b"y", etag)
        assert storage.stat("gone.json") is None

    def test_compare_and_swap_race_loses_no_update(self, storage: Storage) -> None:
        storage.put_if_absent("counter.json", b"0")
        barrier = threading.Barrier(4)

        def bump(times: int) -> None:
            barrier.wait()
            done = 0
            while done < times:
                current = storage.read("counter.json")
                try:
                    storage.put_if_match("counter.json", str(int(current.data) + 1).encode(), current.etag)
                    done += 1
                except PreconditionFailed:
                    continue

        threads = [threading.Thread(target=bump, args=(5,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert storage.read("counter.json").data == b"20"

    def test_put_file_and_stream_round_trip(self, storage: Storage, tmp_path: Path) -> None:
        payload = os.urandom(3 * 1024 * 1024 + 17)
        source = tmp_path / "payload.bin"
        source.write_bytes(payload)
        storage.put_file("blobs/x/payload", source)
        info = storage.stat("blobs/x/payload")
        assert info is not None and info.size == len(payload)
        chunks = list(storage.read_stream("blobs/x/payload", chunk_size=1024 * 1024))
        assert b"".join(chunks) == payload
        assert all(len(c) <= 1024 * 1024 for c in chunks)
        # Replacing with other content is allowed for put_file.
        source.write_bytes(b"small")
        storage.put_file("blobs/x/payload", source)
        assert storage.read("blobs/x/payload").data == b"small"

    def test_list_is_recursive_and_filters_by_prefix(self, storage: Storage) -> None:
        keys = ["m/a/1.json", "m/a/2.json", "m/a/sub/3.json", "m/ab/4.json", "other/5.json"]
        for key in keys:
            storage.put_if_absent(key, key.encode())
        assert sorted(i.key for i in storage.list("m/a/")) == ["m/a/1.json", "m/a/2.json", "m/a/sub/3.json"]
        assert sorted(i.key for i in storage.list("m/a")) == keys[:4]
        listed = {i.key: i for i in storage.list("")}
        assert set(keys) <= set(listed)
        assert listed["m/a/1.json"].size == len(b"m/a/1.json")
        assert listed["m/a/1.json"].etag == storage.read("m/a/1.json").etag
        assert list(storage.list("nope/")) == []

    def test_list_prefixes(self, storage: Storage) -> None:
        for key in ["models/a/_versions/1.json", "models/b/c/_versions/1.json", "models/top.json"]:
            storage.put_if_absent(key, b"{}")
        assert sorted(storage.list_prefixes("models/")) == ["models/a/", "models/b/"]
        assert sorted(storage.list_prefixes("models/b/")) == ["models/b/c/"]
        assert list(storage.list_prefixes("empty/")) == []

    def test_modified_time_is_reported(self, storage: Storage) -> None:
        storage.put_if_absent("t.json", b"{}")
        info = storage.stat("t.json")
        assert info is not None and info.modified is not None
        age = dt.datetime.now(dt.UTC) - info.modified
        assert abs(age.total_seconds()) < 300

    def test_unsafe_keys_are_refused(self, storage: Storage) -> None:
        for key in ["../x", "/abs", "a//b", "a/../b", "", "a\\b"]:
            with pytest.raises(InvalidName):
                storage.put_if_absent(key, b"x")

    # --- the registry protocol on this backend ---------------------------------------------

    def test_registry_end_to_end(self, shelf: modelshelf.Shelf, tmp_path: Path) -> None:
        model_dir = tmp_path / "model"
        (model_dir / "sub").mkdir(parents=True)
        (model_dir / "weights.bin").write_bytes(os.urandom(200_000))
        (model_dir / "sub" / "config.json").write_text('{"layers": 2}')
        v1 = shelf.upload("team/churn", model_dir, metrics={"auc": 0.9}, tags={"stage": "dev"})
        (model_dir / "sub" / "config.json").write_text('{"layers": 3}')
        v2 = shelf.upload("team/churn", model_dir)
        assert (v1.version, v2.version) == (1, 2)
        # Identical weights are stored once: both versions reference the same blob.
        weights = {v.version: next(f for f in v.files if f.path == "weights.bin") for v in (v1, v2)}
        assert weights[1].sha256 == weights[2].sha256
        assert len(list(shelf.storage.list("blobs/"))) == 3

        assert shelf.models() == ["team/churn"]
        assert [v.version for v in shelf.versions("team/churn")] == [1, 2]
        assert shelf.get("team/churn").version == 2
        assert shelf.get("team/churn:1").metrics == {"auc": 0.9}

        shelf.set_alias("team/churn", "prod", 1)
        assert shelf.get("team/churn@prod").version == 1
        loaded = shelf.load("team/churn@prod")
        assert (Path(loaded) / "sub" / "config.json").read_text() == '{"layers": 2}'

        out = shelf.download("team/churn:2", tmp_path / "out")
        assert (out / "sub" / "config.json").read_text() == '{"layers": 3}'
        assert hashlib.sha256((out / "weights.bin").read_bytes()).hexdigest() == weights[2].sha256

        shelf.delete("team/churn:2")
        with pytest.raises(VersionNotFound):
            shelf.get("team/churn:2")
        assert [v.version for v in shelf.list_versions("team/churn")] == [1]
        v3 = shelf.upload("team/churn", model_dir / "weights.bin")
        assert v3.version == 3  # numbers are never reused
        actions = [e.action for e in shelf.history("team/churn")]
        assert actions == ["upload", "upload", "alias_set", "delete", "upload"]

        report = shelf.gc(grace=dt.timedelta(0))
        assert len(report.removed) == 1  # the config of the deleted version 2
        assert shelf.verify() == []

    def test_corrupted_blob_is_detected(self, shelf: modelshelf.Shelf, tmp_path: Path) -> None:
        source = tmp_path / "w.bin"
        source.write_bytes(os.urandom(50_000))
        version = shelf.upload("m", source)
        key = f"blobs/sha256/{version.files[0].sha256[:2]}/{version.files[0].sha256}"
        tampered = tmp_path / "tampered.bin"
        tampered.write_bytes(b"X" + source.read_bytes()[1:])
        shelf.storage.put_file(key, tampered)
        problems = shelf.verify()
        assert [(p.ref, p.path) for p in problems] == [("m:1", "w.bin")]
        with pytest.raises(IntegrityError):
            shelf.download("m:1", tmp_path / "dest")
        assert not (tmp_path / "dest" / "w.bin").exists()
        assert not shelf.cache.has(version.files[0])

    def test_racing_uploads_get_distinct_consecutive_versions(
        self, shelf: modelshelf.Shelf, storage_url: str, storage_options: dict[str, Any],
        modelshelf_cache: Path, tmp_path: Path,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        options = {**storage_options, "cache": str(modelshelf_cache)}
        with ProcessPoolExecutor(self.race_processes, mp_context=context) as pool:
            futures = [
                pool.submit(workers.upload_many, storage_url, options, "raced", self.race_uploads, w, str(tmp_path))
                for w in range(self.race_processes)
            ]
            got = [n for f in futures for n in f.result()]
        total = self.race_processes * self.race_uploads
        assert sorted(got) == list(range(1, total + 1))
        versions = shelf.versions("raced")
        assert [v.version for v in versions] == list(range(1, total + 1))
        seen = set()
        for version in versions:
            path = Path(shelf.load(version.ref))
            text = path.read_text()
            meta = version.metadata
            assert text.startswith(f"worker {meta['worker']} upload {meta['i']} ")
            seen.add((meta["worker"], meta["i"]))
        assert len(seen) == total

    def test_racing_alias_moves_lose_no_event(
        self, shelf: modelshelf.Shelf, storage_url: str, storage_options: dict[str, Any],
        modelshelf_cache: Path, tmp_path: Path,
    ) -> None:
        source = tmp_path / "w.txt"
        for i in range(3):
            source.write_text(str(i))
            shelf.upload("aliased", source)
        context = multiprocessing.get_context("spawn")
        options = {**storage_options, "cache": str(modelshelf_cache)}
        plan = [[(p + i) % 3 + 1 for i in range(self.alias_moves)] for p in range(self.alias_processes)]
        with ProcessPoolExecutor(self.alias_processes, mp_context=context) as pool:
            moved = sum(pool.map(workers.move_alias, *zip(*[(storage_url, options, "aliased", "prod", p) for p in plan], strict=True)))
        events = [e for e in shelf.history("aliased") if e.action == "alias_set"]
        assert len(events) == moved == self.alias_processes * self.alias_moves
        # Every successful swap saw the value the previous one wrote: the "previous" fields
        # chain through every event, so no move overwrote another unseen.
        # Each compare-and-swap moved the alias from the value it saw to a new one, so the moves
        # form one chain None -> s1 -> ... -> sN: the "previous" values are exactly the targets
        # minus the final one, plus one None. A move that overwrote another unseen breaks this.
        from collections import Counter

        final = shelf.get("aliased@prod").version
        targets = Counter(e.version for e in events)
        previous = Counter(e.previous for e in events)
        assert previous[None] == 1
        del previous[None]
        targets[final] -= 1
        assert +targets == previous
