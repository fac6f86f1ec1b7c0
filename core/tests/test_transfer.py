"""Parallel transfer, hashing and verified copies (modelshelf.transfer), on their own."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import time
from pathlib import Path

import pytest
from modelshelf import transfer
from modelshelf.errors import ChangedWhileUploading, IntegrityError
from modelshelf.transfer import (
    VerifyingWriter,
    copy_hashing,
    copy_verified,
    run_parallel,
    stable_copy,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- run_parallel ----------------------------------------------------------------------------


def test_run_parallel_keeps_order_and_really_overlaps() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return n * n

    assert run_parallel(work, range(8), max_workers=4) == [n * n for n in range(8)]
    assert peak > 1


def test_run_parallel_with_one_worker_or_one_item_runs_inline() -> None:
    caller = threading.current_thread()
    seen: list[threading.Thread] = []
    assert run_parallel(
        lambda n: seen.append(threading.current_thread()) or n, [1, 2], max_workers=1
    ) == [1, 2]
    assert run_parallel(lambda n: seen.append(threading.current_thread()) or n, [3]) == [3]
    assert set(seen) == {caller}
    assert run_parallel(lambda n: n, []) == []


def test_run_parallel_raises_the_first_error_and_cancels_what_has_not_started() -> None:
    started: list[int] = []

    def work(n: int) -> int:
        started.append(n)
        if n == 0:
            raise ValueError("boom")
        time.sleep(0.2)
        return n

    with pytest.raises(ValueError, match="boom"):
        run_parallel(work, range(50), max_workers=2)
    assert len(started) < 50


def test_workers_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert transfer.workers() >= 1
    monkeypatch.setenv("MODELSHELF_WORKERS", "3")
    assert transfer.workers() == 3
    monkeypatch.setenv("MODELSHELF_WORKERS", "0")
    assert transfer.workers() == 1


# --- hashing copies ----------------------------------------------------------------------------


def test_copy_hashing_hashes_exactly_what_it_wrote(tmp_path: Path) -> None:
    data = bytes(range(256)) * 100
    source = tmp_path / "s.bin"
    source.write_bytes(data)
    out = io.BytesIO()
    totals: list[int] = []
    assert copy_hashing(source, out.write, chunk_size=1000, written=totals.append) == (
        sha(data),
        len(data),
    )
    assert out.getvalue() == data
    assert totals[-1] == len(data) and totals == sorted(totals)


def test_copy_hashing_stops_one_byte_past_the_limit(tmp_path: Path) -> None:
    source = tmp_path / "s.bin"
    source.write_bytes(b"x" * 10_000)
    out = io.BytesIO()
    _, copied = copy_hashing(source, out.write, limit=100, chunk_size=64)
    assert 100 < copied <= 128  # whole chunks, stopped as soon as the limit was passed


def test_copy_verified_accepts_the_expected_file(tmp_path: Path) -> None:
    data = b"weights" * 1000
    source = tmp_path / "w.bin"
    source.write_bytes(data)
    out = io.BytesIO()
    copy_verified(source, out, sha(data), len(data))
    assert out.getvalue() == data


@pytest.mark.parametrize("change", ["grew", "shrank", "rewritten"])
def test_copy_verified_refuses_a_file_that_changed_since_it_was_hashed(
    tmp_path: Path, change: str
) -> None:
    data = b"weights" * 1000
    source = tmp_path / "w.bin"
    source.write_bytes(
        {"grew": data + b"!", "shrank": data[:-1], "rewritten": data.upper()}[change]
    )
    with pytest.raises(ChangedWhileUploading, match="changed while it was being uploaded"):
        copy_verified(source, io.BytesIO(), sha(data), len(data))


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "user-space"])
def test_stable_copy_is_private_checked_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: bool
) -> None:
    if not kernel_copy:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    data = b"blob" * 100
    source = tmp_path / "w.bin"
    source.write_bytes(data)
    with stable_copy(source, sha(data), len(data)) as copy:
        assert copy != source and copy.read_bytes() == data
    assert not copy.exists()
    source.write_bytes(data + b"more")
    with pytest.raises(ChangedWhileUploading), stable_copy(source, sha(data), len(data)):
        pass
    assert list((tmp_path / "tmp").iterdir()) == []  # no private copy left behind


# --- VerifyingWriter ---------------------------------------------------------------------------


def test_verifying_writer_accepts_exact_content() -> None:
    data = b"0123456789" * 1000
    out = io.BytesIO()
    with VerifyingWriter(out, sha(data), len(data), "w.bin") as writer:
        for start in range(0, len(data), 333):
            writer.write(data[start : start + 333])
        writer.finish()
    assert out.getvalue() == data


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        (b"x" * 9, "has 9 bytes"),
        (b"x" * 11, "larger than its recorded size"),
        (b"y" * 10, "does not match"),
    ],
)
def test_verifying_writer_refuses_wrong_content_in_one_line(sent: bytes, message: str) -> None:
    expected = b"x" * 10
    writer = VerifyingWriter(io.BytesIO(), sha(expected), len(expected), "w.bin")
    with writer, pytest.raises(IntegrityError, match=message) as caught:
        writer.write(sent)
        writer.finish()
    assert "w.bin" in str(caught.value) and "\n" not in str(caught.value)


def test_verifying_writer_stops_its_thread_even_without_finish() -> None:
    before = threading.active_count()
    with VerifyingWriter(io.BytesIO(), sha(b""), 0, "w.bin") as writer:
        writer.write(b"")
    time.sleep(0.05)
    assert threading.active_count() <= before
