"""The core fault contract on Azure Blob Storage: Azurite behind the fault-injecting proxy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from modelshelf.testing import FaultContract
from modelshelf_azure.testing import DEV_ACCOUNT, DEV_KEY, connection_string


class TestAzureFaults(FaultContract):
    # Azurite sends listings chunked (no Content-Length), and answers to writes carry no body.
    cut_headers = ("Content-Type",)
    cut_write_headers = ("ETag", "Content-Length")

    @pytest.fixture
    def stripped_options(self, container: str) -> Callable[[str], dict[str, Any]]:
        # A Shared Key signature covers the condition headers, so Azurite would refuse a request
        # whose headers were removed on the way: a container SAS token survives that.
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        token = generate_container_sas(
            DEV_ACCOUNT,
            container,
            account_key=DEV_KEY,
            permission=ContainerSasPermissions(
                read=True, write=True, delete=True, list=True, create=True
            ),
            expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        )
        return lambda endpoint: {"account_url": f"{endpoint}/{DEV_ACCOUNT}", "sas_token": token}

    @pytest.fixture(autouse=True)
    def _known_defect(self, request: pytest.FixtureRequest) -> None:
        # azure-core retries a 503 by itself, so the backend never learns that its first write
        # may have landed, and reports its own write as a conflict. Strict: fixed, this fails.
        name = request.node.name
        if name.endswith("_our_win[status]"):
            request.applymarker(
                pytest.mark.xfail(
                    strict=True, reason="SDK-internal retry of a lost answer is not noticed"
                )
            )

    @pytest.fixture
    def storage_url(self, container: str) -> str:
        return f"az://{container}/faults"

    @pytest.fixture
    def storage_options(self, azurite_connection_string: str) -> dict[str, Any]:
        return {"connection_string": azurite_connection_string}

    @pytest.fixture
    def server_port(self, azurite_port: int) -> int:
        return azurite_port

    @pytest.fixture
    def proxied_options(self) -> Callable[[str], dict[str, Any]]:
        return lambda endpoint: {
            "connection_string": connection_string(int(endpoint.rsplit(":", 1)[1]))
        }
