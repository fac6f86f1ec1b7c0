"""Version indexes under crashes and corruption, on real servers (moto, Azurite, fake-gcs).

``kill -9`` a process while it lists versions and writes the indexes, over and over; then, through
a fresh connection and cache, ``versions()`` must equal what the manifests say, version by
version. A damaged index, a lying entry (another manifest under a version's etag) and a deleted
version must never show in a listing: the listing and the manifests stay authoritative.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from modelshelf import indexes, layout
from rel_backends import count

BACKENDS = ["s3", "azure", "gcs"]
TRIALS = count(4, 20)
VERSIONS = 12  # blocks of 5 below: two complete blocks and a tail

_LISTER = """
import json, sys, tempfile
from modelshelf import indexes
indexes.BLOCK, indexes.SMALL_BLOCK = 5, 5
spec = json.loads(sys.stdin.read())
sys.path.insert(0, spec["here"])
from rel_backends import Backend
backend = Backend.from_json(spec["backend"])
print("READY", flush=True)
while True:  # list with a fresh cache, drop the indexes, again: kills land inside index writes
    shelf = backend.open(tempfile.mkdtemp())
    shelf.versions("indexed/model")
    for info in list(shelf.storage.list(spec["prefix"])):
        shelf.storage.delete(info.key)
"""


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexes, "BLOCK", 5)
    monkeypatch.setattr(indexes, "SMALL_BLOCK", 5)


def _populate(backend: Any, tmp: Path) -> Any:
    shelf = backend.open(tmp / "cache-writer")
    source = tmp / "model.json"
    for number in range(VERSIONS):
        source.write_text(json.dumps({"n": number}))
        shelf.upload("indexed/model", source, metrics={"n": number})
    return shelf


def _truth(backend: Any, tmp: Path, tag: str) -> list[Any]:
    """Every live version read from its own manifest (get never uses an index)."""
    shelf = backend.open(tmp / f"cache-truth-{tag}")
    return [shelf.get(f"indexed/model:{s.version}") for s in shelf.list_versions("indexed/model")]


def _index_keys(shelf: Any) -> list[str]:
    return sorted(
        info.key for info in shelf.storage.list(layout.version_index_prefix("indexed/model"))
    )


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("kind", BACKENDS)
def test_kill_during_index_writes_never_changes_a_listing(
    make_backend: Any, tmp_path: Path, kind: str
) -> None:
    backend = make_backend(kind)
    writer = _populate(backend, tmp_path)
    truth = _truth(backend, tmp_path, "0")
    rng = random.Random(4242)
    for trial in range(TRIALS):
        process = subprocess.Popen(
            [sys.executable, "-c", _LISTER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **backend.env},
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(
            json.dumps(
                {
                    "backend": backend.to_json(),
                    "here": str(Path(__file__).parent),
                    "prefix": layout.version_index_prefix("indexed/model"),
                }
            )
        )
        process.stdin.close()
        line = process.stdout.readline()
        assert line.strip() == "READY", process.stderr.read()[-2000:]  # type: ignore[union-attr]
        time.sleep(rng.uniform(0.2, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        listed = backend.open(tmp_path / f"cache-reader-{trial}").versions("indexed/model")
        assert listed == truth
        for key in _index_keys(writer):  # whatever a killed writer left is whole, or ignored
            first, last = (int(n) for n in key.rsplit("/", 1)[1][: -len(".json")].split("-"))
            indexes.decode(writer.storage.read(key).data, "indexed/model", first, last, key)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("kind", BACKENDS)
def test_damage_deletion_and_lies_never_reach_a_listing(
    make_backend: Any, tmp_path: Path, kind: str
) -> None:
    backend = make_backend(kind)
    writer = _populate(backend, tmp_path)
    backend.open(tmp_path / "cache-a").versions("indexed/model")  # writes the indexes
    keys = _index_keys(writer)
    assert len(keys) == 2
    # Damage one index, and make the other lie about version 7 (its own, listed etag kept).
    writer.storage.put_if_match(
        keys[0], writer.storage.read(keys[0]).data[:-30], writer.storage.stat(keys[0]).etag
    )
    document = json.loads(writer.storage.read(keys[1]).data)
    entry = next(e for e in document["entries"] if e["version"] == 7)
    manifest = json.loads(entry["manifest"])
    manifest["metrics"] = {"n": -1.0}
    entry["manifest"] = json.dumps(manifest)
    document["entries_sha256"] = indexes._entries_digest(document["entries"])
    writer.storage.put_if_match(
        keys[1], json.dumps(document).encode(), writer.storage.stat(keys[1]).etag
    )
    writer.delete("indexed/model:3")
    source = tmp_path / "model.json"
    source.write_text("{}")
    writer.upload("indexed/model", source)
    listed = backend.open(tmp_path / "cache-b").versions("indexed/model")
    truth = _truth(backend, tmp_path, "1")
    assert 3 not in [v.version for v in listed] and VERSIONS + 1 in [v.version for v in listed]
    if kind == "s3":  # etags are content MD5s: the lie is caught by the reader itself
        assert listed == truth
    else:
        # Opaque etags: a lie carrying the right etag is only as good as the index writer's bytes;
        # every other property holds, and get/load/download read the manifest itself.
        assert [v.version for v in listed] == [v.version for v in truth]
        assert writer.get("indexed/model:7").metrics == {"n": 6.0}
