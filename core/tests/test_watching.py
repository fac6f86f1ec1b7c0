"""Watching an alias: ``shelf.watch`` and ``modelshelf.Refreshing``, with the alias moved by another
process, a load that fails, and a clean stop."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import modelshelf
import pytest
from modelshelf import layout
from modelshelf.errors import AliasNotFound, IntegrityError, ModelshelfError
from modelshelf.shelf import Shelf
from modelshelf.watching import Watcher


def move_alias_in_another_process(shelf: Shelf, tmp_path: Path, alias: str, version: int) -> None:
    code = "import modelshelf, sys; modelshelf.open(sys.argv[1]).set_alias('churn', sys.argv[2], int(sys.argv[3]))"
    env = {**os.environ, "MODELSHELF_CACHE": str(tmp_path / "other-process-cache")}
    done = subprocess.run(
        [sys.executable, "-c", code, shelf.url, alias, str(version)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def churn(local_shelf: Shelf, tmp_path: Path) -> Shelf:
    for number in (1, 2):
        model = tmp_path / f"v{number}" / "model.txt"
        model.parent.mkdir()
        model.write_text(f"model {number}")
        local_shelf.upload("churn", model)
    local_shelf.set_alias("churn", "prod", 1)
    return local_shelf


def test_watch_yields_the_target_then_each_move_by_another_process(
    churn: Shelf, tmp_path: Path
) -> None:
    stop = threading.Event()
    seen: list[int] = []
    watcher = churn.watch("churn@prod", interval=0.05, stop=stop)
    thread = threading.Thread(target=lambda: seen.extend(v.version for v in watcher))
    thread.start()
    try:
        wait_for(lambda: seen == [1])
        move_alias_in_another_process(churn, tmp_path, "prod", 2)
        wait_for(lambda: seen == [1, 2])
        move_alias_in_another_process(churn, tmp_path, "prod", 2)  # set again: no new target
        move_alias_in_another_process(churn, tmp_path, "prod", 1)
        wait_for(lambda: seen == [1, 2, 1])
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_polling_an_unchanged_alias_is_one_stat(counting_shelf: Shelf, tmp_path: Path) -> None:
    model = tmp_path / "m.txt"
    model.write_text("m")
    counting_shelf.upload("churn", model)
    counting_shelf.set_alias("churn", "prod", 1)
    watcher = Watcher(counting_shelf, "churn@prod")
    assert watcher.current().version == 1  # type: ignore[union-attr]
    storage: Any = counting_shelf.storage
    storage.calls.clear()
    for _ in range(3):
        assert watcher.current().version == 1  # type: ignore[union-attr]
    assert storage.calls == [("stat", layout.alias_key("churn", "prod"))] * 3


def test_watching_latest_and_refusals(churn: Shelf, tmp_path: Path) -> None:
    watcher = Watcher(churn, "churn:latest")
    assert watcher.current().version == 2  # type: ignore[union-attr]
    churn.upload("churn", tmp_path / "v1" / "model.txt")
    assert watcher.current().version == 3  # type: ignore[union-attr]
    churn.delete("churn:3")
    assert watcher.current().version == 2  # type: ignore[union-attr]
    with pytest.raises(ModelshelfError, match="pinned to version 2 and never moves"):
        Watcher(churn, "churn:2")
    with pytest.raises(AliasNotFound):
        next(churn.watch("churn@nope"))
    with pytest.raises(ModelshelfError, match="interval"):
        next(churn.watch("churn@prod", interval=0))


def test_alias_removed_then_set_again(churn: Shelf) -> None:
    watcher = Watcher(churn, "churn@prod")
    assert watcher.current().version == 1  # type: ignore[union-attr]
    churn.remove_alias("churn", "prod")
    assert watcher.current() is None
    churn.set_alias("churn", "prod", 2)
    assert watcher.current().version == 2  # type: ignore[union-attr]


def test_refreshing_serves_the_new_version_and_keeps_the_old_one_when_a_load_fails(
    churn: Shelf, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "v3" / "model.txt"
    broken.parent.mkdir()
    broken.write_text("model 3")
    v3 = churn.upload("churn", broken)
    good = tmp_path / "v4" / "model.txt"
    good.parent.mkdir()
    good.write_text("model 4")
    churn.upload("churn", good)
    # Version 3's only file goes missing from the shelf (and is in no cache): loading it fails.
    blob = v3.files[0].sha256
    (Path(churn.url.removeprefix("file://")) / layout.blob_key(blob)).unlink()
    churn.cache.evict(blob)

    errors: list[tuple[BaseException, int]] = []
    changes: list[tuple[int, int]] = []
    refreshing = modelshelf.Refreshing(
        "churn@prod",
        shelf=churn,
        interval=0.05,
        on_error=lambda exc, version: errors.append((exc, version.version)),
        on_change=lambda old, new: changes.append((old.version, new.version)),
    )
    try:
        assert refreshing.version.version == 1 and Path(refreshing.model).read_text() == "model 1"

        move_alias_in_another_process(churn, tmp_path, "prod", 2)
        wait_for(lambda: refreshing.version.version == 2)
        assert Path(refreshing.model).read_text() == "model 2"
        assert changes == [(1, 2)]

        with caplog.at_level("WARNING", logger="modelshelf.watching"):
            move_alias_in_another_process(churn, tmp_path, "prod", 3)
            wait_for(lambda: bool(errors))
        assert isinstance(errors[0][0], IntegrityError) and errors[0][1] == 3
        assert isinstance(refreshing.last_error, IntegrityError)
        assert refreshing.version.version == 2 and Path(refreshing.model).read_text() == "model 2"
        assert (
            "churn@prod moved to churn:3, which failed to load (still serving churn:2)"
            in caplog.text
        )
        assert refreshing.running

        move_alias_in_another_process(churn, tmp_path, "prod", 4)
        wait_for(lambda: refreshing.version.version == 4)
        assert Path(refreshing.model).read_text() == "model 4"
        assert refreshing.last_error is None
        assert changes == [(1, 2), (2, 4)]
    finally:
        refreshing.stop(timeout=10)
    assert not refreshing.running


def test_refreshing_swaps_atomically_and_delegates_calls(churn: Shelf) -> None:
    loads: list[int] = []

    def loader(version: Any) -> Callable[[int], tuple[int, int]]:
        loads.append(version.version)
        return lambda x: (version.version, x * 10)

    with modelshelf.Refreshing(
        "churn@prod", shelf=churn, interval=3600, loader=loader
    ) as refreshing:
        assert refreshing(4) == (1, 40)
        assert refreshing.refresh() is False  # nothing moved
        churn.set_alias("churn", "prod", 2)
        assert refreshing.refresh() is True
        version, model = refreshing.current
        assert version.version == 2 and model(1) == (2, 10) and refreshing(1) == (2, 10)
        assert loads == [1, 2]
        assert "serving churn:2" in repr(refreshing)
    assert not refreshing.running


def test_refreshing_retries_a_failed_version_with_backoff(churn: Shelf) -> None:
    attempts: list[int] = []

    def flaky(version: Any) -> str:
        attempts.append(version.version)
        if version.version == 2 and len(attempts) < 4:
            raise OSError("network down")
        return f"model {version.version}"

    with modelshelf.Refreshing(
        "churn@prod", shelf=churn, interval=3600, loader=flaky
    ) as refreshing:
        churn.set_alias("churn", "prod", 2)
        assert refreshing.refresh() is False and refreshing.model == "model 1"
        assert refreshing.refresh() is False and attempts == [1, 2]  # waits before trying 2 again
        refreshing._failed = (2, 0.0, refreshing._failed[2])  # type: ignore[index]  # the wait is over
        assert refreshing.refresh() is False and attempts == [1, 2, 2]
        refreshing._failed = (2, 0.0, refreshing._failed[2])  # type: ignore[index]
        assert refreshing.refresh() is True and refreshing.model == "model 2"


def test_refreshing_needs_a_target_to_start(churn: Shelf) -> None:
    with pytest.raises(AliasNotFound):
        modelshelf.Refreshing("churn@nope", shelf=churn)
    with pytest.raises(ModelshelfError, match="pinned"):
        modelshelf.Refreshing("churn:1", shelf=churn)

    def failing(version: Any) -> Any:
        raise IntegrityError("bad")

    with pytest.raises(IntegrityError):  # a service must not start without its model
        modelshelf.Refreshing("churn@prod", shelf=churn, loader=failing)
