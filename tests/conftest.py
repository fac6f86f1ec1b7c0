"""Servers for cross-package tests: one moto S3 and one Azurite per session, started on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from modelshelf_s3.testing import moto_environment

    with moto_environment() as endpoint:
        yield endpoint


@pytest.fixture
def s3_url(moto_endpoint: str) -> str:
    """A fresh bucket on the session's moto server, as a shelf URL."""
    from modelshelf_s3.testing import create_bucket

    return f"s3://{create_bucket(moto_endpoint, 'cross')}/shelf"


@pytest.fixture(scope="session")
def azurite_connection_string() -> Iterator[str]:
    from modelshelf_azure.testing import azurite

    with azurite() as connection_string:
        yield connection_string


@pytest.fixture
def azure_url(azurite_connection_string: str) -> str:
    """A fresh container on the session's Azurite, as a shelf URL."""
    from modelshelf_azure.testing import create_container

    return f"az://{create_container(azurite_connection_string, 'cross')}/shelf"


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
