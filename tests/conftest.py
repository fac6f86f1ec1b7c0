"""Servers for cross-package tests: one moto S3 and one Azurite per session, started on free ports."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

_numbers = itertools.count()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from modelshelf_s3.testing import moto_environment

    with moto_environment() as endpoint:
        yield endpoint


@pytest.fixture
def s3_url(moto_endpoint: str) -> str:
    """A fresh bucket on the session's moto server, as a shelf URL."""
    import boto3

    name = f"cross-{os.getpid()}-{next(_numbers)}"
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=name)
    client.close()
    return f"s3://{name}/shelf"


@pytest.fixture(scope="session")
def azurite_connection_string() -> Iterator[str]:
    from modelshelf_azure.testing import azurite

    with azurite() as connection_string:
        yield connection_string


@pytest.fixture
def azure_url(azurite_connection_string: str) -> str:
    from azure.storage.blob import BlobServiceClient

    name = f"cross-{secrets.token_hex(4)}"
    with BlobServiceClient.from_connection_string(azurite_connection_string) as service:
        service.create_container(name)
    return f"az://{name}/shelf"


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
