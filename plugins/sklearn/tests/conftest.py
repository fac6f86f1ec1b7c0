"""Fixtures for the modelshelf-sklearn tests: they use the shared ones of modelshelf's pytest plugin
(``local_shelf``, ``local_shelf_path``, ``tabular_data``, ``modelshelf_run_python``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_cache(modelshelf_cache: Path) -> Path:
    """No test reads ~/.cache or another test's blobs (``MODELSHELF_CACHE`` is set too)."""
    return modelshelf_cache
