"""Soak: processes that upload, ``gc`` with no grace period, delete and move aliases at random,
all at once on one shelf, on every backend.

Afterwards, through a fresh connection and an empty cache: ``verify`` finds nothing; every upload
that was reported as published and not reported deleted downloads with exactly the files it
reported; every version reported deleted is gone; every alias points at a live version; and every
failure along the way was a one-line modelshelf error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rel_backends import count, tree_digests

HERE = Path(__file__).resolve().parent
WORKERS = count(4, 6)
OPS = count(14, 120)
NAME = "soak/model"


@pytest.mark.parametrize("kind", ["file", "s3", "azure", "gcs"])
def test_concurrent_upload_gc_delete_alias_lose_nothing(
    kind: str, make_backend: Any, tmp_path: Path, report: Any
) -> None:
    backend = make_backend(kind)
    children = []
    for worker in range(WORKERS):
        job = {
            "job": "soak",
            "backend": backend.to_json(),
            "cache": str(tmp_path / f"cache{worker}"),
            "scratch": str(tmp_path / f"scratch{worker}"),
            "name": NAME,
            "seed": 1000 + worker,
            "worker": worker,
            "ops": OPS,
            "pool": 5,
        }
        child = subprocess.Popen(
            [sys.executable, str(HERE / "rel_worker.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **backend.env},
        )
        assert child.stdin is not None
        child.stdin.write(json.dumps(job))
        child.stdin.close()
        child.stdin = None  # sent: communicate() below only collects the answers
        children.append(child)
    lines: list[dict[str, Any]] = []
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err[-3000:]
        lines.extend(json.loads(line) for line in out.splitlines() if line.strip())

    raw = [line for line in lines if "raw" in line]
    assert not raw, f"raw exceptions: {raw[:3]}"
    published = {
        line["version"]: line["files"] for line in lines if line["op"] == "upload" and line["ok"]
    }
    deleted = {
        line["version"]
        for line in lines
        if line["op"] == "delete" and line["ok"] and "version" in line
    }
    assert len(published) == sum(1 for line in lines if line["op"] == "upload" and line["ok"]), (
        "a number was reused"
    )

    shelf = backend.open(tmp_path / "cache-check")
    try:
        assert shelf.verify() == []
        live = {v.version for v in shelf.list_versions(NAME)} if published else set()
        assert live == set(published) - deleted
        for number in sorted(live):
            dest = tmp_path / "check" / str(number)
            shelf.download(f"{NAME}:{number}", dest)
            assert tree_digests(dest) == published[number], (
                f"{NAME}:{number} lost or changed a file"
            )
        for alias in shelf.aliases(NAME) if published else {}:
            assert shelf.get(f"{NAME}@{alias}").version in live
    finally:
        shelf.close()
    outcomes = Counter(f"{line['op']} {'ok' if line['ok'] else 'refused'}" for line in lines)
    report(
        backend=kind,
        workers=WORKERS,
        operations=len(lines),
        published=len(published),
        deleted=len(deleted),
        **outcomes,
    )
