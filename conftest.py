"""Workspace-wide pytest configuration: the ``slow`` marker.

Tests marked ``slow`` run only with ``--runslow`` or ``MODELSHELF_SLOW=1``; CI runs the fast set.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runslow", action="store_true", default=False, help="also run tests marked slow"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("runslow") or os.environ.get("MODELSHELF_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow or set MODELSHELF_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
