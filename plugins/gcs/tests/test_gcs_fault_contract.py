"""The core fault contract on GCS: fake-gcs-server behind the fault-injecting proxy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from modelshelf.testing import FaultContract


class TestGCSFaults(FaultContract):
    cut_headers = ("Content-Type", "Content-Length")
    # The SDK retries what looks like a dropped connection itself, until this deadline.
    impatient_options = {"retry_deadline": 1}
    # Write conditions are query parameters (ifGenerationMatch): no header to strip.
    conditional_headers = ()

    @pytest.fixture
    def storage_url(self, bucket: str) -> str:
        return f"gs://{bucket}/faults"

    @pytest.fixture
    def server_port(self, gcs_host: str) -> int:
        return urlsplit(gcs_host).port or 80

    @pytest.fixture
    def proxied_options(self, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], dict[str, Any]]:
        def through(endpoint: str) -> dict[str, Any]:
            monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
            return {}

        return through
