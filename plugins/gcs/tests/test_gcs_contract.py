"""The core storage contract and the registry end to end, on gs:// against fake-gcs-server."""

from __future__ import annotations

import pytest
from modelshelf.testing import StorageContract
from modelshelf.testing.storage_contract import ServiceRaces


class TestGCSStorageContract(ServiceRaces, StorageContract):
    @pytest.fixture
    def storage_url(self, bucket: str) -> str:
        # Child processes inherit STORAGE_EMULATOR_HOST from the gcs_env fixture behind `bucket`.
        return f"gs://{bucket}/team/models"
