"""Fixtures every modelshelf test suite wants, registered through the ``pytest11`` entry point.

* ``modelshelf_cache``: an empty download cache, also exported as ``MODELSHELF_CACHE``.
* ``local_shelf``: a fresh filesystem shelf using that cache.
* ``modelshelf_run_python``: run code in a fresh Python process with an empty cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from modelshelf.shelf import Shelf


@pytest.fixture
def modelshelf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty modelshelf download cache for this test (a directory below ``tmp_path``), also set
    as ``MODELSHELF_CACHE`` so shelves opened without ``cache=`` use it too."""
    cache = tmp_path / "modelshelf-cache"
    monkeypatch.setenv("MODELSHELF_CACHE", str(cache))
    return cache


@pytest.fixture
def local_shelf(tmp_path: Path, modelshelf_cache: Path) -> Iterator[Shelf]:
    """A fresh, empty filesystem shelf below ``tmp_path``, using ``modelshelf_cache``; closed
    after the test."""
    import modelshelf

    shelf = modelshelf.open(str(tmp_path / "shelf"), cache=modelshelf_cache)
    try:
        yield shelf
    finally:
        shelf.close()


@pytest.fixture
def modelshelf_run_python(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run(code, *args, env=None)``: run ``python -c code`` in a fresh process with an empty cache.

    Serializer tests use it to prove a model loads in a process that never saw the original.
    The process must succeed; its output is returned.
    """
    counter = iter(range(1_000_000))

    def run(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "MODELSHELF_CACHE": str(tmp_path / f"fresh-cache-{next(counter)}")}
        full_env.update(env or {})
        result = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, env=full_env,
            timeout=300, check=False,
        )
        assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
        return result

    return run
