"""The core storage contract and the registry end to end, on gs:// against fake-gcs-server."""

from __future__ import annotations

import pytest
from modelshelf.testing import StorageContract


class TestGCSStorageContract(StorageContract):
    # The brief's concurrency bar: 8 processes x 10 uploads to one name give versions 1..80.
    race_processes = 8
    race_uploads = 10
    alias_processes = 4
    alias_moves = 6

    @pytest.fixture
    def storage_url(self, bucket: str) -> str:
        # Child processes inherit STORAGE_EMULATOR_HOST from the gcs_env fixture behind `bucket`.
        return f"gs://{bucket}/team/models"
