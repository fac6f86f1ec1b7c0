"""The core storage contract on S3Storage, against a real moto S3 server over HTTP.

The contract's race tests run here at the size the S3 brief asks for: 8 spawned processes, each
opening its own shelf, racing 10 uploads each to one name (80 distinct consecutive versions, every
one loadable), and racing alias moves that must lose no event in the history.
"""

from __future__ import annotations

import pytest
from modelshelf.testing import StorageContract
from modelshelf.testing.storage_contract import ServiceRaces


class TestS3Storage(ServiceRaces, StorageContract):
    @pytest.fixture
    def storage_url(self, bucket: str) -> str:
        return f"s3://{bucket}/team/shelf"
