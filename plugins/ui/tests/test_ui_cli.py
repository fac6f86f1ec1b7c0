"""``modelshelf ui`` and ``modelshelf ui build`` as a user runs them (a real process each)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest


def _modelshelf(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelshelf", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def test_the_command_is_added_through_the_hook() -> None:
    result = _modelshelf("ui", "--help")
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout and "--host" in result.stdout and "build" in result.stdout


@pytest.mark.parametrize("command", [["ui"], ["ui", "build", "SITE"]])
def test_a_missing_shelf_is_one_line_and_exit_1(tmp_path: Path, command: list[str]) -> None:
    command = [str(tmp_path / "site") if part == "SITE" else part for part in command]
    result = _modelshelf("--shelf", str(tmp_path / "no-such-shelf"), *command)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: no shelf at "), (
        result.stderr
    )
    assert not (tmp_path / "site").exists()


def test_an_unreadable_shelf_is_one_line_and_exit_1(tmp_path: Path) -> None:
    shelf = tmp_path / "shelf"
    (shelf / "models" / "churn" / "_versions").mkdir(parents=True)
    (shelf / ".modelshelf.json").write_text(
        json.dumps({"format": 99, "schema": 1})
    )  # a newer layout
    result = _modelshelf("ui", "--shelf", str(shelf), "--port", "0")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
    assert "newer" in result.stderr


def test_a_bucket_it_cannot_read_is_one_line_and_exit_1() -> None:
    pytest.importorskip("modelshelf_s3")
    from modelshelf_s3.testing import ISOLATED_AWS_ENV, moto_server

    with moto_server() as endpoint:
        env = {**os.environ, **ISOLATED_AWS_ENV, "AWS_ENDPOINT_URL": endpoint}
        result = _modelshelf("ui", "--shelf", "s3://no-such-bucket/models", "--port", "0", env=env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
    assert "no-such-bucket" in result.stderr


def test_serves_until_interrupted(ui_shelf: Any) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "modelshelf", "--shelf", ui_shelf.url, "ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Serving ") and " read-only at http://127.0.0.1:" in line, line
        url = line.split(" at ", 1)[1].split()[0]
        with urllib.request.urlopen(url + "data/shelf.json", timeout=30) as response:
            names = [m["name"] for m in json.load(response)["models"]]
        assert "churn" in names
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "stopped" in out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_build_then_build_again(ui_shelf: Any, tmp_path: Path) -> None:
    site = tmp_path / "site"
    first = _modelshelf("--shelf", ui_shelf.url, "ui", "build", str(site))
    assert first.returncode == 0, first.stderr
    assert " 0 unchanged" in first.stdout and (site / "index.html").is_file()
    again = _modelshelf("ui", "build", str(site), "--shelf", ui_shelf.url)
    assert again.returncode == 0, again.stderr
    assert " 0 files written" in again.stdout and " 0 removed" in again.stdout
    assert f"Open {(site / 'index.html').as_uri()}" in again.stdout
