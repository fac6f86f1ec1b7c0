"""Leases between uploads and gc, on a real filesystem shelf: what happens when a process stalls,
when records are planted or damaged, and how a corrupt blob gets repaired."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path

import modelshelf
import pytest
from modelshelf import leases
from modelshelf.cache import Cache
from modelshelf.leases import HeldLease
from modelshelf.testing.interleaving import PausingStorage


def _shelf(root: Path, cache: Path, **attrs: float) -> tuple[modelshelf.Shelf, PausingStorage]:
    storage = PausingStorage(modelshelf.open(str(root), cache=cache).storage)
    shelf = modelshelf.Shelf(storage, cache=Cache(cache))
    for name, value in attrs.items():
        setattr(shelf, name, value)
    return shelf, storage


def _blob_path(root: Path, sha: str) -> Path:
    return root / "blobs" / "sha256" / sha[:2] / sha


def test_an_upload_whose_lease_lapsed_stores_again_what_gc_took(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stalled uploader (no heartbeat past its lease's lifetime) is taken for dead by gc, which
    deletes its blobs; before publishing it notices, takes a new lease and stores them again."""
    root = tmp_path / "shelf"
    source = tmp_path / "w.bin"
    source.write_bytes(b"weights " * 1000)
    uploader, store = _shelf(root, tmp_path / "c1", lease_ttl=1.0, lease_poll=0.01)
    # The sweeper's own lease is long: a loaded machine must not make gc stop early (it stops
    # deleting when it cannot keep its record fresh), which would keep the blob this test needs gone.
    sweeper, _ = _shelf(root, tmp_path / "c2", lease_ttl=30.0)
    stalled = threading.Event()
    original_refresh = HeldLease.refresh

    def refresh(self: HeldLease) -> None:
        if self.kind == "upload" and stalled.is_set():
            return  # the uploading process is stopped: no heartbeat
        original_refresh(self)

    monkeypatch.setattr(HeldLease, "refresh", refresh)
    # Learn on a scratch shelf how many storage calls come before the manifest write.
    scratch, scratch_store = _shelf(tmp_path / "scratch", tmp_path / "c3")
    scratch.upload("m", source)
    manifest_write = next(
        i
        for i, (method, key) in enumerate(scratch_store.calls)
        if method == "put_if_absent" and "/_versions/" in key
    )
    outcome: dict[str, modelshelf.ModelVersion] = {}

    def run() -> None:
        outcome["version"] = uploader.upload("m", source)

    # The process stops right before it writes its manifest, past its last freshness check.
    stalled.set()
    store.pause_before(manifest_write)
    thread = threading.Thread(target=run)
    thread.start()
    assert store.paused.wait(10)
    time.sleep(1.3)  # past the lease's lifetime: gc takes the upload for dead
    report = sweeper.gc(grace=dt.timedelta(0))
    sha = modelshelf.open(str(tmp_path / "scratch")).get("m:1").files[0].sha256
    assert f"blobs/sha256/{sha[:2]}/{sha}" in report.removed  # the lapse really cost the blob
    stalled.clear()
    store.resume()
    thread.join(20)
    version = outcome["version"]
    check = modelshelf.open(str(root), cache=tmp_path / "c4")
    assert check.verify() == []
    assert (
        check.download(version.ref, tmp_path / "out") / "w.bin"
    ).read_bytes() == source.read_bytes()


def test_gc_stops_deleting_when_it_cannot_keep_its_record_fresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "shelf"
    source = tmp_path / "w.bin"
    source.write_bytes(b"x" * 100)
    shelf = modelshelf.open(str(root), cache=tmp_path / "c")
    shelf.upload("m", source)
    shelf.delete("m:1")
    monkeypatch.setattr(HeldLease, "refresh", lambda self: None)
    sweeper, store = _shelf(root, tmp_path / "c2", lease_ttl=1.0)
    original_list = store.list

    def slow_list(prefix: str):  # type: ignore[no-untyped-def]
        if prefix.startswith("blobs/"):
            time.sleep(0.6)  # longer than half the run record's lifetime
        return original_list(prefix)

    monkeypatch.setattr(store, "list", slow_list)
    report = sweeper.gc(grace=dt.timedelta(0))
    assert report.stopped_early and report.removed == ()
    assert list((root / "blobs").rglob("*"))  # the orphan is still there, for the next run


def test_stale_leases_are_ignored_and_planted_ones_cannot_block_forever(tmp_path: Path) -> None:
    root = tmp_path / "shelf"
    shelf = modelshelf.open(str(root), cache=tmp_path / "c")
    storage = shelf.storage
    now = dt.datetime.now(dt.UTC)
    storage.put_if_absent(
        "leases/gc/planted.json",
        json.dumps(
            {
                "kind": "gc",
                "id": "planted",
                "started_at": "2026-01-01T00:00:00Z",
                "by": "x",
                "ttl_seconds": 1e12,
                "schema": 1,
            }
        ).encode(),
    )
    storage.put_if_absent("leases/gc/garbage.json", b"\x00not json")
    live = [info.key for info, _ in leases.live_leases(storage, "gc", lambda: now)]
    assert sorted(live) == ["leases/gc/garbage.json", "leases/gc/planted.json"]  # both fresh now
    later = now + dt.timedelta(seconds=leases.MAX_TTL + 5)
    assert list(leases.live_leases(storage, "gc", lambda: later)) == []  # capped lifetimes end


def test_a_damaged_upload_lease_still_protects_every_blob_it_mentions(tmp_path: Path) -> None:
    root = tmp_path / "shelf"
    shelf = modelshelf.open(str(root), cache=tmp_path / "c")
    source = tmp_path / "w.bin"
    source.write_bytes(b"y" * 100)
    sha = shelf.upload("m", source).files[0].sha256
    shelf.delete("m:1")
    shelf.storage.put_if_absent(
        "leases/upload/newer.json", f'{{"schema": 99, "whatever": ["{sha}"]}}'.encode()
    )
    report = shelf.gc(grace=dt.timedelta(0))
    assert report.removed == () and report.in_flight == 1
    assert _blob_path(root, sha).exists()


def test_an_unparseable_manifest_keeps_the_blobs_it_mentions(tmp_path: Path) -> None:
    root = tmp_path / "shelf"
    shelf = modelshelf.open(str(root), cache=tmp_path / "c")
    source = tmp_path / "w.bin"
    source.write_bytes(b"z" * 100)
    version = shelf.upload("m", source)
    manifest = root / "models" / "m" / "_versions" / "0000000001.json"
    raw = json.loads(manifest.read_bytes())
    raw["schema"] = 99  # written by a newer modelshelf
    manifest.write_bytes(json.dumps(raw).encode())
    report = shelf.gc(grace=dt.timedelta(0))
    assert report.removed == ()
    assert report.unreadable and "m:1" in report.unreadable[0]
    assert _blob_path(root, version.files[0].sha256).exists()


def test_verify_repair_lets_the_genuine_file_replace_a_corrupt_blob(tmp_path: Path) -> None:
    """A blob of the right size but wrong bytes is re-used by every upload of the genuine file
    until ``verify --repair`` removes it; then the next upload stores the genuine bytes again."""
    root = tmp_path / "shelf"
    shelf = modelshelf.open(str(root), cache=tmp_path / "c")
    source = tmp_path / "w.bin"
    source.write_bytes(b"genuine!" * 64)
    first = shelf.upload("m", source)
    blob = _blob_path(root, first.files[0].sha256)
    blob.chmod(0o644)
    blob.write_bytes(b"rotten!!" * 64)  # same size, other bytes
    again = shelf.upload("m", source)  # re-uses the corrupt blob: size is all it can check cheaply
    assert [p.what for p in shelf.verify(again.ref)] == ["blob content does not match its sha256"]
    problems = shelf.verify(repair=True)
    assert problems and all("removed" in p.what for p in problems)
    assert not blob.exists()
    shelf.upload("m", source)
    assert shelf.verify() == []
    assert (
        shelf.download(first.ref, tmp_path / "out") / "w.bin"
    ).read_bytes() == source.read_bytes()
