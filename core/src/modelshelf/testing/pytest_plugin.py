"""Fixtures every modelshelf test suite wants, registered through the ``pytest11`` entry point.

* ``modelshelf_cache``: an empty download cache, also exported as ``MODELSHELF_CACHE``.
* ``local_shelf``: a fresh filesystem shelf using that cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from modelshelf.shelf import Shelf


@pytest.fixture
def modelshelf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "modelshelf-cache"
    monkeypatch.setenv("MODELSHELF_CACHE", str(cache))
    return cache


@pytest.fixture
def local_shelf(tmp_path: Path, modelshelf_cache: Path) -> Iterator[Shelf]:
    import modelshelf

    shelf = modelshelf.open(str(tmp_path / "shelf"), cache=modelshelf_cache)
    try:
        yield shelf
    finally:
        shelf.close()
