"""Crashes: ``kill -9`` an uploading process at random moments, then inspect the shelf.

After every kill, through a fresh connection and cache: no partial version is visible (every
listed version downloads with verified content), ``verify`` finds nothing, ``gc`` with no grace
period reclaims every orphan blob (afterwards no stored blob is unreferenced, and no temporary or
multipart debris is left), and the next upload works.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rel_backends import count, referenced_blobs, stored_blob_keys, tree_digests

HERE = Path(__file__).resolve().parent
TRIALS = count(6, 50)
SEED = 777


def _start(backend: Any, tmp: Path, trial: int, **job: Any) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "rel_worker.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A short lease, so that the check below can wait for the killed writer's lease to expire.
        env={**os.environ, **backend.env, "MODELSHELF_LEASE_SECONDS": "1"},
    )
    spec = {
        "job": "upload_loop",
        "backend": backend.to_json(),
        "cache": str(tmp / f"cache-child{trial}"),
        "name": "crash/model",
        "scratch": str(tmp / f"scratch{trial}"),
        "seed": SEED + trial,
        **job,
    }
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(spec))
    process.stdin.close()
    line = process.stdout.readline()
    if line.strip() != "READY":
        process.kill()
        raise AssertionError(f"worker did not start: {line!r} {process.stderr.read()[-2000:]}")  # type: ignore[union-attr]
    return process


def _debris(backend: Any, shelf: Any) -> list[str]:
    """Leftovers of crashed writers that gc's cleanup should have removed."""
    if backend.kind == "file":
        root = Path(shelf.storage.root)
        return [str(p) for p in root.rglob(".~*.tmp")]
    if backend.kind == "s3":
        import boto3

        client = boto3.client("s3", endpoint_url=backend.options["endpoint_url"])
        bucket = backend.url.split("/")[2]
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return [u["Key"] for u in uploads]
    return []


@pytest.mark.parametrize(
    ("kind", "packed"), [("file", False), ("s3", False), ("file", True), ("s3", True)]
)
def test_kill_9_during_uploads(
    kind: str, packed: bool, make_backend: Any, tmp_path: Path, report: Any
) -> None:
    options = (
        {"multipart_threshold": 5 << 20, "multipart_chunksize": 5 << 20} if kind == "s3" else {}
    )
    backend = make_backend(kind, **options)
    job: dict[str, Any] = {"big_file": 6 << 20} if kind == "s3" else {}
    if packed:  # many small files, stored as a pack beside the big one
        job.update(files=60, max_size=8_000)
    rng = random.Random(SEED)

    # Calibrate: how long does one upload take here, now (the machine is shared)?
    probe = _start(backend, tmp_path, -1, **job)
    started = time.monotonic()
    assert probe.stdout is not None
    probe.stdout.readline()
    upload_seconds = time.monotonic() - started
    probe.kill()
    probe.wait()
    for stream in (probe.stdout, probe.stderr):
        stream.close()  # type: ignore[union-attr]

    stats: Counter[str] = Counter()
    gc_removed = 0
    for trial in range(TRIALS):
        child = _start(backend, tmp_path, trial, **job)
        time.sleep(rng.uniform(0, 2.5 * upload_seconds))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        out = child.stdout.read()  # type: ignore[union-attr]
        child.stdout.close()  # type: ignore[union-attr]
        child.stderr.close()  # type: ignore[union-attr]
        stats["uploads completed before the kill"] += out.count("DONE")
        stats["kills"] += 1

        shelf = backend.open(tmp_path / f"cache-check{trial}")
        try:
            listed = shelf.versions("crash/model") if shelf.models() else []
            for version in listed:
                dest = tmp_path / "check" / f"{trial}-{version.version}"
                shelf.download(version.ref, dest)
                assert tree_digests(dest) == {f.path: f.sha256 for f in version.files}
            assert shelf.verify() == []
            orphans_before = stored_blob_keys(shelf.storage) - referenced_blobs(shelf)
            stats["trials leaving orphan blobs"] += bool(orphans_before)
            # The killed writer's lease keeps its blobs for its lifetime (1 s), and gc's cleanup
            # leaves temporary files younger than ten of its own lease lifetimes alone (they may
            # belong to a live writer): wait until both are over.
            shelf.lease_ttl = 0.1
            time.sleep(2.1)
            report_ = shelf.gc(grace=dt.timedelta(0))
            gc_removed += len(report_.removed)
            assert {k.rsplit("/", 1)[-1] for k in report_.removed} == orphans_before
            assert stored_blob_keys(shelf.storage) == referenced_blobs(shelf), (
                "gc left orphan blobs"
            )
            debris = _debris(backend, shelf)
            assert debris == [], f"gc left debris of the crashed writer: {debris[:5]}"
            # The next upload works and takes the next number (a crash never burns or reuses one).
            after = tmp_path / f"after{trial}.bin"
            after.write_bytes(f"after trial {trial}".encode())
            version = shelf.upload("crash/model", after)
            assert version.version == max((v.version for v in listed), default=0) + 1
            assert shelf.verify(version.ref) == []
        finally:
            shelf.close()
    report(
        backend=kind,
        packed=packed,
        trials=TRIALS,
        upload_seconds=round(upload_seconds, 2),
        orphan_blobs_reclaimed=gc_removed,
        partial_versions_seen=0,
        verify_failures=0,
        **dict(stats),
    )
