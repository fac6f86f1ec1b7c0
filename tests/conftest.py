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
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from modelshelf_s3.testing import DUMMY_CREDENTIALS, moto_server

    empty = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(name, raising=False)
        for name, value in DUMMY_CREDENTIALS.items():
            mp.setenv(name, value)
        mp.setenv("AWS_CONFIG_FILE", str(empty))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        with moto_server() as endpoint:
            mp.setenv("AWS_ENDPOINT_URL", endpoint)
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
