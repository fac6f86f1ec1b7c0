"""Compare-and-swap on a directory shelf stays correct when ``flock`` silently does nothing.

NFS, SMB, Lustre and GPFS mounts can accept ``flock`` and not lock anything. The filesystem backend
takes its lock only to save work; these tests replace it with a no-op in every process and race
real processes against each other.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import modelshelf
import pytest
from modelshelf.default_plugins import filesystem
from modelshelf.errors import PreconditionFailed
from modelshelf.testing.storage_contract import assert_alias_moves_chain

PROCESSES = 4
INCREMENTS = 200
ALIAS_MOVES = 40

#: Run in each child process: disable the lock, wait for the start signal, then race.
WORKER = textwrap.dedent(
    """
    import contextlib, json, os, sys, time
    from pathlib import Path

    import modelshelf
    from modelshelf.default_plugins import filesystem
    from modelshelf.errors import PreconditionFailed

    @contextlib.contextmanager
    def no_lock(*args, **kwargs):
        yield

    filesystem.key_lock = no_lock  # as if flock silently did nothing

    mode, url, cache, start, worker, count = sys.argv[1:7]
    worker, count = int(worker), int(count)
    while not os.path.exists(start):
        time.sleep(0.001)
    done = conflicts = 0
    if mode == "counter":
        storage = filesystem.FileSystemStorage(url, fsync=False)
        while done < count:
            current = storage.read("counter.json")
            try:
                storage.put_if_match("counter.json", str(int(current.data) + 1).encode(), current.etag)
                done += 1
            except PreconditionFailed:
                conflicts += 1
    else:
        shelf = modelshelf.open(url, cache=cache, fsync=False)
        for i in range(count):
            shelf.set_alias("aliased", "prod", (worker + i) % 3 + 1)
            done += 1
    print(json.dumps({"done": done, "conflicts": conflicts}))
    """
)


def _race(tmp_path: Path, mode: str, url: str, count: int) -> list[dict[str, int]]:
    start = tmp_path / f"start-{mode}"
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                mode,
                url,
                str(tmp_path / "cache"),
                str(start),
                str(w),
                str(count),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(PROCESSES)
    ]
    time.sleep(1.0)  # let every child import and reach the start line
    start.touch()
    results = []
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_the_lock_is_replaceable() -> None:
    assert callable(filesystem.key_lock)


def test_racing_processes_without_locks_lose_no_counter_increment(tmp_path: Path) -> None:
    url = str(tmp_path / "shelf")
    storage = filesystem.FileSystemStorage(url, fsync=False)
    storage.put_if_absent("counter.json", b"0")
    results = _race(tmp_path, "counter", url, INCREMENTS)
    total = sum(r["done"] for r in results)
    assert total == PROCESSES * INCREMENTS
    assert sum(r["conflicts"] for r in results) > 0, (
        "the processes never raced; the test proves nothing"
    )
    assert storage.read("counter.json").data == str(total).encode()


def test_racing_processes_without_locks_lose_no_alias_move(tmp_path: Path) -> None:
    url = str(tmp_path / "shelf")
    source = tmp_path / "w.txt"
    shelf = modelshelf.open(url, cache=tmp_path / "cache", fsync=False)
    for i in range(3):
        source.write_text(str(i))
        shelf.upload("aliased", source)
    results = _race(tmp_path, "alias", url, ALIAS_MOVES)
    moved = sum(r["done"] for r in results)
    events = [e for e in shelf.history("aliased") if e.action == "alias_set"]
    assert len(events) == moved == PROCESSES * ALIAS_MOVES
    assert_alias_moves_chain(shelf, "aliased", "prod")


# --- claims: what a crashed writer leaves, and what cleanup may remove -------------------------


def _crashed_writer_claim(root: Path, name: str, etag: str, data: bytes) -> None:
    """Leave a claim the way a writer that died right after its link would: no shortcut rename."""
    (root / f".~{name}.{etag}.next").write_bytes(data)


def test_a_claim_left_by_a_crashed_writer_is_the_value(tmp_path: Path) -> None:
    root = tmp_path / "shelf"
    storage = filesystem.FileSystemStorage(str(root), fsync=False)
    first = storage.put_if_absent("k.json", b"v1")
    _crashed_writer_claim(root, "k.json", first, b"v2!")
    stored = storage.read("k.json")
    assert stored.data == b"v2!" and stored.etag != first
    assert b"".join(storage.read_stream("k.json")) == b"v2!"
    info = storage.stat("k.json")
    assert info is not None and (info.etag, info.size) == (stored.etag, 3)
    [listed] = storage.list("k")
    assert (listed.etag, listed.size) == (stored.etag, 3)
    with pytest.raises(PreconditionFailed):
        storage.put_if_match("k.json", b"lost", first)  # the value v1 was already replaced
    third = storage.put_if_match("k.json", b"v3", stored.etag)
    assert storage.read("k.json") == type(stored)(b"v3", third)


def test_cleanup_removes_only_claims_off_the_live_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filesystem, "CLAIM_MIN_AGE", dt.timedelta(0))
    root = tmp_path / "shelf"
    storage = filesystem.FileSystemStorage(str(root), fsync=False)
    e1 = storage.put_if_absent("k.json", b"v1")
    e2 = storage.put_if_match("k.json", b"v2", e1)
    e3 = storage.put_if_match("k.json", b"v3", e2)
    _crashed_writer_claim(root, "k.json", e3, b"v4")  # live: ahead of the key
    _crashed_writer_claim(root, "k.json", "1-2-3", b"stale")  # an orphan nobody can reach
    (root / ".~k.json.0123456789ab.tmp").write_bytes(b"debris")
    time.sleep(0.05)  # strictly older than "now" even with coarse timestamps
    storage.cleanup(dt.timedelta(0))
    hidden = sorted(p.name for p in root.iterdir() if p.name.startswith(".~"))
    assert hidden == [f".~k.json.{e3}.next", ".~k.json.lock"]  # lock files are never removed
    assert storage.read("k.json").data == b"v4"
    # A writer still holding an etag whose claim was cleaned up cannot sneak in.
    with pytest.raises(PreconditionFailed):
        storage.put_if_match("k.json", b"stale writer", e1)
    assert storage.read("k.json").data == b"v4"
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".~")) == hidden
