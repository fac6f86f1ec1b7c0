"""Fixtures for the Azure plugin tests: one Azurite server per session, a fresh container per test.

Every test talks HTTP to a real Azurite blob server (no SDK mocks). When Azurite cannot be found
(no ``npm install`` was run) the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from modelshelf.testing.faultproxy import FaultProxy
from modelshelf_azure.testing import AzuriteNotFound, azurite, create_container, find_azurite


@pytest.fixture(scope="session")
def azurite_connection_string() -> Iterator[str]:
    """Connection string of a session-wide in-memory Azurite."""
    try:
        find_azurite()
    except AzuriteNotFound as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI must install it: `npm install` at the repository root)")
        pytest.skip(str(exc))
    with azurite() as connection_string:
        yield connection_string


@pytest.fixture(scope="session")
def azurite_port(azurite_connection_string: str) -> int:
    """The port Azurite's blob service listens on (for a proxy in front of it)."""
    endpoint = next(
        p for p in azurite_connection_string.split(";") if p.startswith("BlobEndpoint=")
    )
    return int(endpoint.rsplit(":", 1)[1].split("/", 1)[0])


@pytest.fixture(scope="session")
def blob_service(azurite_connection_string: str) -> Iterator[Any]:
    """An SDK client on the Azurite account, for arranging and checking state in tests."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite_connection_string)
    yield service
    service.close()


@pytest.fixture
def container(blob_service: Any, azurite_connection_string: str) -> Iterator[str]:
    """A fresh, empty container; deleted after the test."""
    name = create_container(azurite_connection_string)
    yield name
    blob_service.delete_container(name)


@pytest.fixture
def shelf_url(container: str) -> str:
    return f"az://{container}/shelves/test"


@pytest.fixture
def az_storage(shelf_url: str, azurite_connection_string: str) -> Iterator[Any]:
    """An :class:`AzureBlobStorage` on a fresh container, below a prefix."""
    from modelshelf_azure.storage import AzureBlobStorage

    storage = AzureBlobStorage(shelf_url, connection_string=azurite_connection_string)
    yield storage
    storage.close()


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch, azurite_connection_string: str) -> str:
    """Point ``AZURE_STORAGE_CONNECTION_STRING`` at Azurite (and clear the other variables)."""
    for variable in (
        "AZURE_STORAGE_ACCOUNT_URL",
        "AZURE_STORAGE_ACCOUNT",
        "AZURE_STORAGE_SAS_TOKEN",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_connection_string)
    return azurite_connection_string


@pytest.fixture
def fault_proxy(azurite_port: int) -> Iterator[FaultProxy]:
    """A :class:`~modelshelf.testing.faultproxy.FaultProxy` in front of the session's Azurite."""
    with FaultProxy(azurite_port) as proxy:
        yield proxy
