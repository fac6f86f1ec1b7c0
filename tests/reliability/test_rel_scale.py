"""Load and scale: many concurrent writer processes on one model, many versions, many blobs.

* N writer processes upload K versions each to one model and move one alias after each upload:
  versions must be exactly 1..N*K with none lost or duplicated, every upload and alias move must
  be in the history, and the alias's ``previous`` links must form one unbroken chain.
* One model with many versions (manifests written straight to storage, then one real upload):
  listing, ``latest``, the next upload, ``gc`` and ``verify`` are timed.
* ``gc`` over a shelf with very many unreferenced blobs, timed.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import pytest
from modelshelf import convert
from rel_backends import FULL, count

HERE = Path(__file__).resolve().parent
WRITERS = count(8, 32)
UPLOADS_PER_WRITER = 3
VERSIONS = count(300, 10_000)
GC_BLOBS = count(3_000, 100_000)


@pytest.mark.parametrize("kind", ["file", "s3", "azure", "gcs"])
def test_concurrent_writers_on_one_model(
    kind: str, make_backend: Any, tmp_path: Path, report: Any
) -> None:
    backend = make_backend(kind)
    shelf = backend.open(tmp_path / "cache")
    (tmp_path / "seed.bin").write_bytes(b"seed")
    shelf.upload("hot/model", tmp_path / "seed.bin")  # version 1; also creates the shelf marker
    env = {**os.environ, **backend.env}
    started = time.monotonic()
    processes = []
    for worker in range(WRITERS):
        job = {
            "job": "writer",
            "backend": backend.to_json(),
            "cache": str(tmp_path / f"cache{worker}"),
            "scratch": str(tmp_path / f"w{worker}"),
            "name": "hot/model",
            "alias": "champion",
            "count": UPLOADS_PER_WRITER,
            "worker": worker,
        }
        process = subprocess.Popen(
            [sys.executable, str(HERE / "rel_worker.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        process.stdin.write(json.dumps(job))  # type: ignore[union-attr]
        process.stdin.close()  # type: ignore[union-attr]
        processes.append(process)
    results = []
    for process in processes:
        out = process.stdout.read()  # type: ignore[union-attr]
        err = process.stderr.read()  # type: ignore[union-attr]
        assert process.wait(timeout=600) == 0, err[-3000:]
        process.stdout.close()  # type: ignore[union-attr]
        process.stderr.close()  # type: ignore[union-attr]
        results.append(json.loads(out.strip().splitlines()[-1]))
    elapsed = time.monotonic() - started

    total = WRITERS * UPLOADS_PER_WRITER
    obtained = [v for r in results for v in r["versions"]]
    assert len(obtained) == len(set(obtained)) == total, "two writers were given the same version"
    checker = backend.open(tmp_path / "cache-check")
    listed = checker.versions("hot/model")
    assert [v.version for v in listed] == list(range(1, total + 2)), "versions lost or skipped"
    by_writer = {(r["worker"], i): v for r in results for i, v in enumerate(r["versions"])}
    for version in listed[1:]:
        assert by_writer[(version.metadata["worker"], version.metadata["i"])] == version.version
    history = checker.history("hot/model")
    uploads = sorted(e.version for e in history if e.action == "upload")
    assert uploads == list(range(1, total + 2)), "upload events lost or duplicated"
    moves = [e for e in history if e.action == "alias_set"]
    assert sorted(e.version for e in moves) == sorted(obtained), "alias events lost or duplicated"
    # Compare-and-swap means every move saw the one before it: the previous-links form one chain.
    following = {e.previous: e.version for e in moves}
    assert len(following) == total, "two alias moves claimed the same predecessor (a lost update)"
    chain, cursor = [], None
    while cursor in following:
        cursor = following[cursor]
        chain.append(cursor)
    assert len(chain) == total and checker.get("hot/model@champion").version == chain[-1]
    assert checker.verify() == []
    report(
        backend=kind,
        writers=WRITERS,
        uploads=total,
        alias_moves=len(moves),
        seconds=round(elapsed, 1),
        lost_versions=0,
        duplicate_versions=0,
        lost_alias_events=0,
    )


def _plant_versions(shelf: Any, name: str, count_: int) -> None:
    """Versions 2..count_ as manifests written straight to storage (create-only, in parallel)."""
    template = shelf.get(f"{name}:1")

    def put(number: int) -> None:
        record = attrs.evolve(template, version=number, metadata={"n": number})
        shelf.storage.put_if_absent(
            f"models/{name}/_versions/{number:010d}.json", convert.to_json(record)
        )

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(2, count_ + 1)))


def _timed(call: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, round(time.perf_counter() - started, 3)


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_model_with_many_versions(
    kind: str, make_backend: Any, tmp_path: Path, report: Any
) -> None:
    backend = make_backend(kind)
    shelf = backend.open(tmp_path / "cache")
    (tmp_path / "w.bin").write_bytes(os.urandom(10_000))
    shelf.upload("big/model", tmp_path / "w.bin")
    _, planted = _timed(lambda: _plant_versions(shelf, "big/model", VERSIONS))
    cold = backend.open(tmp_path / "cache-cold")
    listed, list_cold = _timed(lambda: cold.versions("big/model"))
    assert [v.version for v in listed] == list(range(1, VERSIONS + 1))
    _, list_warm = _timed(lambda: cold.versions("big/model"))
    latest, latest_s = _timed(lambda: cold.get("big/model"))
    assert latest.version == VERSIONS
    (tmp_path / "next.bin").write_bytes(os.urandom(1000))
    uploaded, upload_s = _timed(lambda: cold.upload("big/model", tmp_path / "next.bin"))
    assert uploaded.version == VERSIONS + 1
    gc_report, gc_s = _timed(lambda: cold.gc(grace=dt.timedelta(0)))
    assert gc_report.removed == ()
    problems, verify_s = _timed(lambda: cold.verify())
    assert problems == []
    report(
        backend=kind,
        versions=VERSIONS + 1,
        plant_seconds=planted,
        list_cold_s=list_cold,
        list_warm_s=list_warm,
        latest_s=latest_s,
        next_upload_s=upload_s,
        gc_s=gc_s,
        verify_s=verify_s,
    )


def test_gc_over_many_orphan_blobs(make_backend: Any, tmp_path: Path, report: Any) -> None:
    backend = make_backend("file", fsync=False)
    shelf = backend.open(tmp_path / "cache")
    (tmp_path / "keep.bin").write_bytes(b"keep me")
    kept = shelf.upload("g/model", tmp_path / "keep.bin").files[0].sha256
    root = Path(backend.url) / "blobs" / "sha256"
    started = time.perf_counter()
    for i in range(GC_BLOBS):
        data = f"orphan {i}".encode()
        sha = hashlib.sha256(data).hexdigest()
        (root / sha[:2]).mkdir(exist_ok=True)
        (root / sha[:2] / sha).write_bytes(data)
    created = round(time.perf_counter() - started, 1)
    dry, dry_s = _timed(lambda: shelf.gc(dry_run=True, grace=dt.timedelta(0)))
    assert len(dry.removed) == GC_BLOBS
    real, gc_s = _timed(lambda: shelf.gc(grace=dt.timedelta(0)))
    assert len(real.removed) == GC_BLOBS
    remaining = [p.name for p in root.rglob("*") if p.is_file()]
    assert remaining == [kept]
    assert shelf.load("g/model").read_bytes() == b"keep me"
    report(blobs=GC_BLOBS, create_s=created, gc_dry_run_s=dry_s, gc_s=gc_s, full=FULL)
