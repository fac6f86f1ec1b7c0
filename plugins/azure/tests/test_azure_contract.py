"""The core storage contract, run against Azurite through ``modelshelf.open("az://...")``.

The race tests run with the sizes the Azure issue asks for: 8 processes uploading 10 versions
each to one name must produce versions 1..80, every one loadable.
"""

from __future__ import annotations

from typing import Any

import pytest
from modelshelf.testing import StorageContract
from modelshelf.testing.storage_contract import ServiceRaces


class TestAzureStorageContract(ServiceRaces, StorageContract):
    @pytest.fixture
    def storage_url(self, container: str) -> str:
        return f"az://{container}/contract/shelf"

    @pytest.fixture
    def storage_options(self, azurite_connection_string: str) -> dict[str, Any]:
        return {"connection_string": azurite_connection_string}
