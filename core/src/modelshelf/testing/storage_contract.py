"""The storage contract: what every backend must do, checked against a real service.

Subclass :class:`StorageContract` and override ``storage_url`` (a URL for a fresh, empty shelf that
``modelshelf.open`` accepts; create the bucket or container in the fixture). Override
``storage_options`` if ``modelshelf.open`` needs keyword options (they must be picklable: the
concurrency tests pass them to child processes).

Knobs (class attributes):

* ``race_processes`` / ``race_uploads``: processes racing uploads to one name, and uploads each.
* ``alias_processes`` / ``alias_moves``: processes racing alias moves, and moves each
  (:class:`ServiceRaces` holds the sizes the cloud backends use).
* ``listing_keys``: keys written to prove ``list`` and ``list_prefixes`` go past a page (1,100:
  S3, Azure and GCS pages hold 1,000).
* ``sdk_modules``: top-level modules of your SDK (``["mystore_sdk"]``), which importing the plugin
  must not import (a list of well-known heavy modules is always checked too).

Every failure says which promise of :mod:`modelshelf.storage` was broken.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import modelshelf
from modelshelf.errors import (
    AlreadyExists,
    IntegrityError,
    InvalidName,
    KeyNotFound,
    ModelshelfError,
    PreconditionFailed,
    VersionNotFound,
)
from modelshelf.plugins import get_registry
from modelshelf.storage import Storage

from . import workers
from .interleaving import InterleavingContract

#: Modules no storage plugin may import when it is imported: cloud SDKs and ML frameworks.
HEAVY_MODULES = (
    "boto3",
    "botocore",
    "azure",
    "google",
    "onnx",
    "onnxruntime",
    "torch",
    "sklearn",
    "skops",
    "xgboost",
    "lightgbm",
    "catboost",
    "keras",
    "transformers",
    "tensorflow",
    "safetensors",
    "numpy",
    "scipy",
    "pandas",
    "joblib",
    "requests",
    "urllib3",
    "aiohttp",
    "grpc",
)


class ServiceRaces:
    """Race sizes for a backend on a real service, where each process opens its own client: 8
    processes racing 10 uploads each to one name must produce versions 1..80, every one loadable,
    and 4 processes racing 6 alias moves each must lose no event. Mix in before the contract."""

    race_processes = 8
    race_uploads = 10
    alias_processes = 4
    alias_moves = 6


class StorageContract(InterleavingContract):
    """Tests every :class:`~modelshelf.storage.Storage` backend must pass."""

    #: Processes racing uploads to one name, and uploads per process.
    race_processes = 4
    race_uploads = 5
    #: Processes racing moves of one alias, and moves per process.
    alias_processes = 3
    alias_moves = 5
    #: Keys written to check that listings go past the first page of the service.
    listing_keys = 1100
    #: Top-level modules of the backend's SDK, which importing the plugin must not import.
    sdk_modules: tuple[str, ...] = ()

    # --- fixtures to override --------------------------------------------------------------

    @pytest.fixture
    def storage_url(self) -> str:
        raise NotImplementedError(
            "override the storage_url fixture: a URL for a fresh, empty shelf"
        )

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
        assert len(winners) == 1 and len(losers) == 7, (
            f"put_if_absent must be atomic create-only: of 8 racing writers exactly one wins and the "
            f"others get AlreadyExists, but {len(winners)} won"
        )
        assert storage.read("race/key.json").data == str(winners[0]).encode()

    def test_put_if_match_swaps_only_on_current_etag(self, storage: Storage) -> None:
        first = storage.put_if_absent("cas.json", b"v1")
        second = storage.put_if_match("cas.json", b"v2", first)
        assert second != first
        assert storage.read("cas.json").data == b"v2"
        with pytest.raises(PreconditionFailed):
            storage.put_if_match("cas.json", b"stale", first)
        assert storage.read("cas.json").data == b"v2", (
            "a put_if_match with a stale etag must write nothing"
        )
        info = storage.stat("cas.json")
        assert info is not None and info.etag == second and info.size == 2, (
            f"stat must report the etag put_if_match returned and the size: got {info}"
        )

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
                    storage.put_if_match(
                        "counter.json", str(int(current.data) + 1).encode(), current.etag
                    )
                    done += 1
                except PreconditionFailed:
                    continue

        threads = [threading.Thread(target=bump, args=(5,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = storage.read("counter.json").data
        assert final == b"20", (
            f"put_if_match must be atomic compare-and-swap: 20 increments racing gave {final!r}, "
            "so some update was lost"
        )

    def test_put_file_and_stream_round_trip(self, storage: Storage, tmp_path: Path) -> None:
        payload = os.urandom(3 * 1024 * 1024 + 17)
        source = tmp_path / "payload.bin"
        source.write_bytes(payload)
        storage.put_file("blobs/x/payload", source)
        info = storage.stat("blobs/x/payload")
        assert info is not None and info.size == len(payload), f"stat after put_file: {info}"
        chunks = list(storage.read_stream("blobs/x/payload", chunk_size=1024 * 1024))
        assert b"".join(chunks) == payload, (
            "read_stream must give back exactly what put_file stored"
        )
        assert all(len(c) <= 1024 * 1024 for c in chunks), (
            "read_stream must yield chunks of at most chunk_size bytes (constant memory)"
        )
        # Replacing with other content is allowed for put_file.
        source.write_bytes(b"small")
        storage.put_file("blobs/x/payload", source)
        assert storage.read("blobs/x/payload").data == b"small"

    def test_list_is_recursive_and_filters_by_prefix(self, storage: Storage) -> None:
        keys = ["m/a/1.json", "m/a/2.json", "m/a/sub/3.json", "m/ab/4.json", "other/5.json"]
        for key in keys:
            storage.put_if_absent(key, key.encode())
        got = sorted(i.key for i in storage.list("m/a/"))
        assert got == ["m/a/1.json", "m/a/2.json", "m/a/sub/3.json"], (
            f"list('m/a/') must yield every key below the prefix, recursively, and nothing else: {got}"
        )
        got = sorted(i.key for i in storage.list("m/a"))
        assert got == keys[:4], (
            f"list('m/a') is a plain string prefix (it matches m/ab/ too): {got}"
        )
        listed = {i.key: i for i in storage.list("")}
        assert set(keys) <= set(listed), "list('') must yield every key of the shelf"
        assert listed["m/a/1.json"].size == len(b"m/a/1.json"), (
            "list must report each object's size"
        )
        assert listed["m/a/1.json"].etag == storage.read("m/a/1.json").etag, (
            "list must report the same etag as read"
        )
        assert list(storage.list("nope/")) == []

    def test_list_prefixes(self, storage: Storage) -> None:
        for key in ["models/a/_versions/1.json", "models/b/c/_versions/1.json", "models/top.json"]:
            storage.put_if_absent(key, b"{}")
        got = sorted(storage.list_prefixes("models/"))
        assert got == ["models/a/", "models/b/"], (
            f"list_prefixes('models/') must yield the immediate sub-directories, each ending with '/': {got}"
        )
        assert sorted(storage.list_prefixes("models/b/")) == ["models/b/c/"]
        assert list(storage.list_prefixes("empty/")) == []

    def test_modified_time_is_reported(self, storage: Storage) -> None:
        storage.put_if_absent("t.json", b"{}")
        info = storage.stat("t.json")
        assert info is not None and info.modified is not None, (
            "stat must report the modification time"
        )
        assert info.modified.tzinfo is not None, (
            f"ObjectInfo.modified must be timezone-aware (gc compares it with UTC now): {info.modified!r}"
        )
        age = dt.datetime.now(dt.UTC) - info.modified
        assert abs(age.total_seconds()) < 300, (
            f"modified is not the time of the write: {info.modified}"
        )
        listed = next(i for i in storage.list("t.json") if i.key == "t.json")
        assert listed.modified is not None and listed.modified.tzinfo is not None, (
            f"list must report a timezone-aware modified time too (gc reads it): {listed.modified!r}"
        )

    def test_unsafe_keys_are_refused(self, storage: Storage) -> None:
        for key in ["../x", "/abs", "a//b", "a/../b", "", "a\\b"]:
            try:
                storage.put_if_absent(key, b"x")
            except InvalidName:
                continue
            pytest.fail(
                f"key {key!r} must be refused with InvalidName (see modelshelf.storage.check_key)"
            )

    def test_list_goes_past_the_first_page(self, storage: Storage) -> None:
        """``list`` and ``list_prefixes`` return every key however many: pagination is the
        backend's job (S3, Azure and GCS answer at most 1,000 keys per request)."""
        count = self.listing_keys
        keys = [f"many/{i:05d}/k.json" for i in range(count)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda key: storage.put_if_absent(key, b"{}"), keys))
        listed = [i.key for i in storage.list("many/")]
        assert len(listed) == len(set(listed)), "list must yield each key once"
        assert sorted(listed) == keys, (
            f"list must return every key below a prefix, however many (pagination is the backend's "
            f"job): {len(listed)} of {count} keys were listed"
        )
        prefixes = list(storage.list_prefixes("many/"))
        assert sorted(prefixes) == sorted(f"many/{i:05d}/" for i in range(count)), (
            f"list_prefixes must return every sub-directory, however many: {len(prefixes)} of "
            f"{count} were listed"
        )

    @pytest.mark.parametrize("method", ["put_file", "put_blob"])
    def test_a_reader_never_sees_a_partial_object(
        self, storage: Storage, tmp_path: Path, method: str
    ) -> None:
        """While ``put_file``/``put_blob`` writes a key, a reader sees the old object or the whole new
        one, never a prefix of it: the object becomes visible only once complete."""
        old, new = os.urandom(1 << 20), os.urandom(8 << 20)
        source = tmp_path / "new.bin"
        source.write_bytes(new)
        key = f"blobs/partial/{method}"
        stored = tmp_path / "old.bin"
        stored.write_bytes(old)
        storage.put_file(key, stored)
        seen: list[str] = []
        done, watching = threading.Event(), threading.Event()

        def watch() -> None:
            while not done.is_set():
                info = storage.stat(key)
                watching.set()
                if info is not None and info.size not in (len(old), len(new)):
                    seen.append(f"stat gave size {info.size}")
                    continue
                try:
                    data = b"".join(storage.read_stream(key))
                except ModelshelfError:
                    continue  # replaced while streaming: a backend may refuse to mix versions
                if data not in (old, new):
                    seen.append(f"a read gave {len(data)} bytes that are neither object")

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        watching.wait(60)
        try:
            if method == "put_file":
                storage.put_file(key, source)
            else:
                storage.put_blob(key, source, hashlib.sha256(new).hexdigest(), len(new))
        finally:
            done.set()
            watcher.join(60)
        assert not seen, (
            f"{method} made {key!r} visible before its data was written: a reader must see the old "
            f"object or the whole new one, but {seen[0]}"
        )
        assert storage.read(key).data == new, f"{method} must leave the new object in place"

    def test_plugin_import_is_light(self, storage_url: str) -> None:
        """Importing the plugin and resolving its hooks imports no SDK or framework: ``import
        modelshelf`` and ``modelshelf plugins`` must stay fast and work when the SDK is broken."""
        scheme = storage_url.split("://", 1)[0].lower() if "://" in storage_url else "file"
        entry = get_registry().storages().get(scheme)
        assert entry is not None, f"no storage plugin serves {scheme}:// (is the plugin installed?)"
        heavy = sorted({*HEAVY_MODULES, *self.sdk_modules})
        script = textwrap.dedent(
            f"""
            import sys
            from modelshelf.plugins import get_registry
            registry = get_registry()
            assert {scheme!r} in registry.storages(), "the plugin did not register its scheme"
            registry.infos()
            heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
            print(",".join(heavy))
            """
        )
        env = {**os.environ, "MODELSHELF_LOAD_PLUGINS": entry.plugin}
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        imported = [m for m in result.stdout.strip().split(",") if m]
        assert not imported, (
            f"importing plugin {entry.plugin} ({entry.distribution}) imported {', '.join(imported)}: "
            "a plugin must import its SDK inside the storage factory, never at module import time"
        )

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
        for keep_cache in (False, True):
            with pytest.raises(IntegrityError):
                shelf.download("m:1", tmp_path / "dest", keep_cache=keep_cache)
            assert not (tmp_path / "dest" / "w.bin").exists()
            assert not shelf.cache.has(version.files[0])

    def test_small_files_are_packed_and_verified(
        self, shelf: modelshelf.Shelf, storage_options: dict[str, Any], tmp_path: Path
    ) -> None:
        """Small files travel as one pack blob (an ordinary blob to gc and verify); each comes back
        verified on its own, alone by a ranged read; a damaged pack leaves nothing behind."""
        from modelshelf.cache import Cache
        from modelshelf.packing import MIN_PACKED_FILES, SMALL_FILE_BYTES

        tree = tmp_path / "tree"
        for index in range(MIN_PACKED_FILES + 8):
            path = tree / f"part{index % 3}" / f"f{index:03d}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(100 + index * 37))
        (tree / "weights.bin").write_bytes(os.urandom(SMALL_FILE_BYTES + 1))
        version = shelf.upload("packed", tree)
        packed = [f for f in version.files if f.pack is not None]
        assert len(version.packs) == 1 and len(packed) == MIN_PACKED_FILES + 8, "not packed"
        assert [f.path for f in version.files if f.pack is None] == ["weights.bin"]
        stored = {info.key.rsplit("/", 1)[-1] for info in shelf.storage.list("blobs/")}
        assert stored == {b.sha256 for b in version.blobs()}, "a packed file has its own blob"

        fresh = Cache(tmp_path / "cache-one")
        with modelshelf.open(shelf.url, cache=fresh.root, **storage_options) as reader:
            one = packed[5]
            reader.fetch(version, [one])  # one file alone: a ranged read of the pack
            assert fresh.has(one) and not fresh.has(packed[4])
            assert fresh.blob_path(one.sha256).read_bytes() == (tree / one.path).read_bytes()
        with modelshelf.open(shelf.url, cache=tmp_path / "cache-all", **storage_options) as reader:
            reader.download("packed:1", tmp_path / "dest")
        for entry in version.files:
            assert (tmp_path / "dest" / entry.path).read_bytes() == (tree / entry.path).read_bytes()
        assert shelf.gc(grace=dt.timedelta(0)).removed == (), "gc deleted a pack in use"
        assert shelf.verify() == []

        pack = version.packs[0]
        key = f"blobs/sha256/{pack.sha256[:2]}/{pack.sha256}"
        damaged = bytearray(b"".join(shelf.storage.read_stream(key)))
        damaged[packed[3].offset or 0] ^= 0xFF
        (tmp_path / "damaged").write_bytes(bytes(damaged))
        shelf.storage.put_file(key, tmp_path / "damaged")
        cold = Cache(tmp_path / "cache-cold")
        with modelshelf.open(shelf.url, cache=cold.root, **storage_options) as reader:
            with pytest.raises(IntegrityError):
                reader.download("packed:1", tmp_path / "dest-bad")
            assert not any((tmp_path / "dest-bad").rglob("*")), "a damaged pack left files"
            assert not cold.has(pack) and not any(map(cold.has, packed)), (
                "a damaged pack was cached"
            )
            problems = reader.verify("packed:1")
        assert {p.path for p in problems} == {f.path for f in packed}

    def test_racing_uploads_get_distinct_consecutive_versions(
        self,
        shelf: modelshelf.Shelf,
        storage_url: str,
        storage_options: dict[str, Any],
        modelshelf_cache: Path,
        tmp_path: Path,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        options = {**storage_options, "cache": str(modelshelf_cache)}
        with ProcessPoolExecutor(self.race_processes, mp_context=context) as pool:
            futures = [
                pool.submit(
                    workers.upload_many,
                    storage_url,
                    options,
                    "raced",
                    self.race_uploads,
                    w,
                    str(tmp_path),
                )
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
        self,
        shelf: modelshelf.Shelf,
        storage_url: str,
        storage_options: dict[str, Any],
        modelshelf_cache: Path,
        tmp_path: Path,
    ) -> None:
        source = tmp_path / "w.txt"
        for i in range(3):
            source.write_text(str(i))
            shelf.upload("aliased", source)
        context = multiprocessing.get_context("spawn")
        options = {**storage_options, "cache": str(modelshelf_cache)}
        plan = [
            [(p + i) % 3 + 1 for i in range(self.alias_moves)] for p in range(self.alias_processes)
        ]
        with ProcessPoolExecutor(self.alias_processes, mp_context=context) as pool:
            moved = sum(
                pool.map(
                    workers.move_alias,
                    *zip(
                        *[(storage_url, options, "aliased", "prod", p) for p in plan], strict=True
                    ),
                )
            )
        events = [e for e in shelf.history("aliased") if e.action == "alias_set"]
        assert len(events) == moved == self.alias_processes * self.alias_moves
        assert_alias_moves_chain(shelf, "aliased", "prod")


def assert_alias_moves_chain(shelf: modelshelf.Shelf, name: str, alias: str) -> None:
    """Assert that the recorded moves of ``name@alias`` lost none: each compare-and-swap moved the
    alias from the value it saw to a new one, so the moves form one chain None -> v1 -> ... -> vN,
    and the "previous" values are exactly the targets minus the final one, plus one None. A move
    that overwrote another unseen breaks the chain."""
    from collections import Counter

    events = [e for e in shelf.history(name) if e.action == "alias_set" and e.alias == alias]
    final = shelf.get(f"{name}@{alias}").version
    targets = Counter(e.version for e in events)
    previous = Counter(e.previous for e in events)
    assert previous[None] == 1, f"{previous[None]} moves of {name}@{alias} started from no value"
    del previous[None]
    targets[final] -= 1
    assert +targets == previous, f"a move of {name}@{alias} overwrote another unseen"
