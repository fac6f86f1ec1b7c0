"""The storage contract on the built-in filesystem backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelshelf.testing import StorageContract


class TestFileSystemStorage(StorageContract):
    race_processes = 2
    race_uploads = 20
    alias_processes = 2
    alias_moves = 10

    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return (tmp_path / "shelf").as_uri()
