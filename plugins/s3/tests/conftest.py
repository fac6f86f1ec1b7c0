"""Fixtures for the S3 plugin tests: one real moto S3 server over HTTP per session.

The session fixture points boto3 at the server through ``AWS_ENDPOINT_URL`` and dummy
credentials, and hides any real AWS configuration of the machine, so no test can reach AWS.
Each test gets a bucket of its own, so tests never see each other's objects.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from modelshelf_s3.testing import create_bucket, moto_environment


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server for the whole session; the environment points boto3 at it."""
    with moto_environment() as endpoint:
        yield endpoint


@pytest.fixture
def s3_client(moto_endpoint: str) -> Iterator[Any]:
    """A plain boto3 client on the test server, to arrange and inspect state directly."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto_endpoint)
    yield client
    client.close()


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    """A fresh, empty bucket for this test."""
    return create_bucket(moto_endpoint, "shelf")


@pytest.fixture
def s3_storage(bucket: str) -> Iterator[Any]:
    """An S3Storage rooted at ``s3://<fresh bucket>/team/models``."""
    from modelshelf_s3 import open_storage

    storage = open_storage(f"s3://{bucket}/team/models")
    yield storage
    storage.close()


@pytest.fixture
def random_file(tmp_path: Path) -> Any:
    """``random_file(size) -> Path``: a file of random bytes, written in 1 MiB pieces."""

    def make(size: int, name: str = "blob.bin") -> Path:
        path = tmp_path / name
        with path.open("wb") as out:
            left = size
            while left:
                piece = os.urandom(min(left, 1 << 20))
                out.write(piece)
                left -= len(piece)
        return path

    return make
